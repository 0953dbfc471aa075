#include "common/secret_box.h"

#include <array>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include "support/temp_dir.h"

namespace slipway {
namespace {

TEST(SecretBox, SealedValuesOpenWithTheSameKeyAndPlace) {
  const SecretKey key = SecretKey::random();
  const std::string sealed = key.seal("hunter2", "prod/web/DB_PASSWORD");
  EXPECT_EQ(sealed.substr(0, 3), "v1:");
  EXPECT_EQ(sealed.find("hunter2"), std::string::npos);
  auto plain = key.open(sealed, "prod/web/DB_PASSWORD");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, "hunter2");
  // Empty and binary values too.
  EXPECT_EQ(key.open(key.seal("", "a"), "a").value(), "");
  const std::string bin("\x01\xff\n", 3);
  EXPECT_EQ(key.open(key.seal(bin, "a"), "a").value(), bin);
}

TEST(SecretBox, EachSealHasItsOwnNonce) {
  const SecretKey key = SecretKey::random();
  EXPECT_NE(key.seal("same", "p"), key.seal("same", "p"));
}

TEST(SecretBox, TamperingIsDetected) {
  const SecretKey key = SecretKey::random();
  const std::string sealed = key.seal("hunter2", "p");
  for (size_t i = 3; i < sealed.size(); ++i) {
    std::string t = sealed;
    t[i] = t[i] == '0' ? '1' : '0';
    auto r = key.open(t, "p");
    EXPECT_FALSE(r) << "byte " << i;
  }
  EXPECT_FALSE(key.open(sealed.substr(0, sealed.size() - 2), "p"));
  EXPECT_FALSE(key.open(sealed + "00", "p"));
}

TEST(SecretBox, AnotherPlaceOrKeyDoesNotOpen) {
  const SecretKey key = SecretKey::random();
  const std::string sealed = key.seal("hunter2", "prod/web/A");
  auto moved = key.open(sealed, "prod/web/B");
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().message.find("hunter2"), std::string::npos);
  EXPECT_FALSE(SecretKey::random().open(sealed, "prod/web/A"));
}

TEST(SecretBox, MalformedSealedTextIsRefused) {
  const SecretKey key = SecretKey::random();
  for (const auto* bad : {"", "v1:", "v2:00", "v1:zz", "v1:0", "hunter2"}) {
    auto r = key.open(bad, "p");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
  }
}

TEST(SecretKeyFile, CreatedOnceWithMode0600AndReadBack) {
  testing::TempDir dir;
  const auto path = dir.path() / "secrets.key";
  auto k1 = SecretKey::load_or_create(path);
  ASSERT_TRUE(k1) << k1.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  auto k2 = SecretKey::load_or_create(path);
  ASSERT_TRUE(k2) << k2.error().message;
  EXPECT_EQ(k2->open(k1->seal("v", "p"), "p").value(), "v");
}

TEST(SecretKeyFile, WiderPermissionsAreRefused) {
  testing::TempDir dir;
  const auto path = dir.path() / "secrets.key";
  ASSERT_TRUE(SecretKey::load_or_create(path));
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto k = SecretKey::load_or_create(path);
    ASSERT_FALSE(k) << std::oct << mode;
    EXPECT_EQ(k.error().code, Errc::failed_precondition);
    EXPECT_NE(k.error().message.find("chmod 600"), std::string::npos) << k.error().message;
    EXPECT_NE(k.error().message.find(path.string()), std::string::npos);
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(SecretKey::load_or_create(path));
}

TEST(SecretKeyFile, WrongSizeOrKindIsRefused) {
  testing::TempDir dir;
  const auto path = dir.path() / "secrets.key";
  for (size_t size : {0, 31, 33, 64}) {
    {
      std::ofstream out(path, std::ios::trunc);
      out << std::string(size, 'k');
    }
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    auto k = SecretKey::load_or_create(path);
    ASSERT_FALSE(k) << size;
    EXPECT_EQ(k.error().code, Errc::failed_precondition);
    EXPECT_NE(k.error().message.find("32 bytes"), std::string::npos) << k.error().message;
  }
  const auto d = dir.path() / "dir.key";
  std::filesystem::create_directory(d);
  EXPECT_FALSE(SecretKey::load_or_create(d));
  const auto link = dir.path() / "link.key";
  std::filesystem::create_symlink(path, link);
  auto viaLink = SecretKey::load_or_create(link);
  ASSERT_FALSE(viaLink);
  EXPECT_NE(viaLink.error().message.find("symbolic link"), std::string::npos);
}

// DATA/audit.key goes through the same checks as secrets.key, and its errors name it.
TEST(SecretKeyFile, TheAuditKeyIsCheckedTheSameWayAndNamedInErrors) {
  testing::TempDir dir;
  const auto path = dir.path() / "audit.key";
  auto none = SecretKey::load(path, "audit key");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->has_value()) << "an absent file is no key, not an error";
  const SecretKey k = SecretKey::random();
  ASSERT_TRUE(k.write_file(path, "audit key"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = k.write_file(path, "audit key");
  ASSERT_FALSE(again) << "an existing file is never overwritten";
  auto back = SecretKey::load(path, "audit key");
  ASSERT_TRUE(back && back->has_value());
  EXPECT_EQ((*back)->mac_hex("x"), k.mac_hex("x"));

  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto wide = SecretKey::load(path, "audit key");
  ASSERT_FALSE(wide);
  EXPECT_NE(wide.error().message.find("the audit key " + path.string()), std::string::npos)
      << wide.error().message;
  EXPECT_NE(wide.error().message.find("chmod 600"), std::string::npos);
  const auto link = dir.path() / "link.key";
  std::filesystem::create_symlink(path, link);
  auto via_link = SecretKey::load(link, "audit key");
  ASSERT_FALSE(via_link);
  EXPECT_NE(via_link.error().message.find("symbolic link"), std::string::npos);
  EXPECT_FALSE(k.write_file(dir.path() / "link.key", "audit key")) << "never through a link";
}

// mac_hex is HMAC-SHA256 (as OpenSSL computes it) and verify_mac checks exactly it.
TEST(SecretBox, MacIsHmacSha256) {
  std::array<unsigned char, SecretKey::kSize> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(i * 7 + 1);
  const SecretKey k = SecretKey::from_bytes(bytes);
  const std::string data = "slipway audit row\nabc\n[1,2]";
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), bytes.data(), static_cast<int>(bytes.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  ASSERT_EQ(len, 32u);
  std::string expected;
  for (unsigned i = 0; i < len; ++i)
    expected += fmt::format("{:02x}", out[i]);
  EXPECT_EQ(k.mac_hex(data), expected);
  EXPECT_TRUE(k.verify_mac(data, expected));
  EXPECT_FALSE(k.verify_mac(data + " ", expected));
  EXPECT_FALSE(k.verify_mac(data, expected.substr(1)));
  EXPECT_FALSE(SecretKey::random().verify_mac(data, expected));
}

}  // namespace
}  // namespace slipway
