#include "artifacts/blob_store.h"

#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/crypto.h"
#include "support/temp_dir.h"

namespace slipway::artifacts {
namespace {

using ::testing::HasSubstr;

using slipway::testing::ReadAll;
using slipway::testing::WriteAll;

size_t CountFiles(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    n += e.is_regular_file() ? 1 : 0;
  return n;
}

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = store_.open();
    ASSERT_TRUE(st) << st.error().message;
  }

  // Writes `content` to a fresh temporary upload and returns its path.
  fs::path Upload(std::string_view content) {
    const fs::path p = store_.temp_path();
    WriteAll(p, content);
    return p;
  }

  slipway::testing::TempDir tmp_;
  BlobStore store_{tmp_.path() / "blobs"};
};

TEST_F(BlobStoreTest, OpenCreatesTheLayoutAndClearsLeftovers) {
  EXPECT_TRUE(fs::is_directory(tmp_.path() / "blobs" / "sha256"));
  EXPECT_TRUE(fs::is_directory(tmp_.path() / "blobs" / "tmp"));
  const auto left = Upload("interrupted upload");
  fs::create_directory(tmp_.path() / "blobs" / "tmp" / "a-dir");
  BlobStore again(tmp_.path() / "blobs");
  ASSERT_TRUE(again.open());
  EXPECT_FALSE(fs::exists(left));
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "blobs" / "tmp"));
}

TEST_F(BlobStoreTest, TempPathsAreUniqueAndInTmp) {
  std::set<fs::path> seen;
  for (int i = 0; i < 100; ++i) {
    const auto p = store_.temp_path();
    EXPECT_EQ(p.parent_path(), tmp_.path() / "blobs" / "tmp");
    EXPECT_FALSE(fs::exists(p));
    EXPECT_TRUE(seen.insert(p).second);
  }
}

TEST_F(BlobStoreTest, CommitStoresUnderTheDigest) {
  const std::string content = "artifact bytes";
  const auto temp = Upload(content);
  auto sha = store_.commit(temp);
  ASSERT_TRUE(sha) << sha.error().message;
  EXPECT_EQ(*sha, sha256_hex(content));
  EXPECT_FALSE(fs::exists(temp));
  const auto path = store_.path_of(*sha);
  EXPECT_EQ(path, tmp_.path() / "blobs" / "sha256" / sha->substr(0, 2) / *sha);
  EXPECT_EQ(ReadAll(path), content);
  EXPECT_TRUE(store_.contains(*sha));
  EXPECT_EQ(*store_.size_of(*sha), content.size());
  EXPECT_TRUE(store_.verify(*sha));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);  // immutable
}

TEST_F(BlobStoreTest, SameContentIsStoredOnce) {
  auto a = store_.commit(Upload("same"));
  const auto second = Upload("same");
  auto b = store_.commit(second);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(fs::exists(second));
  EXPECT_EQ(CountFiles(tmp_.path() / "blobs" / "sha256"), 1u);
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "blobs" / "tmp"));
}

TEST_F(BlobStoreTest, ExpectedDigestMustMatch) {
  const auto temp = Upload("real content");
  auto r = store_.commit(temp, sha256_hex("other content"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_THAT(r.error().message, HasSubstr(sha256_hex("real content")));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(store_.contains(sha256_hex("real content")));
  EXPECT_FALSE(store_.contains(sha256_hex("other content")));
  EXPECT_EQ(CountFiles(tmp_.path() / "blobs"), 0u);
}

TEST_F(BlobStoreTest, ExpectedDigestMatchesInAnyCase) {
  std::string upper = sha256_hex("x");
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(c));
  auto r = store_.commit(Upload("x"), upper);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, sha256_hex("x"));
}

TEST_F(BlobStoreTest, MalformedExpectedDigest) {
  const auto temp = Upload("x");
  auto r = store_.commit(temp, std::string("abc"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_FALSE(fs::exists(temp));
}

TEST_F(BlobStoreTest, CommitOfAMissingFile) {
  auto r = store_.commit(store_.temp_path());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io);
}

TEST_F(BlobStoreTest, CommitFromOutsideTheStore) {
  const fs::path outside = tmp_.path() / "elsewhere.bin";
  WriteAll(outside, "from elsewhere");
  auto r = store_.commit(outside);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_EQ(ReadAll(store_.path_of(*r)), "from elsewhere");
}

TEST_F(BlobStoreTest, CommitFromAnotherFileSystem) {
  struct stat a, b;
  if (::stat("/dev/shm", &b) != 0 || ::stat(tmp_.path().c_str(), &a) != 0 || a.st_dev == b.st_dev) {
    GTEST_SKIP() << "no second file system (/dev/shm) to move from";
  }
  const fs::path other = fs::path("/dev/shm") / ("slipway-blob-test-" + random_hex(8));
  WriteAll(other, "cross-device");
  auto r = store_.commit(other);
  std::error_code ec;
  fs::remove(other, ec);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(ReadAll(store_.path_of(*r)), "cross-device");
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "blobs" / "tmp"));
}

TEST_F(BlobStoreTest, VerifyDetectsCorruption) {
  auto sha = store_.commit(Upload("pristine"));
  ASSERT_TRUE(sha);
  const auto path = store_.path_of(*sha);
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  WriteAll(path, "tampered");
  auto v = store_.verify(*sha);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Errc::io);
  EXPECT_THAT(v.error().message, HasSubstr(sha256_hex("tampered")));
}

TEST_F(BlobStoreTest, MissingBlobs) {
  const std::string absent = sha256_hex("never stored");
  EXPECT_FALSE(store_.contains(absent));
  EXPECT_EQ(store_.size_of(absent).error().code, Errc::not_found);
  EXPECT_EQ(store_.verify(absent).error().code, Errc::not_found);
}

TEST_F(BlobStoreTest, Remove) {
  auto sha = store_.commit(Upload("to remove"));
  ASSERT_TRUE(sha);
  ASSERT_TRUE(store_.remove(*sha));
  EXPECT_FALSE(store_.contains(*sha));
  EXPECT_FALSE(fs::exists(store_.path_of(*sha)));
  EXPECT_TRUE(store_.remove(*sha));  // again: nothing to do, not an error
}

TEST_F(BlobStoreTest, MalformedDigestsNeverReachTheFileSystem) {
  for (const std::string& bad :
       std::vector<std::string>{"", "../../etc/passwd", "abc", std::string(64, 'g'),
                                std::string(64, 'A'), std::string(63, 'a') + "/"}) {
    EXPECT_TRUE(store_.path_of(bad).empty()) << bad;
    EXPECT_FALSE(store_.contains(bad)) << bad;
    EXPECT_EQ(store_.size_of(bad).error().code, Errc::invalid_argument) << bad;
    EXPECT_EQ(store_.verify(bad).error().code, Errc::invalid_argument) << bad;
    EXPECT_EQ(store_.remove(bad).error().code, Errc::invalid_argument) << bad;
  }
}

TEST_F(BlobStoreTest, ConcurrentCommits) {
  constexpr int kThreads = 8;
  std::vector<fs::path> temps;
  for (int i = 0; i < kThreads; ++i)
    temps.push_back(Upload(i % 2 ? "odd" : "even"));
  std::vector<std::string> digests(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto r = store_.commit(temps[i]);
      digests[i] = r ? *r : "error: " + r.error().message;
    });
  }
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(digests[i], sha256_hex(i % 2 ? "odd" : "even")) << i;
  }
  EXPECT_EQ(CountFiles(tmp_.path() / "blobs" / "sha256"), 2u);
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "blobs" / "tmp"));
  EXPECT_TRUE(store_.verify(sha256_hex("odd")));
  EXPECT_TRUE(store_.verify(sha256_hex("even")));
}

}  // namespace
}  // namespace slipway::artifacts
