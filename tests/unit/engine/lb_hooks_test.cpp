// Drain and undrain around each node's update: the order of things, what the commands get, and
// what a failure of either does.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "unit/engine/fake_fleet.h"

namespace slipway::engine::testing {
namespace {

using ::testing::HasSubstr;

class FakeExec final : public ExecTransport {
 public:
  bool send_exec(const std::string& node, const protocol::ExecCommand& cmd) override {
    if (down.count(node)) return false;
    sent.emplace_back(node, cmd);
    return true;
  }
  std::vector<std::pair<std::string, protocol::ExecCommand>> sent;
  std::set<std::string> down;
};

class LbHookTest : public EngineTest {
 protected:
  LbHookTest() {
    engine_ = std::make_unique<Engine>(clock_, fleet_, journal_, sink_, EngineOptions{}, &exec_);
  }

  DeployRequest WithHooks(bool drain = true, bool undrain = true) {
    auto r = Request("2.0.0", "1");
    if (drain) r.drain = LbHook{"./lb drain", "role=lb", {"lb-1"}, Millis(5'000)};
    if (undrain) r.undrain = LbHook{"./lb ready", "role=lb", {"lb-1"}, Millis(5'000)};
    r.addresses = {{"n000", "10.0.0.1"}, {"n001", "10.0.0.2"}};
    return r;
  }

  // Answers exec command i (in the order sent) with this exit code.
  void ExecAnswer(size_t i, int exit_code, const std::string& output = "") {
    ASSERT_LT(i, exec_.sent.size());
    const auto& [node, cmd] = exec_.sent[i];
    protocol::ExecResult r;
    r.action = cmd.action;
    r.exit_code = exit_code;
    r.output = output;
    EXPECT_TRUE(engine().exec_handler()->on_exec_result(node, r));
  }

  FakeExec exec_;
};

TEST_F(LbHookTest, DrainFirstThenInstallThenUndrainThenHealthy) {
  const DeployId id = Start(WithHooks(), Targets(2));
  // Only the drain is out, on the lb node, about n000.
  ASSERT_EQ(exec_.sent.size(), 1u);
  EXPECT_EQ(exec_.sent[0].first, "lb-1");
  const auto& cmd = exec_.sent[0].second;
  EXPECT_EQ(cmd.argv, (std::vector<std::string>{"/bin/sh", "-c", "./lb drain"}));
  EXPECT_EQ(cmd.env.at("SLIPWAY_TARGET_NODE"), "n000");
  EXPECT_EQ(cmd.env.at("SLIPWAY_TARGET_ADDRESS"), "10.0.0.1");
  EXPECT_EQ(cmd.env.at("SLIPWAY_APP"), "web");
  EXPECT_EQ(cmd.timeout_ms, 5'000);
  EXPECT_EQ(cmd.action.rfind(Engine::kHookPrefix, 0), 0u);
  EXPECT_TRUE(fleet_.pending().empty());
  EXPECT_EQ(N(id, "n000").step, "drain");

  ExecAnswer(0, 0);
  EXPECT_TRUE(fleet_.pending_for("n000"));  // now the install
  Succeed("n000");
  // Healthy on 2.0.0, but not done until it is back in the load balancer.
  EXPECT_EQ(N(id, "n000").status, NodeStatus::running);
  ASSERT_EQ(exec_.sent.size(), 2u);
  EXPECT_EQ(exec_.sent[1].second.argv.back(), "./lb ready");
  ExecAnswer(1, 0);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::healthy);
  // The next node goes the same way.
  ASSERT_EQ(exec_.sent.size(), 3u);
  EXPECT_EQ(exec_.sent[2].second.env.at("SLIPWAY_TARGET_NODE"), "n001");
  ExecAnswer(2, 0);
  Succeed("n001");
  ExecAnswer(3, 0);
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  // The hooks are steps in the history.
  int drains = 0;
  int undrains = 0;
  for (const auto& e : journal_.entries) {
    if (e.kind != RecordingJournal::Entry::step) continue;
    drains += e.step_record.step == "drain" ? 1 : 0;
    undrains += e.step_record.step == "undrain" ? 1 : 0;
  }
  EXPECT_EQ(drains, 2);
  EXPECT_EQ(undrains, 2);
}

TEST_F(LbHookTest, AFailedDrainFailsTheNodeWithoutTouchingIt) {
  const DeployId id = Start(WithHooks(), Targets(2));
  ExecAnswer(0, 3, "no such server");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("draining it failed: lb-1: exit code 3"));
  EXPECT_TRUE(fleet_.sent().empty());  // no install went out
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
}

TEST_F(LbHookTest, AFailedUndrainFailsTheNodeAndTheDeployRollsBack) {
  const DeployId id = Start(WithHooks(), Targets(2));
  ExecAnswer(0, 0);
  Succeed("n000");
  ExecAnswer(1, 1);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("undraining it failed"));
  EXPECT_EQ(D(id).phase, Phase::revert);
  // It runs 2.0.0 outside the load balancer: it is sent back (drained first, as any update).
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  ASSERT_EQ(exec_.sent.size(), 3u);
  EXPECT_EQ(exec_.sent[2].second.argv.back(), "./lb drain");
}

TEST_F(LbHookTest, ANodeThatIsNotHealthyAfterItsUpdateStaysDrained) {
  auto r = WithHooks();
  r.max_failures = 1;
  const DeployId id = Start(r, Targets(2));
  ExecAnswer(0, 0);
  FailStuck("n000");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
  // No undrain for n000: the next exec is n001's drain.
  ASSERT_EQ(exec_.sent.size(), 2u);
  EXPECT_EQ(exec_.sent[1].second.argv.back(), "./lb drain");
  EXPECT_EQ(exec_.sent[1].second.env.at("SLIPWAY_TARGET_NODE"), "n001");
}

TEST_F(LbHookTest, LbNodeNotConnectedFailsTheDrainAtOnce) {
  exec_.down.insert("lb-1");
  const DeployId id = Start(WithHooks(), Targets(1));
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("lb-1: the node is not connected"));
}

TEST_F(LbHookTest, ALateHookResultForANodeThatFailedMeanwhileIsIgnored) {
  auto r = WithHooks();
  r.max_failures = 1;
  const DeployId id = Start(r, Targets(2));
  engine().on_node_lost("n000");  // n000 is in flight (draining): it fails
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
  // The drain result still comes: no install is sent to n000 because of it.
  ExecAnswer(0, 0);
  EXPECT_FALSE(fleet_.pending_for("n000"));
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
}

TEST_F(LbHookTest, HooksWithoutAnExecTransportAreRefused) {
  Rebuild({});  // an engine without exec
  auto id = engine().start(WithHooks(), Targets(1));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Errc::failed_precondition);
}

TEST_F(LbHookTest, DrainOnTheNodeItself) {
  auto r = WithHooks(true, false);
  r.drain->on.clear();
  r.drain->on_nodes.clear();
  const DeployId id = Start(r, Targets(1));
  ASSERT_EQ(exec_.sent.size(), 1u);
  EXPECT_EQ(exec_.sent[0].first, "n000");
  ExecAnswer(0, 0);
  Succeed("n000");
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

}  // namespace
}  // namespace slipway::engine::testing
