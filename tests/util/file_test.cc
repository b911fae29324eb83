#include "util/file.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace accelsel::util {
namespace {

TEST(ReadFileTest, ReadsAFileWholeAndNamesAMissingOne) {
  const char* tmp = std::getenv("ACCELSEL_TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/file_test_", getpid());
  std::ofstream(path, std::ios::binary) << std::string("a\0b\n", 4);
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::string("a\0b\n", 4));
  std::remove(path.c_str());
  absl::StatusOr<std::string> missing = ReadFile(path);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(ReadFileTest, DashReadsStandardInput) {
  std::istringstream fake("{\"run_id\": \"r1\"}\n{\"run_id\": \"r2\"}\n");
  std::streambuf* saved = std::cin.rdbuf(fake.rdbuf());
  absl::StatusOr<std::string> read = ReadFile("-");
  std::cin.rdbuf(saved);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "{\"run_id\": \"r1\"}\n{\"run_id\": \"r2\"}\n");
}

}  // namespace
}  // namespace accelsel::util
