// SHA-256 of model blobs moved between replicas (cluster/coordination.h), through OpenSSL's libcrypto.
#include <openssl/sha.h>

#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "cluster/coordination.h"

namespace accelsel::cluster {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

}  // namespace accelsel::cluster
