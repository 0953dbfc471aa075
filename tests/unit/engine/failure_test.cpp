// Failures: the threshold, the automatic rollback of what the deploy changed, nodes that are not
// connected, that vanish, or that never answer.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/engine/fake_fleet.h"

namespace slipway::engine::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FailureTest : public EngineTest {
 protected:
  // The commands sent after the first `skip` ones.
  std::vector<SentCommand> SentAfter(size_t skip) {
    std::vector<SentCommand> out;
    for (size_t i = skip; i < fleet_.sent().size(); ++i)
      out.push_back(fleet_.sent()[i]);
    return out;
  }
  static std::vector<std::string> Nodes(const std::vector<SentCommand>& cmds) {
    std::vector<std::string> out;
    for (const auto& c : cmds)
      out.push_back(c.node);
    return out;
  }
};

TEST_F(FailureTest, FailureStopsTheRolloutAndSendsHealthyNodesBack) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(6));
  Succeed("n000");
  Succeed("n001");
  Succeed("n003");
  const size_t forward = fleet_.sent().size();
  EXPECT_EQ(forward, 4u);
  FailAndSelfRevert("n002", "health check failed: 503");

  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::running);
  EXPECT_EQ(d.phase, Phase::revert);
  EXPECT_EQ(N(id, "n004").status, NodeStatus::skipped);
  EXPECT_EQ(N(id, "n005").status, NodeStatus::skipped);
  EXPECT_EQ(N(id, "n002").status, NodeStatus::failed);
  EXPECT_EQ(N(id, "n002").reason, "health check failed: 503");
  EXPECT_EQ(N(id, "n002").reverted_to, "1.0.0");

  // The revert goes in waves of the batch size: n000 and n001 first, then n003.
  EXPECT_THAT(Nodes(SentAfter(forward)), ElementsAre("n000", "n001"));
  for (const auto& c : SentAfter(forward)) {
    ASSERT_FALSE(c.deactivate);
    EXPECT_EQ(c.install.version, "1.0.0");
    EXPECT_EQ(c.install.sha256, "sha-1.0.0");
    EXPECT_EQ(c.install.url, "/api/v1/blobs/sha-1.0.0");
    EXPECT_EQ(c.install.deploy, id);
  }
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  EXPECT_EQ(N(id, "n003").status, NodeStatus::healthy);
  Succeed("n000");
  EXPECT_EQ(fleet_.sent().size(), forward + 2) << "the next revert wave went out too early";
  Succeed("n001");
  EXPECT_THAT(Nodes(SentAfter(forward + 2)), ElementsAre("n003"));
  Succeed("n003");

  EXPECT_EQ(d.state, DeployState::rolled_back);
  EXPECT_THAT(d.reason, HasSubstr("1 node(s) failed"));
  EXPECT_THAT(d.reason, HasSubstr("n002: health check failed: 503"));
  EXPECT_THAT(d.reason, HasSubstr("rolled back"));
  for (const char* n : {"n000", "n001", "n003"}) {
    EXPECT_EQ(N(id, n).status, NodeStatus::reverted) << n;
    EXPECT_EQ(fleet_.current[n], "1.0.0") << n;
  }
  // Nothing was sent to the skipped nodes, nor back to the node that went back by itself.
  for (const auto& c : fleet_.sent()) {
    EXPECT_NE(c.node, "n004");
    EXPECT_NE(c.node, "n005");
  }
  int to_n002 = 0;
  for (const auto& c : fleet_.sent())
    to_n002 += c.node == "n002";
  EXPECT_EQ(to_n002, 1);
  EXPECT_EQ(fleet_.sent().size(), 7u);

  EXPECT_THAT(sink_.kinds(id),
              ElementsAre("deploy.started", "batch.started", "node.finished", "node.finished",
                          "batch.started", "node.finished", "node.finished", "revert.started",
                          "batch.started", "node.finished", "node.finished", "batch.started",
                          "node.finished", "deploy.finished"));
  auto fin = sink_.of_kind(id, "deploy.finished");
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].status, "rolled_back");
  auto waves = sink_.of_kind(id, "batch.started");
  ASSERT_EQ(waves.size(), 4u);
  EXPECT_EQ(waves[2].status, "reverting");

  // The journal's last word on the deploy is the final state, with skipped nodes saved as such.
  EXPECT_EQ(journal_.last_deploy[id].state, DeployState::rolled_back);
  EXPECT_EQ(journal_.last_node(id, "n004")->status, NodeStatus::skipped);
  EXPECT_EQ(journal_.last_node(id, "n000")->status, NodeStatus::reverted);
}

TEST_F(FailureTest, NoRevertIsSentWhileNodesOfTheWaveAreInFlight) {
  const DeployId id = Start(Request("2.0.0", "3"), Targets(6));
  FailAndSelfRevert("n001");
  EXPECT_EQ(fleet_.sent().size(), 3u);
  EXPECT_EQ(D(id).phase, Phase::forward);
  Succeed("n000");
  EXPECT_EQ(fleet_.sent().size(), 3u);
  Succeed("n002");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n002"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(D(id).count(NodeStatus::skipped), 3);
}

TEST_F(FailureTest, EachNodeGoesBackToItsOwnPreviousVersion) {
  std::vector<Target> t{
      {"a", "z", "1.0.0"}, {"b", "z", "0.9.0"}, {"c", "z", ""}, {"d", "z", "1.0.0"}};
  const DeployId id = Start(Request("2.0.0", "100%"), t);
  Succeed("a");
  Succeed("b");
  Succeed("c");
  FailAndSelfRevert("d");
  const auto back = SentAfter(4);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].node, "a");
  EXPECT_FALSE(back[0].deactivate);
  EXPECT_EQ(back[0].install.version, "1.0.0");
  EXPECT_EQ(back[0].install.sha256, "sha-1.0.0");
  EXPECT_EQ(back[1].node, "b");
  EXPECT_EQ(back[1].install.version, "0.9.0");
  EXPECT_EQ(back[1].install.sha256, "sha-0.9.0");
  // c had nothing before: its app is deactivated.
  EXPECT_EQ(back[2].node, "c");
  ASSERT_TRUE(back[2].deactivate);
  EXPECT_EQ(back[2].off.app, "web");
  EXPECT_EQ(back[2].off.deploy, id);
  EXPECT_FALSE(back[2].off.action.empty());

  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(fleet_.current["a"], "1.0.0");
  EXPECT_EQ(fleet_.current["b"], "0.9.0");
  EXPECT_EQ(fleet_.current["c"], "");
  EXPECT_EQ(fleet_.current["d"], "1.0.0");
  EXPECT_EQ(N(id, "c").status, NodeStatus::reverted);
}

TEST_F(FailureTest, HealthyNodeThatWasAlreadyOnTheVersionIsNotSentBack) {
  std::vector<Target> t{{"a", "z", "2.0.0"}, {"b", "z", "1.0.0"}, {"c", "z", "1.0.0"}};
  const DeployId id = Start(Request("2.0.0", "100%"), t);
  Succeed("a");
  Succeed("b");
  FailAndSelfRevert("c");
  EXPECT_THAT(Nodes(SentAfter(3)), ElementsAre("b"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "a").status, NodeStatus::healthy);
}

TEST_F(FailureTest, FailedNodeStuckOnTheNewVersionIsSentBack) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  Succeed("n000");
  FailStuck("n001", "could not go back: after_install hook failed");
  EXPECT_EQ(N(id, "n001").version_now, "2.0.0");
  EXPECT_THAT(Nodes(SentAfter(2)), ElementsAre("n000"));  // batch 1: one at a time
  Succeed("n000");
  EXPECT_THAT(Nodes(SentAfter(3)), ElementsAre("n001"));
  EXPECT_EQ(fleet_.sent().back().install.version, "1.0.0");
  Succeed("n001");
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "n001").status, NodeStatus::reverted);
  EXPECT_EQ(fleet_.current["n001"], "1.0.0");
  EXPECT_EQ(N(id, "n002").status, NodeStatus::skipped);
  // Why it failed in the first place stays on record.
  EXPECT_THAT(N(id, "n001").reason, HasSubstr("after_install hook failed"));
}

TEST_F(FailureTest, ResultClaimingSuccessOnAnotherVersionIsAFailure) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(2));
  auto r = Ok(PendingFor("n000"));
  r.version = "1.5.0";
  Answer("n000", r);
  auto fin = sink_.of_kind(id, "node.finished");
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].status, "failed");
  EXPECT_THAT(fin[0].message, HasSubstr("'1.5.0' instead of 2.0.0"));
  EXPECT_EQ(N(id, "n000").version_now, "1.5.0");
  // The node is neither where it was nor where it should be: it is sent back.
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000"));
  EXPECT_EQ(fleet_.pending()[0].install.version, "1.0.0");
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverted);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("'1.5.0' instead of 2.0.0"));
  EXPECT_EQ(N(id, "n001").status, NodeStatus::skipped);
}

TEST_F(FailureTest, ResultClaimingSuccessOnNothingIsAFailure) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(1));
  auto r = Ok(PendingFor("n000"));
  r.version = "";
  Answer("n000", r);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
  EXPECT_NE(D(id).state, DeployState::succeeded);
}

TEST_F(FailureTest, FailureWithoutAReasonGetsOne) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(1));
  auto r = Ok(PendingFor("n000"));
  r.ok = false;
  r.version = "1.0.0";
  Answer("n000", r);
  EXPECT_FALSE(N(id, "n000").reason.empty());
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
}

TEST_F(FailureTest, RevertThatFailsEndsTheDeployFailed) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  Succeed("n000");
  Succeed("n001");
  FailAndSelfRevert("n002");
  Succeed("n003");
  // Revert wave 1: n000 and n001; n001 cannot go back.
  Succeed("n000");
  FailStuck("n001", "unpack failed: disk full");
  Succeed("n003");
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::failed);
  EXPECT_EQ(N(id, "n001").status, NodeStatus::revert_failed);
  EXPECT_EQ(N(id, "n001").reason, "unpack failed: disk full");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverted);
  EXPECT_EQ(N(id, "n003").status, NodeStatus::reverted);
  EXPECT_THAT(d.reason, HasSubstr("rolling back failed on 1 node(s)"));
  EXPECT_THAT(d.reason, HasSubstr("n002"));
  EXPECT_EQ(d.failures(), 2);
  EXPECT_EQ(sink_.of_kind(id, "deploy.finished").at(0).status, "failed");
}

TEST_F(FailureTest, RevertReportingSuccessOnTheWrongVersionIsARevertFailure) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  Succeed("n000");
  FailAndSelfRevert("n001");
  auto cmd = PendingFor("n000");
  ASSERT_EQ(cmd.install.version, "1.0.0");
  auto r = Ok(cmd);
  r.version = "2.0.0";  // "ok", but still on the new version
  Answer("n000", r);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::revert_failed);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("2.0.0"));
  EXPECT_EQ(D(id).state, DeployState::failed);
}

TEST_F(FailureTest, DeactivateReportingAVersionIsARevertFailure) {
  const DeployId id = Start(Request("1.0.0", "2"), Targets(2, ""));
  Succeed("n000");
  FailAndSelfRevert("n001");
  auto cmd = PendingFor("n000");
  ASSERT_TRUE(cmd.deactivate);
  auto r = Ok(cmd);
  r.version = "1.0.0";
  Answer("n000", r);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::revert_failed);
  EXPECT_EQ(D(id).state, DeployState::failed);
}

TEST_F(FailureTest, PreviousVersionMissingFromTheRepositoryIsARevertFailure) {
  auto req = Request("2.0.0", "100%");
  req.previous.clear();
  const DeployId id = Start(req, Targets(2, "1.0.0"));
  Succeed("n000");
  FailAndSelfRevert("n001");
  // Nothing could be sent: the engine has no digest for 1.0.0.
  EXPECT_EQ(fleet_.sent().size(), 2u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::revert_failed);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("1.0.0"));
  EXPECT_EQ(D(id).state, DeployState::failed);
}

TEST_F(FailureTest, FailuresWithinMaxFailuresLetTheRolloutFinishAsFailed) {
  const DeployId id = Start(Request("2.0.0", "1", 2), Targets(5));
  Succeed("n000");
  FailAndSelfRevert("n001", "health check failed");
  Succeed("n002");
  FailStuck("n003", "hook failed");
  Succeed("n004");
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::failed);
  EXPECT_EQ(d.phase, Phase::forward);
  EXPECT_THAT(d.reason, HasSubstr("2 node(s) failed"));
  EXPECT_THAT(d.reason, HasSubstr("within max failures 2"));
  EXPECT_THAT(d.reason, HasSubstr("not rolled back"));
  EXPECT_THAT(d.reason, HasSubstr("n001: health check failed"));
  EXPECT_EQ(d.count(NodeStatus::healthy), 3);
  EXPECT_EQ(fleet_.sent().size(), 5u) << "nothing is sent back";
  EXPECT_EQ(sink_.of_kind(id, "revert.started").size(), 0u);
}

TEST_F(FailureTest, OneFailureOverMaxFailuresRollsBack) {
  const DeployId id = Start(Request("2.0.0", "1", 1), Targets(5));
  Succeed("n000");
  FailAndSelfRevert("n001");
  Succeed("n002");
  FailAndSelfRevert("n003");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_EQ(N(id, "n004").status, NodeStatus::skipped);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("2 node(s) failed (max failures 1)"));
  EXPECT_EQ(fleet_.current["n000"], "1.0.0");
  EXPECT_EQ(fleet_.current["n002"], "1.0.0");
}

TEST_F(FailureTest, NegativeMaxFailuresIsRefused) {
  auto r = engine().start(Request("2.0.0", "1", -1), Targets(2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_THAT(fleet_.sent(), IsEmpty());
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
}

TEST_F(FailureTest, RevertWavesUseTheBatchSizeOfTheWholeDeploy) {
  // 10 nodes, 20% -> 2 per wave; fail in wave 3: 4 healthy nodes go back 2 at a time.
  const DeployId id = Start(Request("2.0.0", "20%"), Targets(10));
  for (int i = 0; i < 4; ++i)
    Succeed(NodeName(i));
  Succeed("n004");
  FailAndSelfRevert("n005");
  EXPECT_EQ(fleet_.pending().size(), 2u);
  // One wave at a time, never more than 2 nodes going back at once.
  int waves = 0;
  while (!fleet_.pending().empty()) {
    const auto wave = fleet_.pending();
    EXPECT_LE(wave.size(), 2u);
    ++waves;
    for (const auto& cmd : wave)
      Answer(cmd.node, Ok(cmd));
  }
  EXPECT_EQ(waves, 3);
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  auto reverts = sink_.of_kind(id, "batch.started");
  int revert_waves = 0;
  for (const auto& e : reverts)
    revert_waves += e.status == "reverting";
  EXPECT_EQ(revert_waves, 3);  // n000+n001, n002+n003, n004
  EXPECT_EQ(D(id).count(NodeStatus::reverted), 5);
  EXPECT_EQ(D(id).count(NodeStatus::skipped), 4);
}

TEST_F(FailureTest, NothingToSendBackStillEndsRolledBack) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  FailAndSelfRevert("n000");
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(fleet_.sent().size(), 1u);
  auto rs = sink_.of_kind(id, "revert.started");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_THAT(rs[0].message, HasSubstr("no node needs to go back"));
}

// --- nodes that are not there --------------------------------------------------------------------

TEST_F(FailureTest, NodeNotConnectedAtDispatchCountsAsFailed) {
  fleet_.disconnect("n001");
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  EXPECT_THAT(N(id, "n001").reason, HasSubstr("not connected"));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000"));
  Succeed("n000");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000"));  // n001 never got anything
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("n001: the node is not connected"));
}

TEST_F(FailureTest, NotConnectedNodeWithinMaxFailuresDoesNotStopTheRollout) {
  fleet_.disconnect("n002");
  const DeployId id = Start(Request("2.0.0", "2", 1), Targets(4));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::failed);
  EXPECT_EQ(D(id).count(NodeStatus::healthy), 3);
  EXPECT_THAT(D(id).reason, HasSubstr("not connected"));
}

TEST_F(FailureTest, WholeWaveNotConnectedStartsTheRevertAtOnce) {
  fleet_.disconnect("n000");
  fleet_.disconnect("n001");
  auto r = engine().start(Request("2.0.0", "2"), Targets(4));
  ASSERT_TRUE(r);
  // Nothing is in flight: the deploy ends inside start().
  const Deploy* d = engine().find(*r);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->state, DeployState::rolled_back);
  EXPECT_EQ(d->count(NodeStatus::failed), 2);
  EXPECT_EQ(d->count(NodeStatus::skipped), 2);
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
}

TEST_F(FailureTest, EveryNodeNotConnectedWithGenerousMaxFailuresEndsFailed) {
  for (int i = 0; i < 3; ++i)
    fleet_.disconnect(NodeName(i));
  auto r = engine().start(Request("2.0.0", "1", 10), Targets(3));
  ASSERT_TRUE(r);
  const Deploy* d = engine().find(*r);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->state, DeployState::failed);
  EXPECT_EQ(d->count(NodeStatus::failed), 3);
}

TEST_F(FailureTest, NodeNotConnectedWhenItShouldGoBackIsARevertFailure) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  Succeed("n000");
  fleet_.disconnect("n000");
  FailAndSelfRevert("n001");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::revert_failed);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("not connected"));
  EXPECT_EQ(D(id).state, DeployState::failed);
  EXPECT_THAT(D(id).reason, HasSubstr("rolling back failed on 1 node(s)"));
}

TEST_F(FailureTest, NodeLostWhileInstallingFailsIt) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  Step("n001", "download");
  engine().on_node_lost("n001");
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  EXPECT_THAT(N(id, "n001").reason, HasSubstr("disconnected"));
  EXPECT_EQ(D(id).phase, Phase::forward);  // n000 is still in flight
  // Its late result, or a late step, changes nothing.
  const auto late = PendingFor("n001");
  protocol::StepEvent step;
  step.action = late.action();
  step.step = "health";
  engine().on_step("n001", step);
  engine().on_result("n001", Ok(late));
  EXPECT_EQ(engine().ignored_reports(), 2u);
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  fleet_.mark_answered(late.action());

  Succeed("n000");
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("n001: the node disconnected"));
}

TEST_F(FailureTest, NodeLostWhileRevertingIsARevertFailure) {
  const DeployId id = Start(Request("2.0.0", "100%"), Targets(3));
  Succeed("n000");
  Succeed("n001");
  FailAndSelfRevert("n002");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  engine().on_node_lost("n000");
  EXPECT_EQ(N(id, "n000").status, NodeStatus::revert_failed);
  Succeed("n001");
  EXPECT_EQ(D(id).state, DeployState::failed);
  EXPECT_THAT(D(id).reason, HasSubstr("rolling back failed on 1 node(s)"));
}

TEST_F(FailureTest, NodeLostThatIsNotInFlightChangesNothing) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  engine().on_node_lost("n002");      // pending
  engine().on_node_lost("stranger");  // not in the deploy
  EXPECT_EQ(N(id, "n002").status, NodeStatus::pending);
  Succeed("n000");
  engine().on_node_lost("n000");  // already healthy
  EXPECT_EQ(N(id, "n000").status, NodeStatus::healthy);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(FailureTest, NodeLostFailsItInEveryDeployItIsPartOf) {
  auto api = Request("2.0.0", "1");
  api.app = "api";
  const DeployId a = Start(Request("2.0.0", "1"), {{"shared", "a", "1.0.0"}, {"x", "a", "1.0.0"}});
  const DeployId b = Start(api, {{"shared", "a", "1.0.0"}, {"y", "a", "1.0.0"}});
  engine().on_node_lost("shared");
  EXPECT_EQ(D(a).state, DeployState::rolled_back);
  EXPECT_EQ(D(b).state, DeployState::rolled_back);
  EXPECT_EQ(N(a, "x").status, NodeStatus::skipped);
}

// --- deadlines -----------------------------------------------------------------------------------

TEST_F(FailureTest, NodeWithoutAResultWithinTheTimeoutFails) {
  Rebuild(EngineOptions{Millis(10'000)});
  const DeployId id = Start(Request("2.0.0", "2", 1), Targets(4));
  Succeed("n000");
  clock_.advance(10'000);
  engine().tick();
  EXPECT_EQ(N(id, "n001").status, NodeStatus::running) << "timed out before the deadline";
  clock_.advance(1);
  engine().tick();
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  EXPECT_THAT(N(id, "n001").reason, HasSubstr("no result from the node within"));
  // Within max failures: the next wave starts, with its own deadline.
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n001", "n002", "n003"));
  Succeed("n002");
  clock_.advance(9'000);
  engine().tick();
  EXPECT_EQ(N(id, "n003").status, NodeStatus::running);
  Succeed("n003");
  // A result from the node that timed out is too late.
  const auto late = PendingFor("n001");
  engine().on_result("n001", Ok(late));
  EXPECT_EQ(engine().ignored_reports(), 1u);
  // The deploy is over; tick() forgets it, the journal has it.
  EXPECT_EQ(journal_.last_deploy[id].state, DeployState::failed);
  engine().tick();
  EXPECT_EQ(engine().find(id), nullptr);
}

TEST_F(FailureTest, TimeoutOverMaxFailuresRollsBackAndTimesOutTheRevertToo) {
  Rebuild(EngineOptions{Millis(5'000)});
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  Succeed("n000");
  clock_.advance(5'001);
  engine().tick();
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n001"));  // n001's old install too
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  clock_.advance(5'000);
  engine().tick();
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  clock_.advance(1);
  engine().tick();
  // The deploy ended in that tick and was forgotten; the journal has the end.
  EXPECT_EQ(engine().find(id), nullptr);
  EXPECT_EQ(journal_.last_deploy[id].state, DeployState::failed);
  EXPECT_EQ(journal_.last_node(id, "n000")->status, NodeStatus::revert_failed);
  EXPECT_EQ(journal_.last_node(id, "n002")->status, NodeStatus::skipped);
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
}

TEST_F(FailureTest, TickWithNothingRunningIsHarmless) {
  engine().tick();
  clock_.advance(100'000'000);
  engine().tick();
  EXPECT_TRUE(engine().running().empty());
  EXPECT_THAT(sink_.seen, IsEmpty());
}

// --- rollback deploys ----------------------------------------------------------------------------

TEST_F(FailureTest, RollbackKindDeployRevertsTheSameWay) {
  auto req = Request("1.0.0", "1");
  req.kind = DeployKind::rollback;
  req.previous = {{"2.0.0", Art("2.0.0")}, {"1.5.0", Art("1.5.0")}};
  std::vector<Target> t{{"a", "z", "2.0.0"}, {"b", "z", "1.5.0"}, {"c", "z", "2.0.0"}};
  const DeployId id = Start(req, t);
  Succeed("a");
  Succeed("b");
  FailStuck("c");
  AnswerAll();
  EXPECT_EQ(D(id).kind, DeployKind::rollback);
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(fleet_.current["a"], "2.0.0");
  EXPECT_EQ(fleet_.current["b"], "1.5.0");
  EXPECT_EQ(fleet_.current["c"], "2.0.0");
}

// A node that got the command and then vanished may be running the new version: a deploy that
// otherwise rolled back says it could not confirm that node.
TEST_F(FailureTest, RollbackSaysWhichNodesCouldNotBeConfirmed) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  Succeed("n000");
  engine().on_node_lost("n001");
  fleet_.mark_answered(PendingFor("n001").action());
  // n000 is sent back to 1.0.0.
  Succeed("n000");
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("1 node(s) stopped answering during the deploy and could "
                                      "not be confirmed"));
}

// A node that was never reached (not connected at dispatch) is known to be unchanged.
TEST_F(FailureTest, NodeNeverReachedNeedsNoConfirmation) {
  fleet_.disconnect("n001");
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  Succeed("n000");
  Succeed("n000");
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, Not(HasSubstr("could not be confirmed")));
}

}  // namespace
}  // namespace slipway::engine::testing
