// The node-side runtime with real processes (the sample web service), real archives and real
// health checks; only the transport of artifact bytes is a local stand-in (LocalFetcher).
#include "agent/node_runtime.h"

#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>

#include "agent/releases.h"
#include "agent_test_util.h"
#include "common/strings.h"
#include "net/http_client.h"

namespace slipway::agent {
namespace {

using namespace std::chrono_literals;
using testing::build_release;
using testing::BuiltRelease;
using testing::LocalFetcher;
using testing::process_gone;
using testing::RecordingSink;
using testing::slurp;
using testing::TempDir;
using testing::wait_until;

struct ReleaseOptions {
  bool unhealthy = false;
  std::string hooks;  // YAML lines under `hooks:`, each indented by two spaces
  std::string extra;  // more top-level YAML
  std::string health_timeout = "10s";
};

class NodeRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    id_.name = "node-1";
    id_.env = "staging";
    id_.address = "127.0.0.1";
    id_.root = root_.path();
    runtime_ = std::make_unique<NodeRuntime>(id_, fetcher_);
    ASSERT_TRUE(runtime_->open());
  }
  void TearDown() override {
    if (runtime_) runtime_->shutdown();
  }

  // A release of "web" running the sample service through a script in the archive.
  BuiltRelease release(const std::string& version, const ReleaseOptions& o = {}) {
    std::string yaml =
        "start: ./bin/run --address ${SLIPWAY_ADDRESS} --port ${SLIPWAY_PORT} --version "
        "${SLIPWAY_VERSION}" +
        std::string(o.unhealthy ? " --unhealthy" : "") +
        "\n"
        "stop_timeout: 5s\n"
        "env:\n"
        "  GREETING_FOR: ${SLIPWAY_APP}-${SLIPWAY_VERSION}\n"
        "health:\n"
        "  http: http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health\n"
        "  timeout: " +
        o.health_timeout +
        "\n"
        "  healthy_for: 200ms\n"
        "  interval: 50ms\n" +
        o.extra;
    if (!o.hooks.empty()) yaml += "hooks:\n" + o.hooks;
    auto r = build_release(
        archives_ / ("web-" + version + (o.unhealthy ? "-bad" : "") + ".tar.gz"), yaml,
        {{"bin/run", std::string("#!/bin/sh\nexec ") + SLIPWAY_SAMPLE_SERVICE + " \"$@\"\n"},
         {"VERSION", version + "\n"}});  // so that every release has its own bytes
    fetcher_.add(r.sha256, r.archive);
    return r;
  }

  protocol::InstallCommand command(const std::string& version, const BuiltRelease& r,
                                   int keep = 5) {
    protocol::InstallCommand c;
    c.action = "a-" + version;
    c.deploy = 1;
    c.app = "web";
    c.version = version;
    c.sha256 = r.sha256;
    c.url = "/api/v1/blobs/" + r.sha256;
    c.env = {{"FROM_SERVER", "yes"}};
    c.keep_releases = keep;
    return c;
  }

  protocol::InstallResult install(const std::string& version, const BuiltRelease& r, int keep = 5) {
    sink_.clear();
    return runtime_->install(command(version, r, keep), sink_);
  }

  fs::path app_dir() const { return root_.path() / "apps" / "web"; }
  std::optional<std::string> current() const {
    std::error_code ec;
    auto t = fs::read_symlink(app_dir() / "current", ec);
    if (ec) return std::nullopt;
    return t.filename().string();
  }
  pid_t app_pid() const {
    const std::string s(trim(slurp(app_dir() / "app.pid")));
    return s.empty() ? 0 : std::stoi(s);
  }
  protocol::AppState state() const {
    for (const auto& s : runtime_->app_states()) {
      if (s.app == "web") return s;
    }
    return {};
  }
  // What the running service says at GET / ("" when nothing answers).
  std::string greeting() const {
    const int port = state().port;
    auto r = net::http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/", {}, "",
                               {.timeout = 2s});
    return r && r->status == 200 ? r->body : "";
  }

  TempDir root_;
  TempDir archives_;
  NodeIdentity id_;
  LocalFetcher fetcher_;
  RecordingSink sink_;
  std::unique_ptr<NodeRuntime> runtime_;
};

TEST_F(NodeRuntimeTest, FreshInstallIsHealthyAndReportsEveryStep) {
  const auto r = release("1.0.0");
  const auto res = install("1.0.0", r);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_EQ(res.action, "a-1.0.0");
  EXPECT_EQ(res.app, "web");
  EXPECT_EQ(res.version, "1.0.0");
  EXPECT_TRUE(res.healthy);
  EXPECT_TRUE(res.downloaded);
  EXPECT_TRUE(res.reverted_to.empty());
  EXPECT_EQ(fetcher_.calls, 1);
  EXPECT_EQ(sink_.sequence(),
            (std::vector<std::string>{"download=ok", "verify=ok", "unpack=ok", "stop=skipped",
                                      "switch=ok", "start=ok", "health=ok", "prune=ok"}));
  for (const auto& e : sink_.events()) {
    EXPECT_EQ(e.action, "a-1.0.0");
    EXPECT_GT(e.started_at, 0);
  }
  EXPECT_NE(sink_.output("verify").find(r.sha256), std::string::npos);
  EXPECT_NE(sink_.output("health").find("HTTP 200"), std::string::npos) << sink_.output("health");

  EXPECT_EQ(current(), "1.0.0");
  EXPECT_TRUE(fs::is_empty(root_.path() / "downloads")) << "the download is deleted once unpacked";
  const auto s = state();
  EXPECT_EQ(s.version, "1.0.0");
  EXPECT_TRUE(s.healthy);
  EXPECT_TRUE(s.running);
  EXPECT_GT(s.port, 0);
  EXPECT_EQ(s.last_healthy, "1.0.0");
  EXPECT_EQ(s.releases, (std::vector<std::string>{"1.0.0"}));
  EXPECT_EQ(res.apps.size(), 1u);
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos);
  EXPECT_FALSE(process_gone(app_pid()));
}

TEST_F(NodeRuntimeTest, HooksAndTheAppSeeTheSlipwayVariables) {
  const fs::path out = archives_ / "hook-env.txt";
  ReleaseOptions o;
  // Single quotes: only the agent's own expansion can fill these in.
  o.hooks =
      "  after_install: echo '${SLIPWAY_APP} ${SLIPWAY_VERSION} ${SLIPWAY_ENV} "
      "${SLIPWAY_NODE} ${SLIPWAY_ADDRESS}' > " +
      out.string() +
      "\n"
      "  before_start: env | sort > " +
      out.string() + ".env; pwd > " + out.string() + ".cwd\n";
  const auto r = release("1.0.0", o);
  const auto res = install("1.0.0", r);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_EQ(slurp(out), "web 1.0.0 staging node-1 127.0.0.1\n");
  const std::string env = slurp(out.string() + ".env");
  const int port = state().port;
  for (const std::string& line : std::vector<std::string>{
           "SLIPWAY_APP=web", "SLIPWAY_VERSION=1.0.0", "SLIPWAY_ENV=staging", "SLIPWAY_NODE=node-1",
           "SLIPWAY_ADDRESS=127.0.0.1", "SLIPWAY_PORT=" + std::to_string(port),
           "SLIPWAY_RELEASE_DIR=" + (app_dir() / "releases" / "1.0.0").string(),
           "GREETING_FOR=web-1.0.0", "FROM_SERVER=yes"}) {
    EXPECT_NE(env.find(line + "\n"), std::string::npos) << line << "\n" << env;
  }
  EXPECT_EQ(slurp(out.string() + ".cwd"), (app_dir() / "releases" / "1.0.0").string() + "\n");
  EXPECT_EQ(sink_.sequence(),
            (std::vector<std::string>{
                "download=ok", "verify=ok", "unpack=ok", "hook:after_install=ok", "stop=skipped",
                "switch=ok", "hook:before_start=ok", "start=ok", "health=ok", "prune=ok"}));
}

TEST_F(NodeRuntimeTest, RedeployAndRollBackWithoutDownloading) {
  const auto v1 = release("1.0.0");
  const auto v2 = release("1.1.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const int port = state().port;
  const pid_t pid1 = app_pid();
  auto res = install("1.1.0", v2);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_EQ(fetcher_.calls, 2);
  EXPECT_EQ(current(), "1.1.0");
  EXPECT_TRUE(process_gone(pid1)) << "the old process was stopped";
  EXPECT_NE(greeting().find("1.1.0"), std::string::npos);
  EXPECT_EQ(state().port, port) << "one port per app";

  res = install("1.0.0", v1);  // the rollback
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_FALSE(res.downloaded);
  EXPECT_EQ(fetcher_.calls, 2) << "nothing fetched";
  EXPECT_EQ(res.version, "1.0.0");
  EXPECT_EQ(sink_.status("download"), "skipped");
  EXPECT_NE(sink_.output("download").find("already on disk"), std::string::npos);
  EXPECT_EQ(sink_.status("verify"), "skipped");
  EXPECT_EQ(sink_.status("unpack"), "skipped");
  EXPECT_EQ(sink_.status("stop"), "ok");
  EXPECT_EQ(current(), "1.0.0");
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos);
  EXPECT_EQ(state().releases, (std::vector<std::string>{"1.0.0", "1.1.0"}));
}

TEST_F(NodeRuntimeTest, RedeployingTheCurrentVersionRestartsIt) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const pid_t before = app_pid();
  const auto res = install("1.0.0", v1);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_FALSE(res.downloaded);
  EXPECT_NE(app_pid(), before);
  EXPECT_TRUE(process_gone(before));
  EXPECT_EQ(sink_.status("health"), "ok");
}

TEST_F(NodeRuntimeTest, FailedHealthCheckRevertsToThePreviousRelease) {
  const auto good = release("1.0.0");
  ReleaseOptions bad_opts;
  bad_opts.unhealthy = true;
  bad_opts.health_timeout = "1s";
  const auto bad = release("1.1.0", bad_opts);
  ASSERT_TRUE(install("1.0.0", good).ok);
  const auto res = install("1.1.0", bad);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.reason.find("health check failed"), std::string::npos) << res.reason;
  EXPECT_NE(res.reason.find("HTTP 500: unhealthy"), std::string::npos) << res.reason;
  EXPECT_EQ(res.reverted_to, "1.0.0");
  EXPECT_EQ(res.version, "1.0.0");
  EXPECT_TRUE(res.healthy);
  const auto seq = sink_.sequence();
  ASSERT_GE(seq.size(), 2u);
  EXPECT_EQ(seq[seq.size() - 2], "health=failed");
  EXPECT_EQ(seq.back(), "revert=ok");
  EXPECT_EQ(current(), "1.0.0");
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos) << "the old release serves again";

  AppReleases rel(root_.path() / "apps", "web");
  ASSERT_TRUE(rel.open());
  ASSERT_TRUE(rel.info("1.1.0"));
  EXPECT_EQ(rel.info("1.1.0")->state, ReleaseState::failed) << "kept for inspection";
  EXPECT_NE(rel.info("1.1.0")->reason.find("HTTP 500"), std::string::npos);
  EXPECT_EQ(rel.last_healthy(), "1.0.0");
  EXPECT_EQ(state().last_healthy, "1.0.0");
}

TEST_F(NodeRuntimeTest, AProcessThatExitsDuringTheHealthCheckFailsIt) {
  const auto good = release("1.0.0");
  auto crashing = build_release(
      archives_ / "crash.tar.gz",
      "start: ./bin/run --address ${SLIPWAY_ADDRESS} --port ${SLIPWAY_PORT} --exit-after-ms 100\n"
      "health:\n  tcp: ${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}\n  timeout: 10s\n  healthy_for: 2s\n"
      "  interval: 50ms\n",
      {{"bin/run", std::string("#!/bin/sh\nexec ") + SLIPWAY_SAMPLE_SERVICE + " \"$@\"\n"}});
  fetcher_.add(crashing.sha256, crashing.archive);
  ASSERT_TRUE(install("1.0.0", good).ok);
  const auto res = install("1.1.0", crashing);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.reason.find("process exited (exit code 3)"), std::string::npos) << res.reason;
  EXPECT_EQ(res.reverted_to, "1.0.0");
  EXPECT_EQ(current(), "1.0.0");
}

TEST_F(NodeRuntimeTest, FailureOnFirstInstallLeavesNoCurrentRelease) {
  ReleaseOptions bad_opts;
  bad_opts.unhealthy = true;
  bad_opts.health_timeout = "500ms";
  const auto bad = release("1.0.0", bad_opts);
  const auto res = install("1.0.0", bad);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.version, "");
  EXPECT_EQ(res.reverted_to, "");
  EXPECT_FALSE(res.healthy);
  EXPECT_EQ(sink_.status("revert"), "ok");
  EXPECT_NE(sink_.output("revert").find("no previous release"), std::string::npos);
  EXPECT_FALSE(current());
  EXPECT_FALSE(fs::exists(app_dir() / "app.pid")) << "the app was stopped";
  const auto s = state();
  EXPECT_EQ(s.version, "");
  EXPECT_FALSE(s.running);
  EXPECT_FALSE(s.healthy);
  EXPECT_EQ(s.releases, (std::vector<std::string>{"1.0.0"})) << "kept for inspection";
}

TEST_F(NodeRuntimeTest, DigestMismatchFailsVerifyAndChangesNothing) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const pid_t pid = app_pid();
  const auto v2 = release("1.1.0");
  const auto other = release("1.2.0");
  ASSERT_NE(v2.sha256, other.sha256);
  fetcher_.add(v2.sha256, other.archive);  // the server hands out the wrong bytes
  const auto res = install("1.1.0", v2);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(sink_.status("verify"), "failed");
  EXPECT_NE(sink_.output("verify").find(v2.sha256), std::string::npos) << "expected digest";
  EXPECT_NE(sink_.output("verify").find(other.sha256), std::string::npos) << "actual digest";
  EXPECT_NE(res.reason.find("sha256 mismatch"), std::string::npos) << res.reason;
  EXPECT_EQ(sink_.sequence(), (std::vector<std::string>{"download=ok", "verify=failed"}));
  EXPECT_EQ(res.version, "1.0.0");
  EXPECT_EQ(current(), "1.0.0");
  EXPECT_FALSE(fs::exists(app_dir() / "releases" / "1.1.0"));
  EXPECT_TRUE(fs::is_empty(root_.path() / "downloads")) << "the bad download is deleted";
  EXPECT_EQ(app_pid(), pid);
  EXPECT_FALSE(process_gone(pid));
}

TEST_F(NodeRuntimeTest, AnInterruptedDownloadKeepsItsBytesForTheNextAttempt) {
  const auto v1 = release("1.0.0");
  fetcher_.fail_after_bytes = 100;
  auto res = install("1.0.0", v1);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(sink_.sequence(), (std::vector<std::string>{"download=failed"}));
  EXPECT_NE(res.reason.find("connection reset"), std::string::npos) << res.reason;
  const fs::path part = root_.path() / "downloads" / (v1.sha256 + ".part");
  ASSERT_TRUE(fs::exists(part));
  EXPECT_EQ(fs::file_size(part), 100u);
  EXPECT_FALSE(current());

  fetcher_.fail_after_bytes = -1;
  res = install("1.0.0", v1);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_NE(sink_.output("download").find("resumed after 100 bytes"), std::string::npos)
      << sink_.output("download");
}

TEST_F(NodeRuntimeTest, AFailingAfterInstallHookSwitchesNothing) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const pid_t pid = app_pid();
  ReleaseOptions o;
  o.hooks = "  after_install: echo checking migrations; exit 4\n";
  const auto v2 = release("1.1.0", o);
  const auto res = install("1.1.0", v2);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.reason, "hook after_install of 1.1.0 failed: exit code 4");
  EXPECT_EQ(sink_.sequence(), (std::vector<std::string>{"download=ok", "verify=ok", "unpack=ok",
                                                        "hook:after_install=failed"}));
  EXPECT_NE(sink_.output("hook:after_install").find("checking migrations"), std::string::npos);
  EXPECT_EQ(res.version, "1.0.0");
  EXPECT_TRUE(res.reverted_to.empty());
  EXPECT_EQ(current(), "1.0.0");
  EXPECT_EQ(app_pid(), pid) << "the running release was never touched";
  EXPECT_FALSE(process_gone(pid));
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos);
}

TEST_F(NodeRuntimeTest, AHookThatHangsTimesOut) {
  ReleaseOptions o;
  o.hooks = "  after_install: sleep 60\n";
  o.extra = "hook_timeout: 300ms\n";
  const auto v1 = release("1.0.0", o);
  const auto res = install("1.0.0", v1);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(sink_.status("hook:after_install"), "failed");
  EXPECT_NE(sink_.output("hook:after_install").find("timed out after 300ms"), std::string::npos);
  EXPECT_NE(res.reason.find("timed out"), std::string::npos) << res.reason;
  EXPECT_FALSE(current());
}

TEST_F(NodeRuntimeTest, AFailingStartHookRevertsToThePreviousRelease) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  ReleaseOptions o;
  o.hooks = "  before_start: exit 9\n";
  const auto v2 = release("1.1.0", o);
  const auto res = install("1.1.0", v2);
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.reverted_to, "1.0.0");
  EXPECT_EQ(sink_.status("hook:before_start"), "failed");
  EXPECT_EQ(sink_.status("start"), "") << "never started";
  EXPECT_EQ(sink_.status("revert"), "ok");
  EXPECT_EQ(current(), "1.0.0");
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos);
}

TEST_F(NodeRuntimeTest, PruneKeepsTheLastReleasesAndARollbackPastThemDownloadsAgain) {
  const auto v1 = release("1.0.0");
  const auto v2 = release("1.1.0");
  const auto v3 = release("1.2.0");
  ASSERT_TRUE(install("1.0.0", v1, 2).ok);
  ASSERT_TRUE(install("1.1.0", v2, 2).ok);
  EXPECT_NE(sink_.output("prune").find("nothing to remove"), std::string::npos);
  ASSERT_TRUE(install("1.2.0", v3, 2).ok);
  EXPECT_EQ(sink_.output("prune"), "removed 1.0.0");
  EXPECT_EQ(state().releases, (std::vector<std::string>{"1.1.0", "1.2.0"}));
  EXPECT_EQ(fetcher_.calls, 3);
  const auto res = install("1.0.0", v1, 2);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_TRUE(res.downloaded);
  EXPECT_EQ(fetcher_.calls, 4);
}

TEST_F(NodeRuntimeTest, ProbeAllNoticesAnAppThatDiedAndCameBack) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  EXPECT_FALSE(runtime_->probe_all()) << "healthy, as the install left it";
  EXPECT_TRUE(state().healthy);
  const pid_t pid = app_pid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return process_gone(pid); }));
  EXPECT_TRUE(wait_until([&] {
    runtime_->probe_all();
    return !state().healthy;
  }));
  // The supervisor restarts it (after its 1 s backoff) and the probes see it healthy again.
  EXPECT_TRUE(wait_until([&] {
    runtime_->probe_all();
    return state().healthy && state().running;
  }));
  EXPECT_NE(app_pid(), pid);
}

TEST_F(NodeRuntimeTest, ResumeAllStartsTheCurrentReleasesOfANewRuntime) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const int port = state().port;
  const pid_t old_pid = app_pid();
  runtime_.reset();  // the agent stops (and stops its apps)
  EXPECT_TRUE(process_gone(old_pid));

  runtime_ = std::make_unique<NodeRuntime>(id_, fetcher_);
  ASSERT_TRUE(runtime_->open());
  auto s = state();
  EXPECT_EQ(s.version, "1.0.0");
  EXPECT_FALSE(s.running);
  EXPECT_EQ(s.last_healthy, "1.0.0");
  const auto lines = runtime_->resume_all();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("web 1.0.0: started pid", 0), 0u) << lines[0];
  EXPECT_TRUE(wait_until([&] {
    runtime_->probe_all();
    return state().healthy;
  }));
  EXPECT_EQ(state().port, port) << "the persisted port";
  EXPECT_NE(greeting().find("1.0.0"), std::string::npos);
}

TEST_F(NodeRuntimeTest, ASecondOperationOnABusyAppFailsAtOnce) {
  const fs::path go = archives_ / "go";
  ReleaseOptions o;
  o.hooks = "  after_install: while [ ! -f " + go.string() + " ]; do sleep 0.02; done\n";
  const auto v1 = release("1.0.0", o);
  protocol::InstallResult first;
  std::thread t([&] { first = runtime_->install(command("1.0.0", v1), sink_); });
  ASSERT_TRUE(wait_until([&] {
    for (const auto& e : sink_.events()) {
      if (e.step == "hook:after_install") return true;  // started, and now waiting for `go`
    }
    return false;
  }));
  RecordingSink other;
  const auto second = runtime_->install(command("1.0.0", v1), other);
  EXPECT_FALSE(second.ok);
  EXPECT_EQ(second.reason, "busy: another operation on web is running");
  EXPECT_TRUE(other.events().empty());
  protocol::DeactivateCommand d{.action = "d1", .deploy = 1, .app = "web"};
  EXPECT_EQ(runtime_->deactivate(d, other).reason, "busy: another operation on web is running");
  std::ofstream(go) << "go";
  t.join();
  EXPECT_TRUE(first.ok) << first.reason;
}

TEST_F(NodeRuntimeTest, DeactivateStopsTheAppAndRemovesCurrent) {
  const auto v1 = release("1.0.0");
  ASSERT_TRUE(install("1.0.0", v1).ok);
  const pid_t pid = app_pid();
  RecordingSink sink;
  const auto res = runtime_->deactivate({.action = "d1", .deploy = 2, .app = "web"}, sink);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_EQ(res.version, "");
  EXPECT_EQ(sink.sequence(), (std::vector<std::string>{"stop=ok", "deactivate=ok"}));
  EXPECT_TRUE(process_gone(pid));
  EXPECT_FALSE(current());
  const auto s = state();
  EXPECT_EQ(s.version, "");
  EXPECT_FALSE(s.running);
  EXPECT_EQ(s.releases, (std::vector<std::string>{"1.0.0"})) << "still on disk for a rollback";
}

TEST_F(NodeRuntimeTest, AnAppRunByARestartCommand) {
  const fs::path marker = archives_ / "restarted.txt";
  auto r = build_release(archives_ / "ext.tar.gz",
                         "restart: echo restarted ${SLIPWAY_VERSION} >> " + marker.string() +
                             "\n"
                             "stop: echo stopped >> " +
                             marker.string() +
                             "\n"
                             "health:\n  command: grep -q 'restarted ${SLIPWAY_VERSION}' " +
                             marker.string() + "\n  healthy_for: 0s\n  interval: 50ms\n");
  fetcher_.add(r.sha256, r.archive);
  auto res = install("2.0.0", r);
  ASSERT_TRUE(res.ok) << res.reason;
  EXPECT_EQ(slurp(marker), "restarted 2.0.0\n");
  EXPECT_TRUE(state().running);
  EXPECT_FALSE(fs::exists(app_dir() / "app.pid")) << "not supervised by the agent";
  EXPECT_FALSE(runtime_->probe_all());
  EXPECT_TRUE(state().healthy);
  RecordingSink sink;
  ASSERT_TRUE(runtime_->deactivate({.action = "d", .deploy = 1, .app = "web"}, sink).ok);
  EXPECT_EQ(slurp(marker), "restarted 2.0.0\nstopped\n");
}

TEST_F(NodeRuntimeTest, RefusesBadCommands) {
  const auto v1 = release("1.0.0");
  auto c = command("1.0.0", v1);
  c.app = "../etc";
  EXPECT_FALSE(runtime_->install(c, sink_).ok);
  c = command("../1.0.0", v1);
  EXPECT_FALSE(runtime_->install(c, sink_).ok);
  c = command("1.0.0", v1);
  c.sha256 = "abc";
  EXPECT_FALSE(runtime_->install(c, sink_).ok);
  EXPECT_EQ(fetcher_.calls, 0);
  EXPECT_FALSE(fs::exists(root_.path() / "etc"));
}

}  // namespace
}  // namespace slipway::agent
