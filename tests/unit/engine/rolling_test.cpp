// Rolling waves and the happy path: how nodes are split into waves, what is sent to them, and what
// is journaled and emitted when everything goes well.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/engine/fake_fleet.h"

namespace slipway::engine::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

class RollingTest : public EngineTest {};

TEST_F(RollingTest, CountBatchSplitsTheFleetIntoWavesOfThatSize) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(5));
  EXPECT_EQ(D(id).batches, 3);
  std::vector<int> batches;
  for (const auto& n : D(id).nodes)
    batches.push_back(n.batch);
  EXPECT_THAT(batches, ElementsAre(0, 0, 1, 1, 2));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n001"));
}

TEST_F(RollingTest, PercentBatchRoundsDownButIsAtLeastOne) {
  // 25% of 7 = 1.75 -> 1 node per wave.
  DeployId id = Start(Request("2.0.0", "25%"), Targets(7));
  EXPECT_EQ(D(id).batches, 7);
  EXPECT_EQ(fleet_.pending().size(), 1u);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);

  // 10% of 3 = 0.3 -> at least 1.
  auto r = Request("3.0.0", "10%");
  id = Start(r, Targets(3, "2.0.0"));
  EXPECT_EQ(D(id).batches, 3);
  AnswerAll();

  // 50% of 10 -> 5; 34% of 10 -> 3 (3 + 3 + 3 + 1).
  id = Start(Request("4.0.0", "50%"), Targets(10, "3.0.0"));
  EXPECT_EQ(D(id).batches, 2);
  EXPECT_EQ(fleet_.pending().size(), 5u);
  AnswerAll();
  id = Start(Request("5.0.0", "34%"), Targets(10, "4.0.0"));
  EXPECT_EQ(D(id).batches, 4);
  EXPECT_EQ(fleet_.pending().size(), 3u);
  AnswerAll();
  EXPECT_EQ(D(id).nodes.back().batch, 3);
}

TEST_F(RollingTest, BatchLargerThanTheFleetIsOneWave) {
  const DeployId id = Start(Request("2.0.0", "50"), Targets(4));
  EXPECT_EQ(D(id).batches, 1);
  EXPECT_EQ(fleet_.pending().size(), 4u);
}

TEST_F(RollingTest, NodesAreSortedByNameAndDeduplicated) {
  std::vector<Target> t{{"web-c", "b", "1.0.0"}, {"web-a", "a", "1.0.0"}, {"web-b", "a", "1.0.0"},
                        {"web-a", "a", "1.0.0"}, {"web-c", "b", "1.0.0"}, {"api-z", "c", ""}};
  const DeployId id = Start(Request("2.0.0", "1"), t);
  std::vector<std::string> names;
  for (const auto& n : D(id).nodes)
    names.push_back(n.node);
  EXPECT_THAT(names, ElementsAre("api-z", "web-a", "web-b", "web-c"));
  EXPECT_EQ(D(id).batches, 4);
  EXPECT_EQ(N(id, "web-c").zone, "b");
  EXPECT_EQ(N(id, "api-z").from_version, "");

  // The waves go in name order, and each node gets exactly one install.
  std::vector<std::string> order;
  while (!fleet_.pending().empty()) {
    ASSERT_EQ(fleet_.pending().size(), 1u);
    order.push_back(fleet_.pending()[0].node);
    Succeed(order.back());
  }
  EXPECT_THAT(order, ElementsAre("api-z", "web-a", "web-b", "web-c"));
  EXPECT_EQ(fleet_.sent().size(), 4u);
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(RollingTest, DuplicateTargetsKeepTheFirstOneGiven) {
  std::vector<Target> t{
      {"b", "z1", "1.0.0"}, {"a", "z1", "0.9.0"}, {"a", "z2", "1.0.0"}, {"a", "z3", "1.0.0"}};
  DeployId id = Start(Request("2.0.0", "1"), t);
  ASSERT_EQ(D(id).nodes.size(), 2u);
  EXPECT_EQ(N(id, "a").zone, "z1");
  EXPECT_EQ(N(id, "a").from_version, "0.9.0");
  AnswerAll();

  // The same on a bigger, shuffled input (where an unstable sort would mix the copies up): every
  // node is given three times, the first copy in zone "first".
  std::vector<Target> many;
  for (int copy = 0; copy < 3; ++copy) {
    for (int i = 0; i < 50; ++i) {
      const int k = (i * 37) % 50;  // a fixed shuffle
      many.push_back(
          Target{NodeName(k), copy == 0 ? "first" : "copy" + std::to_string(copy), "2.0.0"});
    }
  }
  id = Start(Request("3.0.0", "10"), many);
  ASSERT_EQ(D(id).nodes.size(), 50u);
  for (const auto& n : D(id).nodes)
    EXPECT_EQ(n.zone, "first") << n.node;
  EXPECT_EQ(D(id).batches, 5);
}

TEST_F(RollingTest, NextWaveWaitsForEveryNodeOfTheCurrentOne) {
  const DeployId id = Start(Request("2.0.0", "3"), Targets(7));
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n001", "n002"));
  EXPECT_EQ(D(id).current_batch, 0);
  for (int i = 3; i < 7; ++i)
    EXPECT_EQ(N(id, NodeName(i)).status, NodeStatus::pending);

  Succeed("n001");
  Succeed("n000");
  // Steps from the last node do not finish it.
  Step("n002", "download");
  Step("n002", "health", protocol::StepStatus::started);
  clock_.advance(60'000);
  engine().tick();
  EXPECT_EQ(fleet_.sent().size(), 3u) << "a node of wave 2 was sent before wave 1 was done";
  EXPECT_EQ(N(id, "n003").status, NodeStatus::pending);
  EXPECT_EQ(N(id, "n002").status, NodeStatus::running);
  EXPECT_EQ(N(id, "n002").step, "health");

  Succeed("n002");
  EXPECT_EQ(D(id).current_batch, 1);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n003", "n004", "n005"));
  EXPECT_EQ(fleet_.sent().size(), 6u);
  for (const char* n : {"n004", "n003"})
    Succeed(n);
  EXPECT_EQ(fleet_.sent().size(), 6u);
  Succeed("n005");
  EXPECT_EQ(D(id).current_batch, 2);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n006"));
  Succeed("n006");
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_EQ(fleet_.sent().size(), 7u);
}

TEST_F(RollingTest, InstallCommandCarriesTheArtifactAndTheRequest) {
  auto r = Request("2.0.0", "2");
  r.artifact = ArtifactRef{"2.0.0", std::string(64, 'a'), 123456};
  r.env_vars = {{"DB_URL", "postgres://db"}, {"MODE", "blue"}};
  r.keep_releases = 3;
  const DeployId id = Start(r, Targets(4));
  AnswerAll();
  ASSERT_EQ(fleet_.sent().size(), 4u);
  std::set<std::string> actions;
  for (const auto& s : fleet_.sent()) {
    ASSERT_FALSE(s.deactivate);
    EXPECT_EQ(s.install.deploy, id);
    EXPECT_EQ(s.install.app, "web");
    EXPECT_EQ(s.install.version, "2.0.0");
    EXPECT_EQ(s.install.sha256, std::string(64, 'a'));
    EXPECT_EQ(s.install.size, 123456u);
    EXPECT_EQ(s.install.url, "/api/v1/blobs/" + std::string(64, 'a'));
    EXPECT_EQ(s.install.env, r.env_vars);
    EXPECT_EQ(s.install.keep_releases, 3);
    EXPECT_FALSE(s.install.action.empty());
    actions.insert(s.install.action);
  }
  EXPECT_EQ(actions.size(), 4u) << "action ids must be unique";
}

TEST_F(RollingTest, ActionIdsAreUniqueAcrossDeploysAndEngineRestarts) {
  std::set<std::string> actions;
  auto collect = [&] {
    for (const auto& s : fleet_.sent())
      actions.insert(s.action());
  };
  DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  AnswerAll();
  id = Start(Request("3.0.0", "2"), Targets(4, "2.0.0"));
  AnswerAll();
  collect();
  EXPECT_EQ(actions.size(), 8u);
  // A new engine (the server restarted) starts from the next deploy id; its actions differ too.
  fleet_.clear_log();
  Rebuild({});
  engine().set_next_id(id + 1);
  id = Start(Request("4.0.0", "2"), Targets(4, "3.0.0"));
  EXPECT_EQ(id, 3);
  AnswerAll();
  collect();
  EXPECT_EQ(actions.size(), 12u);
}

TEST_F(RollingTest, SuccessLeavesEveryNodeHealthyOnTheNewVersion) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(5));
  AnswerAll();
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::succeeded);
  EXPECT_EQ(d.phase, Phase::forward);
  EXPECT_EQ(d.reason, "");
  EXPECT_EQ(d.count(NodeStatus::healthy), 5);
  EXPECT_EQ(d.failures(), 0);
  EXPECT_EQ(d.finished_at, clock_.now());
  for (const auto& n : d.nodes) {
    EXPECT_EQ(n.status, NodeStatus::healthy) << n.node;
    EXPECT_EQ(n.version_now, "2.0.0") << n.node;
    EXPECT_EQ(n.from_version, "1.0.0") << n.node;
    EXPECT_TRUE(n.action.empty()) << n.node;
    EXPECT_EQ(fleet_.current[n.node], "2.0.0");
  }
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
  EXPECT_TRUE(engine().running().empty());
  EXPECT_EQ(engine().ignored_reports(), 0u);
}

TEST_F(RollingTest, DeployRecordsTheRequest) {
  auto r = Request("2.0.0", "40%", 1);
  r.selector = "role=api";
  r.actor = "ci-bot";
  const TimeMs t0 = clock_.now();
  const DeployId id = Start(r, Targets(5));
  const Deploy& d = D(id);
  EXPECT_EQ(d.kind, DeployKind::deploy);
  EXPECT_EQ(d.app, "web");
  EXPECT_EQ(d.env, "prod");
  EXPECT_EQ(d.version, "2.0.0");
  EXPECT_EQ(d.selector, "role=api");
  EXPECT_EQ(d.strategy, "rolling");
  EXPECT_EQ(d.batch.to_string(), "40%");
  EXPECT_EQ(d.max_failures, 1);
  EXPECT_EQ(d.actor, "ci-bot");
  EXPECT_EQ(d.created_at, t0);
  EXPECT_EQ(d.state, DeployState::running);
  EXPECT_EQ(d.batches, 3);  // 40% of 5 = 2: 2 + 2 + 1
  clock_.advance(1234);
  AnswerAll();
  EXPECT_EQ(D(id).duration(clock_.now()).count(), 1234);
}

TEST_F(RollingTest, StepsAreJournaledAndEmitted) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(1));
  Step("n000", "download", protocol::StepStatus::started);
  Step("n000", "download", protocol::StepStatus::ok, "fetched 1000 bytes");
  Step("n000", "health", protocol::StepStatus::failed, "connection refused");
  Step("n000", "health", protocol::StepStatus::ok);
  EXPECT_EQ(N(id, "n000").step, "health");

  std::vector<StepRecord> steps;
  for (const auto& e : journal_.entries)
    if (e.kind == RecordingJournal::Entry::step) steps.push_back(e.step_record);
  // Only outcomes are journaled: `started` is news for watchers, not history.
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].deploy, id);
  EXPECT_EQ(steps[0].node, "n000");
  EXPECT_EQ(steps[0].step, "download");
  EXPECT_EQ(steps[0].status, "ok");
  EXPECT_EQ(steps[0].output, "fetched 1000 bytes");
  EXPECT_EQ(steps[0].duration_ms, 5);
  EXPECT_EQ(steps[1].status, "failed");
  EXPECT_EQ(steps[2].status, "ok");

  auto ev = sink_.of_kind(id, "node.step");
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[2].node, "n000");
  EXPECT_EQ(ev[2].step, "health");
  EXPECT_EQ(ev[2].status, "failed");
  EXPECT_EQ(ev[2].message, "connection refused");
}

TEST_F(RollingTest, LongStepOutputIsCutInEventsButKeptInTheJournal) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(1));
  const std::string out(100'000, 'x');
  Step("n000", "hook:after_install", protocol::StepStatus::ok, out);
  auto ev = sink_.of_kind(id, "node.step");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_LE(ev[0].message.size(), 4096u);
  ASSERT_FALSE(journal_.entries.empty());
  EXPECT_EQ(journal_.entries.back().step_record.output, out);
}

TEST_F(RollingTest, JournalAndEventsAreInOrder) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(2));
  Step("n000", "download");
  Succeed("n000");
  Step("n001", "download");
  Succeed("n001");

  EXPECT_THAT(sink_.kinds(id),
              ElementsAre("deploy.started", "batch.started", "node.step", "node.finished",
                          "batch.started", "node.step", "node.finished", "deploy.finished"));
  auto ev = sink_.events(id);
  for (size_t i = 1; i < ev.size(); ++i)
    EXPECT_GT(ev[i].seq, ev[i - 1].seq);
  EXPECT_EQ(ev.front().status, "running");
  EXPECT_EQ(ev[3].node, "n000");
  EXPECT_EQ(ev[3].status, "healthy");
  EXPECT_EQ(ev.back().status, "succeeded");
  // The deploy's state, as the sink sees it, is running until the last event.
  for (size_t i = 0; i + 1 < sink_.seen.size(); ++i)
    EXPECT_EQ(sink_.seen[i].state, DeployState::running) << i;
  EXPECT_EQ(sink_.seen.back().state, DeployState::succeeded);

  // Journal: the deploy first (with all its nodes), each node running then healthy, in wave order,
  // the step in between, and the deploy's final state last.
  using E = RecordingJournal::Entry;
  const auto& j = journal_.entries;
  ASSERT_EQ(j.size(), 8u);
  EXPECT_EQ(j[0].kind, E::deploy);
  EXPECT_EQ(j[0].state, DeployState::running);
  EXPECT_EQ(j[0].node_count, 2u);
  EXPECT_EQ(j[1].kind, E::node);
  EXPECT_EQ(j[1].node_progress.node, "n000");
  EXPECT_EQ(j[1].node_progress.status, NodeStatus::running);
  EXPECT_EQ(j[2].kind, E::step);
  EXPECT_EQ(j[3].kind, E::node);
  EXPECT_EQ(j[3].node_progress.status, NodeStatus::healthy);
  EXPECT_EQ(j[4].node_progress.node, "n001");
  EXPECT_EQ(j[4].node_progress.status, NodeStatus::running);
  EXPECT_EQ(j[5].kind, E::step);
  EXPECT_EQ(j[6].node_progress.status, NodeStatus::healthy);
  EXPECT_EQ(j[7].kind, E::deploy);
  EXPECT_EQ(j[7].state, DeployState::succeeded);
  for (const auto& e : j)
    EXPECT_EQ(e.id, id);
}

TEST_F(RollingTest, EventSequenceIsPerDeployAndTimestamped) {
  const DeployId a = Start(Request("2.0.0", "1"), Targets(1));
  auto other = Request("2.0.0", "1");
  other.app = "api";
  const DeployId b = Start(other, {{"m1", "a", "1.0.0"}});
  clock_.advance(50);
  Succeed("m1");
  clock_.advance(50);
  Succeed("n000");
  for (DeployId id : {a, b}) {
    auto ev = sink_.events(id);
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev.front().seq, 1);
    for (size_t i = 1; i < ev.size(); ++i) {
      EXPECT_EQ(ev[i].seq, ev[i - 1].seq + 1);
      EXPECT_GE(ev[i].at, ev[i - 1].at);
    }
  }
  auto fin = sink_.of_kind(a, "node.finished");
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].duration_ms, 100);
}

TEST_F(RollingTest, DownloadedIsRememberedPerNode) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  auto cmd = PendingFor("n000");
  auto r = Ok(cmd);
  r.downloaded = true;
  Answer("n000", r);
  Succeed("n001");
  EXPECT_TRUE(N(id, "n000").downloaded);
  EXPECT_FALSE(N(id, "n001").downloaded);
}

TEST_F(RollingTest, RedeployingTheSameVersionSucceeds) {
  const DeployId id = Start(Request("1.0.0", "2"), Targets(3, "1.0.0"));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_EQ(fleet_.sent().size(), 3u);
}

TEST_F(RollingTest, FirstInstallOnNodesWithNothing) {
  const DeployId id = Start(Request("1.0.0", "50%"), Targets(4, ""));
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  for (const auto& n : D(id).nodes)
    EXPECT_EQ(n.from_version, "");
}

TEST_F(RollingTest, RollbackKindDeploySucceedsTheSameWay) {
  auto r = Request("1.0.0", "2");
  r.kind = DeployKind::rollback;
  r.previous = {{"2.0.0", Art("2.0.0")}};
  const DeployId id = Start(r, Targets(3, "2.0.0"));
  EXPECT_EQ(D(id).kind, DeployKind::rollback);
  EXPECT_EQ(fleet_.pending().size(), 2u);
  for (const auto& s : fleet_.pending())
    EXPECT_EQ(s.install.version, "1.0.0");
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  auto started = sink_.of_kind(id, "deploy.started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_NE(started[0].message.find("rolling back"), std::string::npos) << started[0].message;
}

}  // namespace
}  // namespace slipway::engine::testing
