// build_sample_release: a real artifact of the sample service, as a CI job would push it.
#include "lab/sample_release.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "artifacts/archive.h"
#include "artifacts/manifest.h"
#include "common/fs.h"
#include "lab/lab.h"
#include "unit/lab/test_util.h"

namespace slipway::lab {
namespace {

using testing::TempDir;

SampleRelease release(const TempDir& tmp, std::string version) {
  SampleRelease r;
  r.out_dir = tmp.path() / "out";
  r.version = std::move(version);
  r.sample_binary = SLIPWAY_SAMPLE_SERVICE;
  r.message = "first release";
  return r;
}

TEST(SampleRelease, WritesAnArchiveWithAManifestThatParses) {
  TempDir tmp;
  auto r = release(tmp, "1.0.0");
  r.health_timeout = Millis(20'000);
  r.healthy_for = Millis(1'500);
  r.interval = Millis(250);
  auto path = build_sample_release(r);
  ASSERT_TRUE(path) << path.error().message;
  EXPECT_EQ(*path, tmp.path() / "out" / "web-1.0.0.tar.gz");

  auto yaml = artifacts::read_archive_file(*path, "slipway.yaml");
  ASSERT_TRUE(yaml) << yaml.error().message;
  auto m = artifacts::parse_manifest(*yaml);
  ASSERT_TRUE(m) << m.error().message << "\n" << *yaml;
  EXPECT_EQ(m->start,
            "./bin/server --address ${SLIPWAY_ADDRESS} --port ${SLIPWAY_PORT} --version "
            "${SLIPWAY_VERSION} --app ${SLIPWAY_APP}");
  EXPECT_EQ(m->hooks.at("after_install"), "test -x ./bin/server");
  EXPECT_EQ(m->health.kind, artifacts::HealthKind::http);
  EXPECT_EQ(m->health.target, "http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health");
  EXPECT_EQ(m->health.timeout, Millis(20'000));
  EXPECT_EQ(m->health.healthy_for, Millis(1'500));
  EXPECT_EQ(m->health.interval, Millis(250));

  auto version = artifacts::read_archive_file(*path, "VERSION");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, "1.0.0\n");
  auto changelog = artifacts::read_archive_file(*path, "CHANGELOG");
  ASSERT_TRUE(changelog);
  EXPECT_EQ(*changelog, "1.0.0: first release\n");
  auto conf = artifacts::read_archive_file(*path, "config/app.conf");
  ASSERT_TRUE(conf);
  EXPECT_NE(conf->find("version = 1.0.0\n"), std::string::npos) << *conf;
  EXPECT_NE(conf->find("message = first release\n"), std::string::npos) << *conf;
}

TEST(SampleRelease, AnUnhealthyReleaseStartsWithUnhealthy) {
  TempDir tmp;
  auto r = release(tmp, "1.2.0");
  r.healthy = false;
  auto path = build_sample_release(r);
  ASSERT_TRUE(path) << path.error().message;
  auto yaml = artifacts::read_archive_file(*path, "slipway.yaml");
  ASSERT_TRUE(yaml);
  auto m = artifacts::parse_manifest(*yaml);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->start.ends_with(" --unhealthy")) << m->start;
}

TEST(SampleRelease, ExtractsToARunnableRelease) {
  TempDir tmp;
  auto path = build_sample_release(release(tmp, "1.1.0"));
  ASSERT_TRUE(path) << path.error().message;
  const fs::path dest = tmp.path() / "release";
  auto stats = artifacts::extract_archive(*path, dest);
  ASSERT_TRUE(stats) << stats.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dest / "bin" / "server").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_EQ(::access((dest / "bin" / "server").c_str(), X_OK), 0);
  // The very same bytes as the sample binary.
  auto shipped = read_file(dest / "bin" / "server", 512 << 20);
  auto original = read_file(SLIPWAY_SAMPLE_SERVICE, 512 << 20);
  ASSERT_TRUE(shipped && original);
  EXPECT_TRUE(*shipped == *original);

  // And it runs: the hook and the start command as the agent would run them.
  testing::Child hook({"/bin/sh", "-c", "cd '" + dest.string() + "' && test -x ./bin/server"});
  EXPECT_EQ(hook.exit_code(), 0);
  testing::Child app({(dest / "bin" / "server").string(), "--address", "127.0.0.1", "--port", "0",
                      "--version", "1.1.0", "--app", "web"});
  auto line = app.read_line();
  ASSERT_TRUE(line);
  const int port = std::stoi(line->substr(line->rfind(':') + 1));
  EXPECT_EQ(testing::body_of(testing::get(port, "/version")), "1.1.0\n");
  ::kill(app.pid(), SIGTERM);
  EXPECT_EQ(app.exit_code(), 0);
}

TEST(SampleRelease, MessageStaysOnOneLine) {
  TempDir tmp;
  auto r = release(tmp, "1.0.1");
  r.message = "fix\nversion = 9.9.9";
  auto path = build_sample_release(r);
  ASSERT_TRUE(path) << path.error().message;
  auto conf = artifacts::read_archive_file(*path, "config/app.conf");
  ASSERT_TRUE(conf);
  EXPECT_EQ(conf->find("\nversion = 9.9.9"), std::string::npos) << *conf;
}

TEST(SampleRelease, RefusesBadInput) {
  TempDir tmp;
  auto r = release(tmp, "1.0.0");
  r.app = "../web";
  auto bad_app = build_sample_release(r);
  ASSERT_FALSE(bad_app);
  EXPECT_EQ(bad_app.error().code, Errc::invalid_argument);

  r = release(tmp, "1.0.0/x");
  EXPECT_FALSE(build_sample_release(r));

  r = release(tmp, "1.0.0");
  r.sample_binary = tmp.path() / "missing";
  auto missing = build_sample_release(r);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("missing"), std::string::npos);

  r = release(tmp, "1.0.0");
  r.interval = Millis(0);
  EXPECT_FALSE(build_sample_release(r));
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "web-1.0.0.tar.gz"));
}

TEST(SampleRelease, FindSampleBinaryHonoursTheEnvironment) {
  ::setenv("SLIPWAY_SAMPLE_SERVICE", SLIPWAY_SAMPLE_SERVICE, 1);
  auto found = find_sample_binary();
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, fs::path(SLIPWAY_SAMPLE_SERVICE));
  ::setenv("SLIPWAY_SAMPLE_SERVICE", "/nonexistent/slipway-sample-service", 1);
  auto missing = find_sample_binary();
  ::unsetenv("SLIPWAY_SAMPLE_SERVICE");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message.find("/nonexistent"), std::string::npos);
}

TEST(SampleRelease, FindSampleBinaryLooksNextToThisExecutableAndInPath) {
  ::unsetenv("SLIPWAY_SAMPLE_SERVICE");
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  // The test binary does not sit next to the sample service (tests/ vs the build root), so
  // what finds it here is PATH.
  const std::string dir = fs::path(SLIPWAY_SAMPLE_SERVICE).parent_path().string();
  ::setenv("PATH", ("/nonexistent:" + dir).c_str(), 1);
  auto found = find_sample_binary();
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(fs::canonical(*found), fs::canonical(SLIPWAY_SAMPLE_SERVICE));
  ::setenv("PATH", "/nonexistent", 1);
  auto self = self_executable();
  ASSERT_TRUE(self);
  auto missing = find_sample_binary();
  ::setenv("PATH", old_path.c_str(), 1);
  if (fs::exists(self->parent_path() / "slipway-sample-service")) GTEST_SKIP();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("slipway-sample-service"), std::string::npos);
}

}  // namespace
}  // namespace slipway::lab
