// File helpers (common/fs.h): atomic writes, atomic link switches, bounded reads.
#include "common/fs.h"

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace slipway {
namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir))
    ++n;
  return n;
}

// Sets the process umask for the scope of a test.
class Umask {
 public:
  explicit Umask(mode_t m) : old_(::umask(m)) {}
  ~Umask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(WriteFileAtomic, WritesContentWithTheRequestedMode) {
  testing::TempDir dir;
  const auto p = dir.path() / "token";
  ASSERT_TRUE(write_file_atomic(p, "s3cret\n", 0600));
  EXPECT_EQ(read_file(p).value(), "s3cret\n");
  EXPECT_EQ(mode_of(p), 0600u);
  EXPECT_EQ(entries(dir.path()), 1u);  // no temporary file left behind

  const auto q = dir.path() / "config";
  ASSERT_TRUE(write_file_atomic(q, ""));
  EXPECT_EQ(read_file(q).value(), "");
  EXPECT_EQ(mode_of(q), 0644u);
}

TEST(WriteFileAtomic, ModeIsNotFilteredByTheUmask) {
  testing::TempDir dir;
  Umask restrictive(077);
  const auto p = dir.path() / "public";
  ASSERT_TRUE(write_file_atomic(p, "x", 0644));
  EXPECT_EQ(mode_of(p), 0644u);
  ASSERT_TRUE(write_file_atomic(p, "x", 0755));
  EXPECT_EQ(mode_of(p), 0755u);
}

TEST(WriteFileAtomic, ReplacesAnExistingFileWhole) {
  testing::TempDir dir;
  const auto p = dir.path() / "state.json";
  ASSERT_TRUE(write_file_atomic(p, std::string(100'000, 'a'), 0644));
  ASSERT_TRUE(write_file_atomic(p, "short", 0600));
  EXPECT_EQ(read_file(p).value(), "short");
  EXPECT_EQ(mode_of(p), 0600u);
  EXPECT_EQ(entries(dir.path()), 1u);

  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(write_file_atomic(p, binary));
  EXPECT_EQ(read_file(p).value(), binary);
}

TEST(WriteFileAtomic, ReadersSeeOldOrNewNeverAMix) {
  testing::TempDir dir;
  const auto p = dir.path() / "f";
  const std::string a(200'000, 'a');
  const std::string b(300'000, 'b');
  ASSERT_TRUE(write_file_atomic(p, a));
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop) {
      auto r = read_file(p);
      if (!r || (*r != a && *r != b)) ++torn;
      ++reads;
    }
  });
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(write_file_atomic(p, i % 2 ? a : b));
  // Let the reader observe at least once after the last write, then stop it.
  const int seen = reads.load();
  while (reads.load() < seen + 2)
    std::this_thread::yield();
  stop = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
}

TEST(WriteFileAtomic, MissingDirectoryIsAnIoError) {
  testing::TempDir dir;
  auto st = write_file_atomic(dir.path() / "no" / "such" / "file", "x");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::io);
  EXPECT_NE(st.error().message.find("cannot create"), std::string::npos);
}

TEST(ReplaceSymlink, CreatesAndSwitchesTheLink) {
  testing::TempDir dir;
  fs::create_directories(dir.path() / "releases" / "1.0.0");
  fs::create_directories(dir.path() / "releases" / "1.1.0");
  const auto link = dir.path() / "current";
  ASSERT_TRUE(replace_symlink(link, "releases/1.0.0"));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), "releases/1.0.0");  // relative targets stay relative
  ASSERT_TRUE(replace_symlink(link, "releases/1.1.0"));
  EXPECT_EQ(fs::read_symlink(link), "releases/1.1.0");
  EXPECT_TRUE(fs::is_directory(link));
  EXPECT_EQ(entries(dir.path()), 2u);  // releases and current: no temporary link left
  // A dangling target is allowed (the link says where, not whether).
  ASSERT_TRUE(replace_symlink(link, "releases/9.9.9"));
  EXPECT_EQ(fs::read_symlink(link), "releases/9.9.9");
}

TEST(ReplaceSymlink, TheLinkNeverDisappearsDuringASwitch) {
  testing::TempDir dir;
  const auto link = dir.path() / "current";
  ASSERT_TRUE(replace_symlink(link, "a"));
  std::atomic<bool> stop{false};
  std::atomic<int> missing{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    char buf[64];
    while (!stop) {
      const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
      if (n <= 0 || (std::string(buf, n) != "a" && std::string(buf, n) != "b")) ++missing;
      ++reads;
    }
  });
  for (int i = 0; i < 500; ++i)
    ASSERT_TRUE(replace_symlink(link, i % 2 ? "a" : "b"));
  const int seen = reads.load();
  while (reads.load() < seen + 2)
    std::this_thread::yield();
  stop = true;
  reader.join();
  EXPECT_EQ(missing.load(), 0);
}

TEST(ReplaceSymlink, RefusesToReplaceADirectoryAndCleansUp) {
  testing::TempDir dir;
  const auto real = dir.path() / "current";
  fs::create_directories(real / "inside");
  auto st = replace_symlink(real, "elsewhere");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::io);
  EXPECT_TRUE(fs::is_directory(real / "inside"));
  EXPECT_EQ(entries(dir.path()), 1u);
  auto missing_parent = replace_symlink(dir.path() / "no" / "link", "x");
  ASSERT_FALSE(missing_parent);
  EXPECT_EQ(missing_parent.error().code, Errc::io);
}

TEST(ReadFile, ContentAndLimits) {
  testing::TempDir dir;
  const auto p = dir.path() / "f";
  const std::string content(200'000, 'q');
  ASSERT_TRUE(write_file_atomic(p, content));
  EXPECT_EQ(read_file(p).value(), content);
  EXPECT_EQ(read_file(p, content.size()).value(), content);  // exactly the limit is fine
  auto over = read_file(p, content.size() - 1);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::too_large);
  EXPECT_NE(over.error().message.find(p.string()), std::string::npos);
  auto tiny = read_file(p, 0);
  ASSERT_FALSE(tiny);
  EXPECT_EQ(tiny.error().code, Errc::too_large);

  const auto empty = dir.path() / "empty";
  ASSERT_TRUE(write_file_atomic(empty, ""));
  EXPECT_EQ(read_file(empty, 0).value(), "");
}

TEST(ReadFile, MissingAndUnreadable) {
  testing::TempDir dir;
  auto missing = read_file(dir.path() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos);
  auto directory = read_file(dir.path());
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, Errc::io);
  if (::geteuid() != 0) {  // root reads anything
    const auto p = dir.path() / "private";
    ASSERT_TRUE(write_file_atomic(p, "x", 0000));
    auto denied = read_file(p);
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().code, Errc::io);
  }
}

TEST(EnsureDir, CreatesNestedDirectoriesWithTheMode) {
  testing::TempDir dir;
  const auto p = dir.path() / "a" / "b" / "c";
  ASSERT_TRUE(ensure_dir(p, 0700));
  EXPECT_TRUE(fs::is_directory(p));
  EXPECT_EQ(mode_of(p), 0700u);
  ASSERT_TRUE(ensure_dir(p, 0755));  // again: fine, and the mode follows
  EXPECT_EQ(mode_of(p), 0755u);
  const auto file = dir.path() / "file";
  ASSERT_TRUE(write_file_atomic(file, "x"));
  auto st = ensure_dir(file);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::io);
}

TEST(RemoveTree, RemovesEverythingAndToleratesMissing) {
  testing::TempDir dir;
  const auto p = dir.path() / "tree";
  ASSERT_TRUE(ensure_dir(p / "x" / "y"));
  ASSERT_TRUE(write_file_atomic(p / "x" / "f", "1"));
  ASSERT_TRUE(replace_symlink(p / "link", "/"));  // a link is removed, never followed
  ASSERT_TRUE(remove_tree(p));
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(remove_tree(p));
}

}  // namespace
}  // namespace slipway
