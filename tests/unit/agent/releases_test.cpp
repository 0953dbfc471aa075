#include "agent/releases.h"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "agent_test_util.h"

namespace slipway::agent {
namespace {

using testing::build_release;
using testing::BuiltRelease;
using testing::slurp;
using testing::TempDir;

class Releases : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(rel_.open()); }
  BuiltRelease archive(const std::string& version) {
    return build_release(dir_ / ("web-" + version + ".tar.gz"), "start: ./bin/run\n",
                         {{"bin/run", "#!/bin/sh\necho " + version + "\n"}});
  }
  std::vector<std::string> versions() const {
    std::vector<std::string> out;
    for (const auto& r : rel_.list())
      out.push_back(r.version);
    return out;
  }
  // Unpacks VERSION and returns its digest.
  std::string install(const std::string& version) {
    const auto a = archive(version);
    auto st = rel_.unpack(version, a.sha256, a.archive);
    EXPECT_TRUE(st) << st.error().message;
    return a.sha256;
  }

  TempDir dir_;
  AppReleases rel_{dir_ / "apps", "web"};
};

TEST_F(Releases, UnpacksIntoPlaceAndRemembersTheDigest) {
  const auto a = archive("1.0.0");
  auto stats = rel_.unpack("1.0.0", a.sha256, a.archive);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_GE(stats->files, 2u);
  EXPECT_EQ(slurp(rel_.release_dir("1.0.0") / "bin/run"), "#!/bin/sh\necho 1.0.0\n");
  EXPECT_TRUE(rel_.has_release("1.0.0", a.sha256));
  EXPECT_FALSE(rel_.has_release("1.0.0", std::string(64, 'a')));
  EXPECT_FALSE(rel_.has_release("2.0.0", a.sha256));
  const auto info = rel_.info("1.0.0");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->sha256, a.sha256);
  EXPECT_EQ(info->state, ReleaseState::installed);
  EXPECT_GT(info->installed_at, 0);
  EXPECT_TRUE(fs::exists(rel_.dir() / "meta" / "1.0.0.json"));
  EXPECT_FALSE(rel_.current());
  // Nothing temporary left next to the release.
  for (const auto& e : fs::directory_iterator(rel_.dir() / "releases")) {
    EXPECT_EQ(e.path().filename(), "1.0.0");
  }
}

TEST_F(Releases, AHostileArchiveLeavesNothingBehind) {
  const fs::path bad = dir_ / "bad.tar.gz";
  ASSERT_TRUE(artifacts::write_tar_gz(bad, {testing::file_entry("slipway.yaml", "start: x\n"),
                                            testing::file_entry("../escape", "gotcha")}));
  auto stats = rel_.unpack("6.6.6", std::string(64, 'b'), bad);
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code, Errc::invalid_argument);
  EXPECT_TRUE(fs::is_empty(rel_.dir() / "releases"));
  EXPECT_FALSE(fs::exists(rel_.dir() / "escape"));
  EXPECT_FALSE(rel_.info("6.6.6"));
}

TEST_F(Releases, RefusesNamesThatAreNotVersions) {
  const auto a = archive("1.0.0");
  EXPECT_FALSE(rel_.unpack("../evil", a.sha256, a.archive));
  EXPECT_FALSE(rel_.unpack("1.0.0", "not-a-digest", a.archive));
  EXPECT_FALSE(rel_.activate(".."));
  EXPECT_FALSE(rel_.activate("9.9.9")) << "not on disk";
}

TEST_F(Releases, ActivateSwitchesTheCurrentLink) {
  install("1.0.0");
  install("1.1.0");
  ASSERT_TRUE(rel_.activate("1.0.0"));
  EXPECT_EQ(rel_.current(), "1.0.0");
  EXPECT_EQ(fs::read_symlink(rel_.current_link()), fs::path("releases/1.0.0"));
  ASSERT_TRUE(rel_.activate("1.1.0"));
  EXPECT_EQ(rel_.current(), "1.1.0");
  EXPECT_EQ(slurp(rel_.current_link() / "bin/run"), "#!/bin/sh\necho 1.1.0\n");
  ASSERT_TRUE(rel_.deactivate());
  EXPECT_FALSE(rel_.current());
  EXPECT_FALSE(fs::is_symlink(rel_.current_link()));
  EXPECT_TRUE(rel_.deactivate()) << "no link is not an error";
}

TEST_F(Releases, ReplacesAReleaseThatIsNotCurrentButNeverTheCurrentOne) {
  install("1.0.0");
  const auto other = build_release(dir_ / "other.tar.gz", "start: ./other\n");
  auto st = rel_.unpack("1.0.0", other.sha256, other.archive);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(rel_.has_release("1.0.0", other.sha256));
  EXPECT_FALSE(fs::exists(rel_.release_dir("1.0.0") / "bin"));
  ASSERT_TRUE(rel_.activate("1.0.0"));
  const auto again = archive("1.0.0");
  auto refused = rel_.unpack("1.0.0", again.sha256, again.archive);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::failed_precondition);
  EXPECT_TRUE(rel_.has_release("1.0.0", other.sha256)) << "the current release is untouched";
}

TEST_F(Releases, MarksAndRemembersAcrossInstances) {
  install("1.0.0");
  install("1.1.0");
  ASSERT_TRUE(rel_.mark("1.0.0", ReleaseState::healthy));
  ASSERT_TRUE(rel_.mark("1.1.0", ReleaseState::failed, "health check failed: HTTP 500"));
  ASSERT_TRUE(rel_.set_port(43210));
  EXPECT_FALSE(rel_.mark("9.9.9", ReleaseState::healthy));

  AppReleases again(dir_ / "apps", "web");
  ASSERT_TRUE(again.open());
  EXPECT_EQ(again.last_healthy(), "1.0.0");
  EXPECT_EQ(again.port(), 43210);
  EXPECT_EQ(again.info("1.0.0")->state, ReleaseState::healthy);
  EXPECT_EQ(again.info("1.1.0")->state, ReleaseState::failed);
  EXPECT_EQ(again.info("1.1.0")->reason, "health check failed: HTTP 500");
  EXPECT_EQ(again.list().size(), 2u);
}

TEST_F(Releases, ListsOldestInstallFirst) {
  install("2.0.0");
  install("1.0.0");
  install("10.0.0");
  EXPECT_EQ(versions(), (std::vector<std::string>{"2.0.0", "1.0.0", "10.0.0"}));
}

TEST_F(Releases, PruneRemovesOldestFirst) {
  for (const char* v : {"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"})
    install(v);
  ASSERT_TRUE(rel_.activate("1.4.0"));
  ASSERT_TRUE(rel_.mark("1.4.0", ReleaseState::healthy));
  auto removed = rel_.prune(2);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, (std::vector<std::string>{"1.0.0", "1.1.0", "1.2.0"}));
  EXPECT_EQ(versions(), (std::vector<std::string>{"1.3.0", "1.4.0"}));
  EXPECT_FALSE(fs::exists(rel_.release_dir("1.0.0")));
  EXPECT_FALSE(fs::exists(rel_.dir() / "meta" / "1.0.0.json"));
}

TEST_F(Releases, PruneNeverRemovesTheCurrentOrTheLastHealthyRelease) {
  const auto sha100 = install("1.0.0");
  for (const char* v : {"1.1.0", "1.2.0", "1.3.0"})
    install(v);
  ASSERT_TRUE(rel_.mark("1.0.0", ReleaseState::healthy));  // oldest, last healthy
  ASSERT_TRUE(rel_.activate("1.1.0"));                     // second oldest, current
  auto removed = rel_.prune(1);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, (std::vector<std::string>{"1.2.0"}));
  EXPECT_EQ(versions(), (std::vector<std::string>{"1.0.0", "1.1.0", "1.3.0"}));
  EXPECT_TRUE(rel_.has_release("1.0.0", sha100));
  EXPECT_EQ(rel_.current(), "1.1.0");
}

TEST_F(Releases, OpenCleansUpInterruptedWork) {
  install("1.0.0");
  fs::create_directories(rel_.dir() / "releases" / ".2.0.0.tmp-abc123" / "bin");
  AppReleases again(dir_ / "apps", "web");
  ASSERT_TRUE(again.open());
  EXPECT_FALSE(fs::exists(rel_.dir() / "releases" / ".2.0.0.tmp-abc123"));
  EXPECT_TRUE(fs::exists(rel_.release_dir("1.0.0")));
}

TEST_F(Releases, AReleaseWithoutMetadataIsNotTrusted) {
  const auto sha = install("1.0.0");
  fs::remove(rel_.dir() / "meta" / "1.0.0.json");
  EXPECT_FALSE(rel_.has_release("1.0.0", sha));
  EXPECT_EQ(versions(), (std::vector<std::string>{"1.0.0"})) << "listed, so prune can remove it";
}

}  // namespace
}  // namespace slipway::agent
