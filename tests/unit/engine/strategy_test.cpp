// Rollout strategies: planning (groups and waves), canary gates, zones, all at once,
// max-unavailable, deadlines, pause/resume/promote and the log of who did what.
#include "engine/strategy.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/engine/fake_fleet.h"

namespace slipway::engine::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- planning ------------------------------------------------------------------------------

std::vector<PlanTarget> PlanTargets(const std::vector<std::string>& zones) {
  std::vector<PlanTarget> t;
  for (const auto& z : zones)
    t.push_back(PlanTarget{z, false, true});
  return t;
}

std::vector<std::vector<size_t>> WaveNodes(const Plan& p) {
  std::vector<std::vector<size_t>> out;
  for (const auto& w : p.waves)
    out.push_back(w.nodes);
  return out;
}

TEST(PlanTest, StrategyNamesRoundTripAndUnknownOnesAreRefused) {
  for (auto s : {Strategy::rolling, Strategy::canary, Strategy::zones, Strategy::all})
    EXPECT_EQ(parse_strategy(strategy_name(s)).value(), s);
  auto bad = parse_strategy("blue-green");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("rolling, canary, zones or all"));
}

TEST(PlanTest, CanarySpecsParse) {
  auto n = CanarySpec::parse("2").value();
  EXPECT_FALSE(n.by_tag);
  EXPECT_EQ(n.count.resolve(10), 2);
  auto pct = CanarySpec::parse("10%").value();
  EXPECT_EQ(pct.count.resolve(50), 5);
  EXPECT_EQ(pct.count.resolve(3), 1);  // at least one
  auto tag = CanarySpec::parse("tag:canary=yes").value();
  EXPECT_TRUE(tag.by_tag);
  EXPECT_EQ(tag.key, "canary");
  EXPECT_EQ(tag.value, "yes");
  EXPECT_EQ(tag.to_string(), "tag:canary=yes");
  for (const char* bad : {"", "0", "-1", "tag:", "tag:=x", "tag:k=", "tag:k", "ten", "101%",
                          "tag:a/b=c", "tag:k=v\n"}) {
    EXPECT_FALSE(CanarySpec::parse(bad)) << bad;
  }
}

TEST(PlanTest, RollingSplitsIntoWavesOfTheBatch) {
  PlanOptions o;
  o.batch = BatchSize{2, false};
  auto p = make_plan(o, PlanTargets({"a", "a", "b", "b", "c"})).value();
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_THAT(WaveNodes(p), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3), ElementsAre(4)));
}

TEST(PlanTest, AllIsOneWave) {
  PlanOptions o;
  o.strategy = Strategy::all;
  o.batch = BatchSize{1, false};  // ignored
  auto p = make_plan(o, PlanTargets({"a", "b", "c", "d"})).value();
  EXPECT_THAT(WaveNodes(p), ElementsAre(ElementsAre(0, 1, 2, 3)));
  EXPECT_EQ(p.waves[0].max_inflight, 4);
}

TEST(PlanTest, CanaryGoesFirstThenTheRestInBatches) {
  PlanOptions o;
  o.strategy = Strategy::canary;
  o.batch = BatchSize{2, false};
  o.canary_gate = Gate::promote;
  auto t = PlanTargets({"a", "a", "a", "a", "a"});
  t[3].canary = true;
  auto p = make_plan(o, t).value();
  ASSERT_EQ(p.groups.size(), 2u);
  EXPECT_EQ(p.groups[0].name, "canary");
  EXPECT_EQ(p.groups[0].gate, Gate::promote);
  EXPECT_EQ(p.groups[1].gate, Gate::none);
  EXPECT_THAT(WaveNodes(p), ElementsAre(ElementsAre(3), ElementsAre(0, 1), ElementsAre(2, 4)));

  // No canary at all is an error; only canaries means no gate (nothing waits for it).
  EXPECT_FALSE(make_plan(o, PlanTargets({"a", "a"})));
  auto only = PlanTargets({"a"});
  only[0].canary = true;
  auto p2 = make_plan(o, only).value();
  ASSERT_EQ(p2.groups.size(), 1u);
  EXPECT_EQ(p2.groups[0].gate, Gate::none);
}

TEST(PlanTest, ZonesGoOneAtATimeInTheGivenOrderOrSorted) {
  PlanOptions o;
  o.strategy = Strategy::zones;
  o.batch = BatchSize{50, true};
  auto t = PlanTargets({"b", "a", "c", "b", "a", "a", "a"});
  auto sorted = make_plan(o, t).value();
  ASSERT_EQ(sorted.groups.size(), 3u);
  EXPECT_EQ(sorted.groups[0].name, "zone a");
  // 50% of each zone: a has 4 (2 + 2), b has 2 (1 + 1), c has 1.
  EXPECT_THAT(WaveNodes(sorted), ElementsAre(ElementsAre(1, 4), ElementsAre(5, 6), ElementsAre(0),
                                             ElementsAre(3), ElementsAre(2)));
  o.zone_order = {"c", "b", "a", "d"};  // d has no targets: fine
  auto ordered = make_plan(o, t).value();
  EXPECT_EQ(ordered.groups[0].name, "zone c");
  EXPECT_EQ(ordered.groups[2].name, "zone a");
  EXPECT_EQ(ordered.waves[0].nodes, std::vector<size_t>{2});

  o.zone_order = {"a", "b"};
  auto missing = make_plan(o, t);
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("zone(s) c"));
}

TEST(PlanTest, MaxUnavailableMakesOneSlidingWaveOutOfServiceFirst) {
  PlanOptions o;
  o.batch = BatchSize{100, true};
  o.max_unavailable = BatchSize{1, false};
  auto t = PlanTargets({"a", "a", "a", "a"});
  t[2].in_service = false;
  auto p = make_plan(o, t).value();
  EXPECT_THAT(WaveNodes(p), ElementsAre(ElementsAre(2, 0, 1, 3)));
  EXPECT_EQ(p.waves[0].max_inflight, 4);
}

// --- running strategies ----------------------------------------------------------------------

class StrategyTest : public EngineTest {
 protected:
  DeployRequest Canary(Gate gate, Millis wait = Millis(0)) {
    auto r = Request("2.0.0", "2");
    r.strategy = Strategy::canary;
    r.canary = "1";
    r.canary_gate = gate;
    r.canary_wait = wait;
    return r;
  }
  static std::vector<Target> WithCanary(std::vector<Target> t, size_t i) {
    t[i].canary = true;
    return t;
  }
  // Answers the commands in flight one at a time in a scrambled order (all succeed), and returns
  // the most targets ever out of service before an answer: in flight, failed, or down before the
  // deploy and not updated yet.
  int AnswerRandomly(DeployId id, const std::set<std::string>& down_before) {
    int worst = 0;
    unsigned seed = 7;
    for (int guard = 0; guard < 10'000; ++guard) {
      int out = 0;
      for (const auto& n : D(id).nodes) {
        const bool still_down = n.status == NodeStatus::pending && down_before.count(n.node);
        if (n.status == NodeStatus::running || n.status == NodeStatus::failed || still_down) ++out;
      }
      worst = std::max(worst, out);
      auto pending = fleet_.pending();
      if (pending.empty()) break;
      seed = seed * 1103515245u + 12345u;
      const auto cmd = pending[(seed >> 8) % pending.size()];
      Answer(cmd.node, Ok(cmd));
    }
    return worst;
  }
  std::vector<std::string> Actions(DeployId id) {
    std::vector<std::string> out;
    for (const auto& t : D(id).log)
      out.push_back(t.action + ":" + t.actor);
    return out;
  }
};

TEST_F(StrategyTest, PausedCanaryWaitsForPromoteThenRollsOutTheRest) {
  const DeployId id = Start(Canary(Gate::promote), WithCanary(Targets(5), 2));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n002"));
  EXPECT_TRUE(N(id, "n002").canary);
  Succeed("n002");
  EXPECT_EQ(D(id).state, DeployState::paused);
  EXPECT_THAT(D(id).waiting, HasSubstr("slipway promote"));
  EXPECT_TRUE(fleet_.pending().empty());
  // Time alone does not promote it, and resume is not promote.
  clock_.advance(3'600'000);
  engine().tick();
  EXPECT_TRUE(fleet_.pending().empty());
  auto resume = engine().resume(id, "bob");
  ASSERT_FALSE(resume);
  EXPECT_THAT(resume.error().message, HasSubstr("slipway promote"));

  ASSERT_TRUE(engine().promote(id, "bob"));
  EXPECT_EQ(D(id).state, DeployState::running);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n001"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_THAT(Actions(id), ElementsAre("started:alice", "promoted:bob", "succeeded:slipway"));
  EXPECT_EQ(journal_.transitions[id].size(), 3u);
  // promote once it is over is refused.
  EXPECT_FALSE(engine().promote(id, "bob"));
}

TEST_F(StrategyTest, FailedCanaryRollsBackWithoutTouchingTheRest) {
  const DeployId id = Start(Canary(Gate::promote), WithCanary(Targets(4), 0));
  FailStuck("n000");
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverted);
  for (const char* n : {"n001", "n002", "n003"})
    EXPECT_EQ(N(id, n).status, NodeStatus::skipped);
  EXPECT_THAT(D(id).reason, HasSubstr("in canary"));
}

TEST_F(StrategyTest, CanaryWaitPromotesByItselfWhenTheCanariesStayHealthy) {
  const DeployId id = Start(Canary(Gate::wait, Millis(60'000)), WithCanary(Targets(3), 0));
  Succeed("n000");
  EXPECT_EQ(D(id).state, DeployState::running);  // waiting is not paused
  EXPECT_GT(D(id).promote_at, 0);
  EXPECT_FALSE(sink_.of_kind(id, "deploy.waiting").empty());
  clock_.advance(59'000);
  engine().tick();
  EXPECT_TRUE(fleet_.pending().empty());
  clock_.advance(1'000);
  engine().tick();
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n001", "n002"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_THAT(Actions(id), ElementsAre("started:alice", "promoted:slipway", "succeeded:slipway"));
}

TEST_F(StrategyTest, CanaryThatTurnsUnhealthyDuringTheWaitRollsBack) {
  const DeployId id = Start(Canary(Gate::wait, Millis(60'000)), WithCanary(Targets(3), 1));
  Succeed("n001");
  clock_.advance(10'000);
  // Another app, another version, or a node not in the deploy change nothing.
  engine().on_app_unhealthy("n001", "other", "2.0.0", "");
  engine().on_app_unhealthy("n001", "web", "1.0.0", "");
  engine().on_app_unhealthy("n000", "web", "2.0.0", "");
  EXPECT_EQ(N(id, "n001").status, NodeStatus::healthy);
  engine().on_app_unhealthy("n001", "web", "2.0.0", "probe said 503");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(N(id, "n001").reason, HasSubstr("probe said 503"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::skipped);
}

TEST_F(StrategyTest, PromoteWhileTheCanaryWaitRunsGoesOnAtOnce) {
  const DeployId id = Start(Canary(Gate::wait, Millis(600'000)), WithCanary(Targets(3), 0));
  Succeed("n000");
  ASSERT_TRUE(engine().promote(id, "carol"));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n001", "n002"));
}

TEST_F(StrategyTest, PromoteBeforeTheCanariesAreDoneIsRefused) {
  const DeployId id = Start(Canary(Gate::promote), WithCanary(Targets(3), 0));
  auto st = engine().promote(id, "bob");
  ASSERT_FALSE(st);
  EXPECT_THAT(st.error().message, HasSubstr("not waiting for promotion"));
}

TEST_F(StrategyTest, ZonesStopAtTheFirstZoneThatFails) {
  auto r = Request("2.0.0", "100%");
  r.strategy = Strategy::zones;
  r.zone_order = {"b", "a", "c"};
  std::vector<Target> t = {
      {"a1", "a", "1.0.0"}, {"a2", "a", "1.0.0"}, {"b1", "b", "1.0.0"}, {"c1", "c", "1.0.0"}};
  const DeployId id = Start(r, t);
  EXPECT_EQ(D(id).zones, "b,a,c");
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("b1"));
  Succeed("b1");
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("a1", "a2"));
  Succeed("a1");
  FailStuck("a2");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(D(id).reason, HasSubstr("zone a"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(N(id, "c1").status, NodeStatus::skipped);
  EXPECT_EQ(N(id, "b1").status, NodeStatus::reverted);
  EXPECT_EQ(N(id, "a1").status, NodeStatus::reverted);
}

TEST_F(StrategyTest, AllUpdatesEveryNodeAtOnce) {
  auto r = Request("2.0.0", "1");
  r.strategy = Strategy::all;
  const DeployId id = Start(r, Targets(6));
  EXPECT_EQ(fleet_.pending().size(), 6u);
  EXPECT_EQ(D(id).batches, 1);
  EXPECT_EQ(D(id).batch.to_string(), "100%");
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(StrategyTest, MaxUnavailableIsNeverExceededCountingNodesAlreadyDown) {
  auto r = Request("2.0.0", "100%");
  r.max_unavailable = BatchSize{2, false};
  auto t = Targets(8);
  t[5].in_service = false;  // already down: it uses one of the two slots until it is updated
  const DeployId id = Start(r, t);
  EXPECT_EQ(D(id).max_unavailable, "2");
  // The node already down goes first, with one in-service node beside it.
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n005"));
  const int worst = AnswerRandomly(id, {"n005"});
  EXPECT_EQ(worst, 2);
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(StrategyTest, MaxUnavailablePercentRoundsDownButIsAtLeastOne) {
  auto r = Request("2.0.0", "100%");
  r.max_unavailable = BatchSize{30, true};  // of 7: 2.1 -> 2
  const DeployId id = Start(r, Targets(7));
  EXPECT_EQ(fleet_.pending().size(), 2u);
  EXPECT_EQ(AnswerRandomly(id, {}), 2);
  r = Request("3.0.0", "100%");
  r.max_unavailable = BatchSize{10, true};  // of 7: 0.7 -> 1
  const DeployId id2 = Start(r, Targets(7, "2.0.0"));
  EXPECT_EQ(AnswerRandomly(id2, {}), 1);
}

TEST_F(StrategyTest, BatchCapsNodesInFlightUnderMaxUnavailable) {
  auto r = Request("2.0.0", "1");
  r.max_unavailable = BatchSize{3, false};
  const DeployId id = Start(r, Targets(4));
  EXPECT_EQ(fleet_.pending().size(), 1u);
  EXPECT_EQ(AnswerRandomly(id, {}), 1);
}

TEST_F(StrategyTest, MaxUnavailableThatCanNeverBeMetFailsInsteadOfHanging) {
  auto r = Request("2.0.0", "100%");
  r.max_unavailable = BatchSize{1, false};
  r.max_failures = 3;
  auto t = Targets(4);
  const DeployId id = Start(r, t);
  // n000 fails (within max failures) and stays out of service: nothing else may go.
  FailStuck("n000");
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_THAT(D(id).reason, HasSubstr("max unavailable 1"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
}

TEST_F(StrategyTest, PauseLetsNodesInFlightFinishAndStartsNoMore) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(6));
  ASSERT_TRUE(engine().pause(id, "bob"));
  EXPECT_EQ(D(id).state, DeployState::paused);
  EXPECT_THAT(D(id).waiting, HasSubstr("slipway resume"));
  auto again = engine().pause(id, "bob");
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error().message, HasSubstr("already paused"));
  AnswerAll();
  EXPECT_EQ(N(id, "n001").status, NodeStatus::healthy);
  EXPECT_EQ(N(id, "n002").status, NodeStatus::pending);
  EXPECT_TRUE(fleet_.pending().empty());
  auto promote = engine().promote(id, "bob");
  ASSERT_FALSE(promote);
  EXPECT_THAT(promote.error().message, HasSubstr("slipway resume"));
  ASSERT_TRUE(engine().resume(id, "carol"));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n002", "n003"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_THAT(Actions(id),
              ElementsAre("started:alice", "paused:bob", "resumed:carol", "succeeded:slipway"));
  EXPECT_FALSE(sink_.of_kind(id, "deploy.paused").empty());
  EXPECT_FALSE(sink_.of_kind(id, "deploy.resumed").empty());
}

TEST_F(StrategyTest, AbortWhilePausedRollsBack) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  ASSERT_TRUE(engine().pause(id, "bob"));
  AnswerAll();  // the first wave; the pause holds the second
  EXPECT_EQ(N(id, "n002").status, NodeStatus::pending);
  ASSERT_TRUE(engine().abort(id, "carol"));
  EXPECT_EQ(D(id).state, DeployState::running);
  EXPECT_EQ(D(id).phase, Phase::revert);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(D(id).reason.find("aborted by carol"), 0u);
  EXPECT_THAT(Actions(id),
              ElementsAre("started:alice", "paused:bob", "aborted:carol", "rolled_back:slipway"));
  EXPECT_FALSE(engine().pause(id, "bob"));
  EXPECT_FALSE(engine().resume(id, "bob"));
}

TEST_F(StrategyTest, NothingIsPausedWhileRollingBack) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  Succeed("n000");
  FailStuck("n001");
  EXPECT_EQ(D(id).phase, Phase::revert);
  auto st = engine().pause(id, "bob");
  ASSERT_FALSE(st);
  EXPECT_THAT(st.error().message, HasSubstr("stopping"));
}

TEST_F(StrategyTest, HealthyDeadlineIsPerDeploy) {
  auto r = Request("2.0.0", "1", 1);
  r.healthy_deadline = Millis(30'000);
  const DeployId id = Start(r, Targets(2));
  EXPECT_EQ(D(id).healthy_deadline_ms, 30'000);
  clock_.advance(30'001);
  engine().tick();
  EXPECT_EQ(N(id, "n000").status, NodeStatus::failed);
  EXPECT_THAT(N(id, "n000").reason, HasSubstr("healthy deadline of 30.0s"));
  EXPECT_TRUE(fleet_.pending_for("n001"));  // within max failures: the rollout goes on
}

TEST_F(StrategyTest, ProgressDeadlineFailsADeployWhereNoNodeBecomesHealthy) {
  auto r = Request("2.0.0", "1");
  r.progress_deadline = Millis(120'000);
  r.healthy_deadline = Millis(600'000);
  const DeployId id = Start(r, Targets(3));
  clock_.advance(100'000);
  engine().tick();
  Succeed("n000");  // progress: the deadline starts again
  clock_.advance(100'000);
  engine().tick();
  EXPECT_EQ(D(id).phase, Phase::forward);
  clock_.advance(20'001);
  engine().tick();
  const auto stopping = sink_.of_kind(id, "deploy.aborting");
  ASSERT_EQ(stopping.size(), 1u);
  EXPECT_THAT(stopping[0].message, HasSubstr("progress deadline of 2m"));
  // n001 is in flight: its answer comes first, then everything goes back.
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("progress deadline of 2m"));
  EXPECT_EQ(N(id, "n002").status, NodeStatus::skipped);
  EXPECT_THAT(Actions(id), ElementsAre("started:alice", "failed:slipway", "rolled_back:slipway"));
}

TEST_F(StrategyTest, PausedTimeDoesNotCountAgainstTheProgressDeadline) {
  auto r = Request("2.0.0", "1");
  r.progress_deadline = Millis(60'000);
  const DeployId id = Start(r, Targets(3));
  Succeed("n000");
  ASSERT_TRUE(engine().pause(id, "bob"));
  AnswerAll();
  clock_.advance(3'600'000);
  engine().tick();
  EXPECT_EQ(D(id).state, DeployState::paused);
  ASSERT_TRUE(engine().resume(id, "bob"));
  clock_.advance(30'000);
  engine().tick();
  EXPECT_EQ(D(id).phase, Phase::forward);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(StrategyTest, AStartedDeployHasItsStrategyOnRecord) {
  auto r = Canary(Gate::promote);
  const DeployId id = Start(r, WithCanary(Targets(2), 0));
  EXPECT_EQ(D(id).strategy, "canary");
  EXPECT_EQ(D(id).canary, "1");
  EXPECT_EQ(D(id).canary_gate, "promote");
  const auto& started = sink_.of_kind(id, "deploy.started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_THAT(started[0].message, HasSubstr("canary first (1 node(s)), then waiting for promote"));
  auto json = to_json(D(id), true);
  auto back = deploy_from_json(json).value();
  EXPECT_EQ(back.canary_gate, "promote");
  ASSERT_EQ(back.log.size(), 1u);
  EXPECT_TRUE(back.nodes[0].canary);
}

}  // namespace
}  // namespace slipway::engine::testing
