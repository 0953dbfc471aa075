// Starting, refusing, aborting and looking up deploys, and reports that must not be believed.
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
using ::testing::UnorderedElementsAre;

class ControlTest : public EngineTest {};

// --- start and conflicts -------------------------------------------------------------------------

TEST_F(ControlTest, EmptyTargetsAreAnErrorNotASuccess) {
  auto req = Request("2.0.0", "1");
  req.selector = "role=api zone=b";
  auto r = engine().start(req, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_THAT(r.error().message, HasSubstr("env=prod"));
  EXPECT_THAT(r.error().message, HasSubstr("role=api zone=b"));
  EXPECT_THAT(fleet_.sent(), IsEmpty());
  EXPECT_THAT(journal_.entries, IsEmpty());
  EXPECT_THAT(sink_.seen, IsEmpty());
  EXPECT_TRUE(engine().running().empty());
}

TEST_F(ControlTest, SecondDeployOfTheSameAppAndEnvIsRefusedNamingTheFirst) {
  const DeployId first = Start(Request("2.0.0", "1"), Targets(3));
  const size_t sent = fleet_.sent().size();
  const size_t journaled = journal_.entries.size();
  const size_t events = sink_.seen.size();

  auto other = Request("3.0.0", "1");
  other.actor = "bob";
  other.selector = "role=worker";  // another subset of the same env is still the same app and env
  auto r = engine().start(other, {{"w1", "a", "1.0.0"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::conflict);
  EXPECT_THAT(r.error().message, HasSubstr("#" + std::to_string(first)));
  EXPECT_THAT(r.error().message, HasSubstr("web 2.0.0"));
  EXPECT_THAT(r.error().message, HasSubstr("alice"));
  // The refused deploy left no trace, and the first goes on untouched.
  EXPECT_EQ(fleet_.sent().size(), sent);
  EXPECT_EQ(journal_.entries.size(), journaled);
  EXPECT_EQ(sink_.seen.size(), events);
  EXPECT_EQ(engine().running().size(), 1u);
  EXPECT_EQ(engine().running_for("web", "prod")->id, first);

  // A rollback of the same app and env is refused too.
  auto rb = Request("1.0.0", "1");
  rb.kind = DeployKind::rollback;
  auto r2 = engine().start(rb, Targets(3));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::conflict);

  // Once the first is over, the next may start.
  AnswerAll();
  EXPECT_EQ(D(first).state, DeployState::succeeded);
  auto r3 = engine().start(Request("3.0.0", "1"), Targets(3, "2.0.0"));
  ASSERT_TRUE(r3) << r3.error().message;
  EXPECT_GT(*r3, first);
}

TEST_F(ControlTest, PreviewShowsTheBatchesAndStartsNothing) {
  auto req = Request("2.0.0", "2");
  auto p = engine().preview(req, Targets(5));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->deploy.id, 0);
  EXPECT_EQ(p->deploy.nodes.size(), 5u);
  EXPECT_EQ(p->deploy.batches, 3);
  EXPECT_EQ(p->deploy.version, "2.0.0");
  EXPECT_THAT(p->how, HasSubstr("2 at a time (3 batches)"));
  std::vector<int> batches;
  for (const auto& n : p->deploy.nodes)
    batches.push_back(n.batch);
  EXPECT_THAT(batches, ::testing::ElementsAre(0, 0, 1, 1, 2));
  // Nothing was sent, journaled or announced, and nothing runs.
  EXPECT_THAT(fleet_.sent(), IsEmpty());
  EXPECT_THAT(journal_.entries, IsEmpty());
  EXPECT_THAT(sink_.seen, IsEmpty());
  EXPECT_TRUE(engine().running().empty());
  // A preview does not use up an id: the real deploy gets the first one.
  const DeployId id = Start(req, Targets(5));
  EXPECT_EQ(id, 1);
}

TEST_F(ControlTest, PreviewRefusesWhatStartWouldRefuse) {
  auto empty = engine().preview(Request("2.0.0", "1"), {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::failed_precondition);
  const DeployId first = Start(Request("2.0.0", "1"), Targets(2));
  auto busy = engine().preview(Request("3.0.0", "1"), Targets(2));
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Errc::conflict);
  EXPECT_THAT(busy.error().message, HasSubstr("#" + std::to_string(first)));
}

TEST_F(ControlTest, OtherAppsAndOtherEnvsRunSideBySide) {
  const DeployId a = Start(Request("2.0.0", "1"), Targets(2));
  auto api = Request("2.0.0", "1");
  api.app = "api";
  const DeployId b = Start(api, Targets(2));  // same nodes, another app
  auto staging = Request("2.0.0", "1");
  staging.env = "staging";
  const DeployId c = Start(staging, {{"s1", "a", "1.0.0"}});
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(engine().running().size(), 3u);
  EXPECT_EQ(engine().running_for("web", "prod")->id, a);
  EXPECT_EQ(engine().running_for("api", "prod")->id, b);
  EXPECT_EQ(engine().running_for("web", "staging")->id, c);
  EXPECT_EQ(engine().running_for("api", "staging"), nullptr);

  // n000 has a command of each deploy in flight; each result goes to its own deploy.
  std::vector<SentCommand> to_n000;
  for (const auto& s : fleet_.pending())
    if (s.node == "n000") to_n000.push_back(s);
  ASSERT_EQ(to_n000.size(), 2u);
  EXPECT_NE(to_n000[0].action(), to_n000[1].action());
  Answer("n000", Ok(to_n000[1]));  // api's
  EXPECT_EQ(N(b, "n000").status, NodeStatus::healthy);
  EXPECT_EQ(N(a, "n000").status, NodeStatus::running);
  AnswerAll();
  for (DeployId id : {a, b, c})
    EXPECT_EQ(D(id).state, DeployState::succeeded) << id;
}

TEST_F(ControlTest, DeployIdsStartWhereTheServerSays) {
  engine().set_next_id(41);
  EXPECT_EQ(Start(Request("2.0.0", "1"), Targets(1)), 41);
  auto api = Request("2.0.0", "1");
  api.app = "api";
  EXPECT_EQ(Start(api, Targets(1)), 42);
  // A refused start does not use up an id.
  EXPECT_FALSE(engine().start(Request("2.0.0", "1"), Targets(1)));
  EXPECT_FALSE(engine().start(Request("2.0.0", "1"), {}));
  auto other = Request("2.0.0", "1");
  other.app = "other";
  EXPECT_EQ(Start(other, Targets(1)), 43);
}

// --- reports that do not match ------------------------------------------------------------------

TEST_F(ControlTest, ReportsForUnknownActionsAreIgnoredAndCounted) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  const size_t journaled = journal_.entries.size();
  const size_t events = sink_.seen.size();

  protocol::InstallResult r;
  r.ok = true;
  r.version = "2.0.0";
  for (const char* action : {"", "nonsense", "d1.a999", "d999.a1"}) {
    r.action = action;
    engine().on_result("n000", r);
    protocol::StepEvent e;
    e.action = action;
    e.step = "download";
    engine().on_step("n000", e);
  }
  EXPECT_EQ(engine().ignored_reports(), 8u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::running);
  EXPECT_EQ(N(id, "n000").step, "");
  EXPECT_EQ(journal_.entries.size(), journaled);
  EXPECT_EQ(sink_.seen.size(), events);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(ControlTest, ReportsForAnotherNodesActionAreIgnored) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  const auto cmd0 = PendingFor("n000");
  // n001 (or a node outside the deploy) speaks for n000's command.
  protocol::StepEvent step;
  step.action = cmd0.action();
  step.step = "health";
  engine().on_step("n001", step);
  engine().on_result("n001", Ok(cmd0));
  engine().on_result("intruder", Ok(cmd0));
  auto bad = Ok(cmd0);
  bad.ok = false;
  bad.reason = "forged failure";
  engine().on_result("n001", bad);
  EXPECT_EQ(engine().ignored_reports(), 4u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::running);
  EXPECT_EQ(N(id, "n000").step, "");
  EXPECT_EQ(N(id, "n001").status, NodeStatus::running);
  // The real answers still count.
  Succeed("n000");
  Succeed("n001");
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(ControlTest, DuplicateResultsForTheSameActionAreIgnored) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(2));
  const auto cmd = PendingFor("n000");
  Answer("n000", Ok(cmd));
  EXPECT_EQ(N(id, "n000").status, NodeStatus::healthy);
  const size_t sent = fleet_.sent().size();
  // The same result again, then a contradicting one: neither changes anything.
  engine().on_result("n000", Ok(cmd));
  auto bad = Ok(cmd);
  bad.ok = false;
  bad.reason = "late failure";
  engine().on_result("n000", bad);
  protocol::StepEvent late_step;
  late_step.action = cmd.action();
  late_step.step = "health";
  engine().on_step("n000", late_step);
  EXPECT_EQ(engine().ignored_reports(), 3u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::healthy);
  EXPECT_EQ(N(id, "n000").reason, "");
  EXPECT_EQ(fleet_.sent().size(), sent) << "a duplicate result started another wave";
  EXPECT_EQ(D(id).phase, Phase::forward);
  Succeed("n001");
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(ControlTest, ResultsAfterTheDeployFinishedAreIgnored) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  const auto all = fleet_.pending();
  AnswerAll();
  ASSERT_EQ(D(id).state, DeployState::succeeded);
  const size_t journaled = journal_.entries.size();
  const size_t events = sink_.seen.size();
  for (const auto& cmd : all) {
    auto bad = Ok(cmd);
    bad.ok = false;
    engine().on_result(cmd.node, bad);
  }
  EXPECT_EQ(engine().ignored_reports(), 2u);
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  // And once forgotten, still ignored.
  engine().forget_finished();
  for (const auto& cmd : all)
    engine().on_result(cmd.node, Ok(cmd));
  EXPECT_EQ(engine().ignored_reports(), 4u);
  EXPECT_EQ(journal_.entries.size(), journaled);
  EXPECT_EQ(sink_.seen.size(), events);
}

TEST_F(ControlTest, ResultOfAnEarlierDeployDoesNotCountForTheNextOne) {
  const DeployId first = Start(Request("2.0.0", "1"), Targets(1));
  const auto old_cmd = PendingFor("n000");
  ASSERT_TRUE(engine().abort(first, "bob", false));
  Succeed("n000");
  ASSERT_EQ(D(first).state, DeployState::failed);
  const DeployId second = Start(Request("3.0.0", "1"), Targets(1, "2.0.0"));
  engine().on_result("n000", Ok(old_cmd));
  EXPECT_EQ(engine().ignored_reports(), 1u);
  EXPECT_EQ(N(second, "n000").status, NodeStatus::running);
}

TEST_F(ControlTest, ResultOfTheForwardInstallIsIgnoredOnceTheNodeIsReverting) {
  const DeployId id = Start(Request("2.0.0", "100%"), Targets(2));
  const auto install0 = PendingFor("n000");
  Succeed("n000");
  FailAndSelfRevert("n001");
  ASSERT_EQ(N(id, "n000").status, NodeStatus::reverting);
  engine().on_result("n000", Ok(install0));  // a replay of the old result
  EXPECT_EQ(engine().ignored_reports(), 1u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
}

// --- abort ---------------------------------------------------------------------------------------

TEST_F(ControlTest, AbortWithRollbackWaitsForNodesInFlightThenSendsBack) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(6));
  Succeed("n000");
  Succeed("n001");
  // Wave 2 in flight.
  ASSERT_THAT(fleet_.pending_nodes(), ElementsAre("n002", "n003"));
  ASSERT_TRUE(engine().abort(id, "bob"));
  EXPECT_EQ(D(id).state, DeployState::running);
  EXPECT_EQ(D(id).aborted_by, "bob");
  EXPECT_EQ(fleet_.sent().size(), 4u) << "nothing is sent while nodes are in flight";
  EXPECT_EQ(sink_.of_kind(id, "deploy.aborting").size(), 1u);
  Succeed("n002");
  EXPECT_EQ(fleet_.sent().size(), 4u);
  Succeed("n003");
  // No third wave; every node that got 2.0.0 goes back, 2 at a time.
  EXPECT_EQ(D(id).phase, Phase::revert);
  EXPECT_EQ(N(id, "n004").status, NodeStatus::skipped);
  EXPECT_EQ(N(id, "n005").status, NodeStatus::skipped);
  EXPECT_THAT(fleet_.pending_nodes(), ElementsAre("n000", "n001"));
  AnswerAll();
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::rolled_back);
  EXPECT_THAT(d.reason, HasSubstr("aborted by bob"));
  EXPECT_THAT(d.reason, HasSubstr("rolled back"));
  EXPECT_EQ(d.count(NodeStatus::reverted), 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(fleet_.current[NodeName(i)], "1.0.0");
  EXPECT_EQ(fleet_.current["n004"], "1.0.0");
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
}

TEST_F(ControlTest, AbortWithoutRollbackLeavesNodesWhereTheyAre) {
  const DeployId id = Start(Request("2.0.0", "2"), Targets(6));
  Succeed("n000");
  Succeed("n001");
  ASSERT_TRUE(engine().abort(id, "bob", false));
  Succeed("n002");
  FailAndSelfRevert("n003");
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::failed);
  EXPECT_EQ(d.phase, Phase::forward);
  EXPECT_THAT(d.reason, HasSubstr("aborted by bob"));
  EXPECT_THAT(d.reason, HasSubstr("not rolled back"));
  EXPECT_EQ(d.count(NodeStatus::healthy), 3);
  EXPECT_EQ(d.count(NodeStatus::skipped), 2);
  EXPECT_EQ(fleet_.sent().size(), 4u) << "nothing was sent back";
  EXPECT_EQ(sink_.of_kind(id, "revert.started").size(), 0u);
}

TEST_F(ControlTest, AbortWaitsForANodeThatNeverAnswersUntilItsDeadline) {
  Rebuild(EngineOptions{Millis(30'000)});
  const DeployId id = Start(Request("2.0.0", "2"), Targets(4));
  Succeed("n000");
  ASSERT_TRUE(engine().abort(id, "bob"));
  clock_.advance(29'000);
  engine().tick();
  EXPECT_EQ(D(id).phase, Phase::forward);
  EXPECT_EQ(fleet_.sent().size(), 2u);
  clock_.advance(1'001);
  engine().tick();
  // n001 timed out; n000 goes back. The deploy is still running, so tick() kept it.
  ASSERT_NE(engine().find(id), nullptr);
  EXPECT_EQ(N(id, "n001").status, NodeStatus::failed);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::reverting);
  Succeed("n000");
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_THAT(D(id).reason, HasSubstr("aborted by bob"));
}

TEST_F(ControlTest, AbortOfUnknownOrFinishedDeploysIsRefused) {
  auto s = engine().abort(99, "bob");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::failed_precondition);
  EXPECT_THAT(s.error().message, HasSubstr("#99"));

  const DeployId id = Start(Request("2.0.0", "1"), Targets(1));
  AnswerAll();
  ASSERT_EQ(D(id).state, DeployState::succeeded);
  const size_t events = sink_.seen.size();
  s = engine().abort(id, "bob");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::failed_precondition);
  EXPECT_EQ(D(id).state, DeployState::succeeded);
  EXPECT_EQ(D(id).aborted_by, "");
  EXPECT_EQ(sink_.seen.size(), events);
  engine().forget_finished();
  EXPECT_FALSE(engine().abort(id, "bob"));
}

TEST_F(ControlTest, AbortTwiceIsRefusedTheSecondTime) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  ASSERT_TRUE(engine().abort(id, "bob"));
  auto again = engine().abort(id, "carol", false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
  EXPECT_THAT(again.error().message, HasSubstr("already stopping"));
  EXPECT_EQ(D(id).aborted_by, "bob");
  // The first abort's choice (roll back) holds.
  Succeed("n000");
  EXPECT_EQ(D(id).phase, Phase::revert);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
}

TEST_F(ControlTest, AbortWhileRevertingIsRefused) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(3));
  Succeed("n000");
  FailAndSelfRevert("n001");
  ASSERT_EQ(D(id).phase, Phase::revert);
  auto s = engine().abort(id, "bob");
  EXPECT_FALSE(s);
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(D(id).aborted_by, "");
}

TEST_F(ControlTest, AbortedDeployStillHoldsTheAppUntilItEnds) {
  const DeployId id = Start(Request("2.0.0", "1"), Targets(2));
  ASSERT_TRUE(engine().abort(id, "bob"));
  auto r = engine().start(Request("3.0.0", "1"), Targets(2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::conflict);
  engine().on_node_lost("n000");  // the node in flight vanishes: nothing left to wait for
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_TRUE(engine().start(Request("3.0.0", "1"), Targets(2)));
}

TEST_F(ControlTest, AbortedRollbackKindDeployBehavesTheSame) {
  auto req = Request("1.0.0", "1");
  req.kind = DeployKind::rollback;
  req.previous = {{"2.0.0", Art("2.0.0")}};
  const DeployId id = Start(req, Targets(3, "2.0.0"));
  Succeed("n000");
  ASSERT_TRUE(engine().abort(id, "bob"));
  Succeed("n001");
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::rolled_back);
  EXPECT_EQ(fleet_.current["n000"], "2.0.0");
  EXPECT_EQ(fleet_.current["n001"], "2.0.0");
  EXPECT_EQ(N(id, "n002").status, NodeStatus::skipped);
}

// --- lookups -------------------------------------------------------------------------------------

TEST_F(ControlTest, FindRunningForAndForgetFinished) {
  EXPECT_EQ(engine().find(1), nullptr);
  const DeployId web = Start(Request("2.0.0", "1"), Targets(1));
  auto api_req = Request("2.0.0", "1");
  api_req.app = "api";
  const DeployId api = Start(api_req, {{"m1", "a", "1.0.0"}});
  EXPECT_THAT(engine().running(), UnorderedElementsAre(engine().find(web), engine().find(api)));

  Succeed("n000");  // web is over
  ASSERT_NE(engine().find(web), nullptr) << "a finished deploy stays until forgotten";
  EXPECT_EQ(engine().find(web)->state, DeployState::succeeded);
  EXPECT_EQ(engine().running_for("web", "prod"), nullptr);
  EXPECT_THAT(engine().running(), ElementsAre(engine().find(api)));

  engine().forget_finished();
  EXPECT_EQ(engine().find(web), nullptr);
  ASSERT_NE(engine().find(api), nullptr);
  EXPECT_EQ(engine().running_for("api", "prod")->id, api);
  EXPECT_EQ(engine().running_for("api", "staging"), nullptr);
  EXPECT_EQ(engine().running_for("nope", "prod"), nullptr);

  Succeed("m1");
  EXPECT_TRUE(engine().running().empty());
  // Starting another deploy also drops the finished ones.
  const DeployId next = Start(Request("3.0.0", "1"), Targets(1, "2.0.0"));
  EXPECT_EQ(engine().find(api), nullptr);
  EXPECT_NE(engine().find(next), nullptr);
}

}  // namespace
}  // namespace slipway::engine::testing
