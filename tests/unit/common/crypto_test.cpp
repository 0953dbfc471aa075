// Hashing and randomness (common/crypto.h).
#include "common/crypto.h"

#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace slipway {
namespace {

// FIPS 180-2 / NIST test vectors.
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* k448 = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* kMillionA =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
constexpr const char* k448Input = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

void write(const std::filesystem::path& p, const std::string& content) {
  std::ofstream f(p, std::ios::binary);
  f << content;
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), kEmpty);
  EXPECT_EQ(sha256_hex("abc"), kAbc);
  EXPECT_EQ(sha256_hex(k448Input), k448);
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')), kMillionA);
}

TEST(Sha256, IncrementalEqualsOneShot) {
  const std::string data = std::string(k448Input) + std::string(100'000, 'z');
  for (size_t cut : {size_t{0}, size_t{1}, size_t{55}, size_t{64}, size_t{65}, data.size()}) {
    Sha256 h;
    h.update(std::string_view(data).substr(0, cut));
    h.update(std::string_view(data).substr(cut));
    EXPECT_EQ(h.hex_digest(), sha256_hex(data)) << cut;
  }
  Sha256 bytes;
  for (char c : std::string("abc"))
    bytes.update(&c, 1);
  EXPECT_EQ(bytes.hex_digest(), kAbc);
}

TEST(Sha256, BinaryDataWithNulBytes) {
  const std::string a("a\0b", 3);
  const std::string b("a\0c", 3);
  EXPECT_NE(sha256_hex(a), sha256_hex(b));
  EXPECT_NE(sha256_hex(a), sha256_hex("a"));
}

TEST(Sha256File, MatchesTheInMemoryHash) {
  testing::TempDir dir;
  const auto empty = dir.path() / "empty";
  write(empty, "");
  auto h = sha256_file(empty);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(*h, kEmpty);

  // Larger than the read buffer, and not a multiple of it.
  std::string big;
  for (uint32_t i = 0; i < 300'000; ++i)
    big += static_cast<char>(i * 7919u % 256u);
  const auto file = dir.path() / "big.bin";
  write(file, big);
  h = sha256_file(file);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(*h, sha256_hex(big));

  const auto million = dir.path() / "a";
  write(million, std::string(1'000'000, 'a'));
  EXPECT_EQ(sha256_file(million).value(), kMillionA);
}

TEST(Sha256File, Errors) {
  testing::TempDir dir;
  auto missing = sha256_file(dir.path() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::io);
  EXPECT_NE(missing.error().message.find("missing"), std::string::npos);
  auto directory = sha256_file(dir.path());
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, Errc::io);
}

TEST(IsSha256Hex, AcceptsOnlyLowerCaseHexOf64) {
  EXPECT_TRUE(is_sha256_hex(kEmpty));
  EXPECT_TRUE(is_sha256_hex(std::string(64, '0')));
  EXPECT_FALSE(is_sha256_hex(""));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(65, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'g')));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'A')));
  std::string upper = kAbc;
  upper[10] = 'F';
  EXPECT_FALSE(is_sha256_hex(upper));
  std::string slash = kAbc;
  slash[0] = '/';
  EXPECT_FALSE(is_sha256_hex(slash));
  EXPECT_FALSE(is_sha256_hex(std::string(kAbc).substr(0, 62) + ".."));
  EXPECT_FALSE(is_sha256_hex(std::string(kAbc).substr(0, 63) + std::string(1, '\0')));
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret-tokeN"));
  EXPECT_FALSE(constant_time_equal("Secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equal("secret", "secret-token"));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(RandomHex, LengthAlphabetAndUniqueness) {
  EXPECT_EQ(random_hex(0), "");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const auto s = random_hex(16);
    ASSERT_EQ(s.size(), 32u);
    for (char c : s)
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << s;
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_TRUE(is_sha256_hex(random_hex(32)));
}

}  // namespace
}  // namespace slipway
