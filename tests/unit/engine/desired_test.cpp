// Desired state: what a successful deploy sets, which record says what a node should run (the
// newest that covers it), which apps lag, and convergence deploys through the engine.
#include "engine/desired.h"

#include <gtest/gtest.h>

#include "unit/engine/fake_fleet.h"
#include "unit/engine/finished_deploy.h"

namespace slipway::engine {
namespace {

Deploy finished(DeployId id, std::string version, std::string selector,
                std::vector<std::string> nodes, DeployState state = DeployState::succeeded,
                DeployKind kind = DeployKind::deploy) {
  return testing::finished_deploy(id, std::move(version), std::move(selector), std::move(nodes),
                                  state, kind);
}

inventory::Node node(std::string name, std::string role = "api", std::string env = "staging") {
  inventory::Node n;
  n.name = std::move(name);
  n.env = std::move(env);
  n.roles = {std::move(role)};
  n.zone = "a";
  n.state = inventory::NodeState::alive;
  return n;
}

inventory::Node running(inventory::Node n, const std::string& app, const std::string& version) {
  n.apps[app].version = version;
  n.apps[app].healthy = true;
  return n;
}

TEST(DesiredRecords, ASuccessfulDeploySetsItsScopeAndEveryNodeItTargeted) {
  auto recs = desired_records_of(finished(7, "1.1.0", "role=api", {"n1", "n2"}));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_TRUE(recs[0].is_scope());
  EXPECT_EQ(recs[0].selector, "role=api");
  EXPECT_EQ(recs[0].env, "staging");
  EXPECT_EQ(recs[0].app, "web");
  EXPECT_EQ(recs[0].version, "1.1.0");
  EXPECT_EQ(recs[0].deploy, 7);
  EXPECT_EQ(recs[0].actor, "ann@host");
  EXPECT_EQ(recs[0].set_at, 750);
  EXPECT_EQ(recs[1].node, "n1");
  EXPECT_EQ(recs[1].selector, "");
  EXPECT_EQ(recs[2].node, "n2");
  EXPECT_EQ(recs[2].version, "1.1.0");
  // A rollback that succeeded sets it too.
  EXPECT_EQ(desired_records_of(
                finished(8, "1.0.0", "", {"n1"}, DeployState::succeeded, DeployKind::rollback))
                .size(),
            2u);
}

TEST(DesiredRecords, FailuresAndConvergencesSetNothing) {
  for (auto state :
       {DeployState::failed, DeployState::rolled_back, DeployState::running, DeployState::paused}) {
    EXPECT_TRUE(desired_records_of(finished(1, "1.1.0", "", {"n1"}, state)).empty());
  }
  EXPECT_TRUE(desired_records_of(finished(2, "1.1.0", "name=n1", {"n1"}, DeployState::succeeded,
                                          DeployKind::converge))
                  .empty());
}

TEST(DesiredState, TheNewestRecordCoveringTheNodeWins) {
  DesiredState s;
  s.apply(desired_records_of(finished(1, "1.0.0", "", {"n1", "n2"})));
  // n2 was lost during #2: only n1 was targeted, but the scope covers n2 as well.
  s.apply(desired_records_of(finished(2, "1.1.0", "", {"n1"})));
  EXPECT_EQ(s.for_node(node("n1"), "web")->version, "1.1.0");
  EXPECT_EQ(s.for_node(node("n2"), "web")->version, "1.1.0");
  EXPECT_EQ(s.for_node(node("n2"), "web")->deploy, 2);
  // A new machine, never targeted.
  EXPECT_EQ(s.for_node(node("n9"), "web")->version, "1.1.0");
  // Another environment, another app: nothing.
  EXPECT_FALSE(s.for_node(node("n1", "api", "production"), "web"));
  EXPECT_FALSE(s.for_node(node("n1"), "billing"));

  // A deploy to role=api only: workers keep what the whole environment got.
  s.apply(desired_records_of(finished(3, "1.2.0", "role=api", {"n1"})));
  EXPECT_EQ(s.for_node(node("n9", "api"), "web")->version, "1.2.0");
  EXPECT_EQ(s.for_node(node("n9", "worker"), "web")->version, "1.1.0");
  // Then the whole environment again: newer than the role=api one.
  s.apply(desired_records_of(
      finished(4, "1.0.0", "", {"n1"}, DeployState::succeeded, DeployKind::rollback)));
  EXPECT_EQ(s.for_node(node("n9", "api"), "web")->version, "1.0.0");
  // A deploy by name: that node's record is the newest.
  s.apply(desired_records_of(finished(5, "2.0.0", "name=n1", {"n1"})));
  EXPECT_EQ(s.for_node(node("n1"), "web")->version, "2.0.0");
  EXPECT_EQ(s.for_node(node("n2"), "web")->version, "1.0.0");
  // The node record holds in the node's environment only.
  EXPECT_FALSE(s.for_node(node("n1", "api", "production"), "web"));
}

TEST(DesiredState, LoadReplacesAndAnUnparsableSelectorCoversNobody) {
  DesiredState s;
  s.apply(desired_records_of(finished(1, "1.0.0", "", {"n1"})));
  s.load({DesiredRecord{"staging", "web", "", "zone in (", "3.0.0", 9, "x", 1}});
  EXPECT_EQ(s.size(), 1u);
  EXPECT_FALSE(s.for_node(node("n1"), "web"));
}

TEST(DesiredState, LaggingAppsAreThoseOnAnotherVersionOrMissing) {
  DesiredState s;
  s.apply(desired_records_of(finished(1, "1.1.0", "", {"n1"})));
  DesiredRecord billing{"staging", "billing", "", "", "3.0", 2, "ann@host", 20};
  s.apply({billing});
  auto n = running(running(node("n1"), "web", "1.1.0"), "billing", "2.9");
  n.apps["other"].version = "7";  // nothing desired: never lags
  auto lags = s.lagging(n);
  ASSERT_EQ(lags.size(), 1u);
  EXPECT_EQ(lags[0].app, "billing");
  EXPECT_EQ(lags[0].running, "2.9");
  EXPECT_EQ(lags[0].desired.version, "3.0");
  lags = s.lagging(node("n7"));
  ASSERT_EQ(lags.size(), 2u);
  EXPECT_EQ(lags[0].app, "billing");
  EXPECT_EQ(lags[1].app, "web");
  EXPECT_EQ(lags[1].running, "");
}

TEST(DeployKinds, ConvergeHasANameBothWays) {
  EXPECT_EQ(deploy_kind_name(DeployKind::converge), "converge");
  EXPECT_EQ(deploy_kind_from_name("converge"), DeployKind::converge);
  auto d = finished(3, "1.1.0", "name=n1", {"n1"}, DeployState::succeeded, DeployKind::converge);
  auto back = deploy_from_json(to_json(d, true));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->kind, DeployKind::converge);
  EXPECT_EQ(back->selector, "name=n1");
}

using ConvergeDeployTest = testing::EngineTest;

// A convergence is a deploy like any other: one node, journaled, reverted when it fails.
TEST_F(ConvergeDeployTest, AConvergenceThatFailsSendsTheNodeBack) {
  auto r = Request("2.0.0");
  r.kind = DeployKind::converge;
  r.selector = "name=n000";
  r.actor = "slipway (convergence)";
  const DeployId id = Start(r, testing::Targets(1, "1.0.0"));
  EXPECT_EQ(D(id).kind, DeployKind::converge);
  FailStuck("n000");
  Succeed("n000");  // sent back to 1.0.0
  const Deploy& last = journal_.last_deploy[id];
  EXPECT_EQ(last.state, DeployState::rolled_back);
  EXPECT_EQ(last.kind, DeployKind::converge);
  EXPECT_EQ(last.actor, "slipway (convergence)");
  EXPECT_EQ(fleet_.current["n000"], "1.0.0");
  EXPECT_TRUE(desired_records_of(last).empty());
}

}  // namespace
}  // namespace slipway::engine
