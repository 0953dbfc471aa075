// Ad-hoc commands on the node: argv runs with no shell in between (words arrive as they are),
// PATH lookup, a command that cannot start, the environment and directory it gets, timeouts and
// cancellation.
#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/node_runtime.h"
#include "agent/process.h"
#include "agent_test_util.h"

namespace slipway::agent {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

class NoFetcher final : public Fetcher {
 public:
  Status fetch(const protocol::InstallCommand&, const fs::path&) override {
    return err(Errc::internal, "no downloads in this test");
  }
};

TEST(RunArgv, ArgumentsReachTheProgramVerbatim) {
  ProcessSpec spec;
  // printf repeats its format for every argument: one line per argument, as received.
  spec.argv = {"printf",     "[%s]\\n", "a b", "$(echo injected)", "`id`",
               "it's \"q\"", "",        "*",   "$HOME;x"};
  auto r = run_command(spec, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok()) << r->describe() << ": " << r->output;
  EXPECT_EQ(r->output, "[a b]\n[$(echo injected)]\n[`id`]\n[it's \"q\"]\n[]\n[*]\n[$HOME;x]\n");
}

TEST(RunArgv, LooksUpThePathOfTheCommandsEnvironment) {
  TempDir dir;
  const auto bin = dir.path() / "bin";
  fs::create_directories(bin);
  {
    std::ofstream f(bin / "hello-slipway");
    f << "#!/bin/sh\necho \"hello $1\"\n";
  }
  fs::permissions(bin / "hello-slipway", fs::perms::owner_all);
  ProcessSpec spec;
  spec.argv = {"hello-slipway", "world"};
  spec.env = {{"PATH", "/nonexistent:" + bin.string() + ":/usr/bin:/bin"}};
  auto r = run_command(spec, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->output, "hello world\n");

  spec.argv = {(bin / "hello-slipway").string(), "by path"};
  spec.env.clear();
  r = run_command(spec, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->output, "hello by path\n");
}

TEST(RunArgv, ACommandThatIsNotFoundIsAnError) {
  ProcessSpec spec;
  spec.argv = {"no-such-command-slipway-test"};
  auto r = run_command(spec, 10s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(r.error().message.find("no-such-command-slipway-test: command not found"),
            std::string::npos)
      << r.error().message;
  spec.argv = {"/nonexistent/dir/cmd"};
  r = run_command(spec, 10s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot execute /nonexistent/dir/cmd"), std::string::npos)
      << r.error().message;
}

TEST(RunArgv, CancelStopsTheCommand) {
  std::atomic<bool> cancel{false};
  ProcessSpec spec;
  spec.argv = {"sleep", "30"};
  spec.cancel = &cancel;
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto r = run_command(spec, 60s);
  t.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->exit_code, -1);
}

class ExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NodeIdentity id{"node-7", "staging", "127.0.0.1", root_.path()};
    runtime_ = std::make_unique<NodeRuntime>(id, fetcher_);
    ASSERT_TRUE(runtime_->open());
  }
  void TearDown() override { runtime_->shutdown(); }

  protocol::ExecResult exec(std::vector<std::string> argv, int64_t timeout_ms = 10'000,
                            std::map<std::string, std::string> env = {}) {
    protocol::ExecCommand c;
    c.action = "x1.1";
    c.argv = std::move(argv);
    c.env = std::move(env);
    c.timeout_ms = timeout_ms;
    return runtime_->exec(c);
  }

  TempDir root_;
  NoFetcher fetcher_;
  std::unique_ptr<NodeRuntime> runtime_;
};

TEST_F(ExecTest, RunsInTheRootWithTheNodesVariables) {
  auto r = exec({"sh", "-c", "pwd; echo \"$SLIPWAY_NODE $SLIPWAY_ENV $SLIPWAY_ADDRESS $EXTRA\""},
                10'000, {{"EXTRA", "from-server"}, {"SLIPWAY_NODE", "spoofed"}});
  EXPECT_EQ(r.action, "x1.1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            fs::absolute(root_.path()).string() + "\nnode-7 staging 127.0.0.1 from-server\n");
  EXPECT_GT(r.started_at, 0);
  EXPECT_GE(r.duration_ms, 0);
}

TEST_F(ExecTest, ReportsExitCodesSignalsTimeoutsAndCommandsThatCannotStart) {
  auto r = exec({"sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.output, "out\nerr\n");
  EXPECT_FALSE(r.timed_out);

  r = exec({"sh", "-c", "kill -9 $$"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, 9);

  r = exec({"sleep", "30"}, 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);

  r = exec({"no-such-command-slipway-test"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.output.find("command not found"), std::string::npos) << r.output;
}

TEST_F(ExecTest, OutputIsBoundedAndValidUtf8) {
  auto r = exec({"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' '\\377'; printf END"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_LE(r.output.size(), protocol::kExecMaxOutput + 128);
  EXPECT_EQ(r.output.substr(r.output.size() - 3), "END");
  // It survives the protocol's own checks.
  auto back = protocol::decode_agent_message(protocol::encode(protocol::AgentMessage{r}));
  ASSERT_TRUE(back) << back.error().message;
}

}  // namespace
}  // namespace slipway::agent
