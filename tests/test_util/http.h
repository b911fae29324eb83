// Test helpers for the Prometheus endpoint: plain HTTP/1.0 over a TCP socket to 127.0.0.1, and one sample read out
// of the text exposition format.
#ifndef ACCELSEL_TESTS_TEST_UTIL_HTTP_H_
#define ACCELSEL_TESTS_TEST_UTIL_HTTP_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/time/time.h"

namespace accelsel::testing {

// A connected TCP socket to 127.0.0.1:port, or -1. Reads on it time out after `read_timeout`.
inline int ConnectTcp(int port, absl::Duration read_timeout = absl::Seconds(30)) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  const timeval tv = absl::ToTimeval(read_timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// GET over HTTP/1.0; "" when nothing answers (connection refused, or no answer within `read_timeout`).
inline std::string HttpGet(int port, const std::string& path, absl::Duration read_timeout = absl::Seconds(30)) {
  const int fd = ConnectTcp(port, read_timeout);
  if (fd < 0) return "";
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

// Value of the first sample line starting with `prefix` (name plus labels), or -1.
inline double Sample(const std::string& text, const std::string& prefix) {
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      const size_t space = text.find(' ', pos + prefix.size());
      return std::stod(text.substr(space + 1, text.find('\n', space) - space - 1));
    }
    pos += prefix.size();
  }
  return -1;
}

}  // namespace accelsel::testing

#endif  // ACCELSEL_TESTS_TEST_UTIL_HTTP_H_
