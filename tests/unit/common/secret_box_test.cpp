#include "common/secret_box.h"

#include <fstream>

#include <gtest/gtest.h>
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

}  // namespace
}  // namespace slipway
