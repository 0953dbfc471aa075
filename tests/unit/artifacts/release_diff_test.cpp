// Listing an archive and what changed between two releases (list_archive, diff_listings).
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "artifacts/archive.h"
#include "common/crypto.h"
#include "support/temp_dir.h"

namespace slipway::artifacts {
namespace {

using slipway::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ArchiveEntry File(std::string path, std::string content, unsigned mode = 0644) {
  ArchiveEntry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.mode = mode;
  return e;
}

ArchiveEntry Entry(std::string path, EntryType type, std::string target = "") {
  ArchiveEntry e;
  e.path = std::move(path);
  e.type = type;
  e.link_target = std::move(target);
  e.mode = type == EntryType::directory ? 0755 : 0777;
  return e;
}

std::vector<std::string> Paths(const std::vector<ListedEntry>& v) {
  std::vector<std::string> out;
  for (const auto& e : v)
    out.push_back(e.path);
  return out;
}

TEST(ListArchive, EveryEntryWithItsTypeSizeDigestAndNormalizedPath) {
  TempDir t;
  ASSERT_TRUE(
      write_tar_gz(t.path() / "a.tar.gz",
                   {Entry("./bin", EntryType::directory), File("./bin/run", "#!/bin/sh\n", 0755),
                    File("slipway.yaml", "app: web\n"),
                    Entry("current-config", EntryType::symlink, "bin/run")}));
  auto l = list_archive(t.path() / "a.tar.gz");
  ASSERT_TRUE(l) << l.error().message;
  ASSERT_EQ(l->size(), 4u);
  EXPECT_THAT(Paths(*l), ElementsAre("bin", "bin/run", "slipway.yaml", "current-config"));
  EXPECT_EQ((*l)[0].type, EntryType::directory);
  EXPECT_EQ((*l)[1].type, EntryType::file);
  EXPECT_EQ((*l)[1].size, 10u);
  EXPECT_EQ((*l)[1].sha256, sha256_hex("#!/bin/sh\n"));
  EXPECT_EQ((*l)[1].mode, 0755u);
  EXPECT_EQ((*l)[3].type, EntryType::symlink);
  EXPECT_EQ((*l)[3].link_target, "bin/run");
}

TEST(ListArchive, RefusesUnsafePathsUnreadableArchivesAndTooMuch) {
  TempDir t;
  ASSERT_TRUE(write_tar_gz(t.path() / "evil.tar.gz", {File("../escape", "x")}));
  auto evil = list_archive(t.path() / "evil.tar.gz");
  ASSERT_FALSE(evil);
  EXPECT_THAT(evil.error().message, HasSubstr("unsafe entry path"));

  slipway::testing::WriteAll(t.path() / "junk.tar.gz", "this is not an archive");
  EXPECT_FALSE(list_archive(t.path() / "junk.tar.gz"));
  EXPECT_FALSE(list_archive(t.path() / "missing.tar.gz"));

  ASSERT_TRUE(
      write_tar_gz(t.path() / "many.tar.gz", {File("a", "1"), File("b", "2"), File("c", "3")}));
  ExtractLimits few;
  few.max_entries = 2;
  auto many = list_archive(t.path() / "many.tar.gz", few);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code, Errc::too_large);

  ArchiveEntry big = File("big", "");
  big.declared_size = 1 << 20;
  ASSERT_TRUE(write_tar_gz(t.path() / "big.tar.gz", {big}));
  ExtractLimits small;
  small.max_total_bytes = 1000;
  auto b = list_archive(t.path() / "big.tar.gz", small);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::too_large);
}

TEST(DiffListings, AddedRemovedChangedAndUnchanged) {
  TempDir t;
  ASSERT_TRUE(write_tar_gz(
      t.path() / "1.tar.gz",
      {Entry("bin", EntryType::directory), File("bin/run", "v1", 0755), File("README", "same"),
       File("old.txt", "gone soon"), File("mode.sh", "x", 0644),
       Entry("link", EntryType::symlink, "README"), Entry("olddir", EntryType::directory)}));
  ASSERT_TRUE(write_tar_gz(
      t.path() / "2.tar.gz",
      {Entry("bin", EntryType::directory), File("bin/run", "v2", 0755), File("README", "same"),
       File("new.txt", "hello"), File("mode.sh", "x", 0755),
       Entry("link", EntryType::symlink, "new.txt"), Entry("newdir", EntryType::directory)}));
  auto a = list_archive(t.path() / "1.tar.gz");
  auto b = list_archive(t.path() / "2.tar.gz");
  ASSERT_TRUE(a && b);
  const auto d = diff_listings(*a, *b);
  EXPECT_THAT(Paths(d.added), ElementsAre("new.txt", "newdir"));
  EXPECT_THAT(Paths(d.removed), ElementsAre("old.txt", "olddir"));
  std::vector<std::string> changed;
  for (const auto& [from, to] : d.changed)
    changed.push_back(to.path);
  EXPECT_THAT(changed, ElementsAre("bin/run", "link", "mode.sh"));
  EXPECT_EQ(d.unchanged, 2u);  // bin, README

  // Against nothing (the first release), everything is added.
  const auto first = diff_listings({}, *a);
  EXPECT_EQ(first.added.size(), a->size());
  EXPECT_TRUE(first.removed.empty());
  EXPECT_TRUE(first.changed.empty());
  // A release against itself changes nothing.
  const auto same = diff_listings(*b, *b);
  EXPECT_TRUE(same.added.empty() && same.removed.empty() && same.changed.empty());
  EXPECT_EQ(same.unchanged, b->size());
}

}  // namespace
}  // namespace slipway::artifacts
