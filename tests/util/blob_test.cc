// Unit tests of util/blob.h: ByteWriter/ByteReader round trips and truncation, and SealBlob/OpenBlob refusing every
// truncated, extended, bit-flipped, wrong-magic or too-new blob before its payload is read.
#include "util/blob.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace accelsel::util {
namespace {

using ::testing::HasSubstr;

constexpr char kMagic[] = "ACSLTEST";  // 8 bytes
constexpr size_t kHeader = 8 + 4 + 8 + 8;

TEST(ByteWriterReaderTest, RoundTripsEveryTypeIncludingEdgeValues) {
  ByteWriter w;
  w.PutU32(0);
  w.PutU32(std::numeric_limits<uint32_t>::max());
  w.PutU64(0x0123456789abcdefULL);
  w.PutU64(std::numeric_limits<uint64_t>::max());
  w.PutF64(-0.0);
  w.PutF64(std::numeric_limits<double>::infinity());
  w.PutF64(std::numeric_limits<double>::denorm_min());
  w.PutF64(std::nan(""));
  w.PutString("");
  w.PutString(std::string("a\0b\xff", 4));
  // Little-endian, fixed width: the layout on disk does not depend on the machine.
  EXPECT_EQ(w.bytes().substr(8, 8), std::string("\xef\xcd\xab\x89\x67\x45\x23\x01", 8));

  ByteReader r(w.bytes());
  uint32_t u32 = 1;
  uint64_t u64 = 0;
  double f = 0;
  std::string s = "x";
  ASSERT_TRUE(r.GetU32(&u32));
  EXPECT_EQ(u32, 0u);
  ASSERT_TRUE(r.GetU32(&u32));
  EXPECT_EQ(u32, std::numeric_limits<uint32_t>::max());
  ASSERT_TRUE(r.GetU64(&u64));
  EXPECT_EQ(u64, 0x0123456789abcdefULL);
  ASSERT_TRUE(r.GetU64(&u64));
  EXPECT_EQ(u64, std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(r.GetF64(&f));
  EXPECT_EQ(f, 0.0);
  EXPECT_TRUE(std::signbit(f));  // -0.0 keeps its sign: doubles travel as their bits
  ASSERT_TRUE(r.GetF64(&f));
  EXPECT_EQ(f, std::numeric_limits<double>::infinity());
  ASSERT_TRUE(r.GetF64(&f));
  EXPECT_EQ(f, std::numeric_limits<double>::denorm_min());
  ASSERT_TRUE(r.GetF64(&f));
  EXPECT_TRUE(std::isnan(f));
  ASSERT_TRUE(r.GetString(&s));
  EXPECT_EQ(s, "");
  EXPECT_FALSE(r.done());
  ASSERT_TRUE(r.GetString(&s));
  EXPECT_EQ(s, std::string("a\0b\xff", 4));
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.GetU32(&u32));  // nothing left
}

TEST(ByteWriterReaderTest, TruncatedInputFailsAndTheReaderStaysFailed) {
  ByteWriter w;
  w.PutU64(7);
  w.PutString("hello");
  const std::string bytes = w.bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    ByteReader r(std::string_view(bytes).substr(0, n));
    uint64_t v = 0;
    std::string s;
    const bool ok = r.GetU64(&v) && r.GetString(&s);
    EXPECT_FALSE(ok);
    EXPECT_TRUE(r.done());  // a failed read consumes the rest: later reads fail too
    uint32_t after = 0;
    EXPECT_FALSE(r.GetU32(&after));
  }
}

TEST(ByteWriterReaderTest, AStringLengthBeyondTheInputIsRefusedWithoutReading) {
  ByteWriter w;
  w.PutU64(std::numeric_limits<uint64_t>::max());  // a length no input can hold (and that overflows pos + n)
  w.PutU32(0);
  ByteReader r(w.bytes());
  std::string s = "untouched";
  EXPECT_FALSE(r.GetString(&s));
  EXPECT_EQ(s, "untouched");
}

TEST(BlobTest, SealThenOpenReturnsThePayloadAndItsFormat) {
  for (const std::string& payload : {std::string(), std::string("model bytes"), std::string(100000, '\x5a')}) {
    const std::string blob = SealBlob(kMagic, 3, payload);
    EXPECT_EQ(blob.size(), kHeader + payload.size());
    uint32_t format = 0;
    absl::StatusOr<std::string_view> opened = OpenBlob(blob, kMagic, 3, &format);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, payload);
    EXPECT_EQ(format, 3u);
    // An older format is still read by a build that knows newer ones.
    opened = OpenBlob(blob, kMagic, 9, &format);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(format, 3u);
  }
}

TEST(BlobTest, AMagicShorterThanEightBytesIsPaddedTheSameWayOnBothSides) {
  const std::string blob = SealBlob("AB", 1, "p");
  EXPECT_EQ(blob.substr(0, 8), std::string("AB\0\0\0\0\0\0", 8));
  uint32_t format = 0;
  EXPECT_TRUE(OpenBlob(blob, "AB", 1, &format).ok());
  EXPECT_FALSE(OpenBlob(blob, "ABC", 1, &format).ok());
}

TEST(BlobTest, ANewerFormatIsRefusedAsUnsupportedNotAsCorrupt) {
  const std::string blob = SealBlob(kMagic, 2, "payload");
  uint32_t format = 77;
  absl::StatusOr<std::string_view> opened = OpenBlob(blob, kMagic, 1, &format);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(opened.status().message(), HasSubstr("unsupported format 2"));
  EXPECT_EQ(format, 77u);  // not written on failure
  // Format 0 is never valid.
  EXPECT_EQ(OpenBlob(SealBlob(kMagic, 0, "p"), kMagic, 5, &format).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(BlobTest, WrongMagicIsRefused) {
  uint32_t format = 0;
  absl::StatusOr<std::string_view> opened = OpenBlob(SealBlob("OTHERMAG", 1, "p"), kMagic, 1, &format);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("bad magic"));
}

TEST(BlobTest, EveryTruncationAndAnyExtraByteIsRefused) {
  const std::string blob = SealBlob(kMagic, 1, "a payload of some length");
  uint32_t format = 0;
  for (size_t n = 0; n < blob.size(); ++n) {
    SCOPED_TRACE(n);
    absl::StatusOr<std::string_view> opened = OpenBlob(std::string_view(blob).substr(0, n), kMagic, 1, &format);
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(opened.status().message(), HasSubstr(n < kHeader ? "truncated header" : "length mismatch"));
  }
  absl::StatusOr<std::string_view> longer = OpenBlob(blob + '\0', kMagic, 1, &format);
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(longer.status().message(), HasSubstr("length mismatch"));
}

TEST(BlobTest, EverySingleBitFlipIsRefused) {
  const std::string blob = SealBlob(kMagic, 1, "0123456789abcdef");
  for (size_t byte = 0; byte < blob.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = blob;
      flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
      uint32_t format = 0;
      absl::StatusOr<std::string_view> opened = OpenBlob(flipped, kMagic, 1, &format);
      EXPECT_FALSE(opened.ok()) << "byte " << byte << " bit " << bit;
    }
  }
  // A flip inside the payload is caught by the checksum in particular.
  std::string flipped = blob;
  flipped[kHeader + 3] ^= 0x10;
  uint32_t format = 0;
  EXPECT_THAT(OpenBlob(flipped, kMagic, 1, &format).status().message(), HasSubstr("checksum mismatch"));
}

TEST(BlobTest, ChecksumDependsOnContentOrderAndLength) {
  EXPECT_EQ(Checksum64("abc"), Checksum64("abc"));
  EXPECT_NE(Checksum64("abc"), Checksum64("acb"));
  EXPECT_NE(Checksum64("abc"), Checksum64("abcd"));
  EXPECT_NE(Checksum64(""), Checksum64(std::string(1, '\0')));
  EXPECT_NE(Checksum64(std::string(1, '\0')), Checksum64(std::string(2, '\0')));
}

}  // namespace
}  // namespace accelsel::util
