// The PlanManager (deploy plans: ordered stages) with a fake driver and a hand-driven clock:
// stages in order, waits and approvals, a failing stage rolling back the stages done in reverse
// order, aborts at every point, rollbacks that fail, nodes with different or no earlier versions.
#include "engine/plans.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"

namespace slipway::engine {
namespace {

struct Call {
  std::string what;  // stage NAME, rollback APP TO NODES, abort ID
  PlanId plan = 0;
};

class FakeDriver final : public PlanDriver {
 public:
  void start_stage(PlanId plan, const PlanStage& stage, const std::string& actor) override {
    calls.push_back(Call{"stage " + stage.name, plan});
    actors.push_back(actor);
  }
  void start_rollback(PlanId plan, const StageRollback& r, const std::string& actor) override {
    std::string nodes;
    for (const auto& n : r.nodes)
      nodes += (nodes.empty() ? "" : ",") + n;
    calls.push_back(Call{"rollback " + r.app + " " + r.to + " " + nodes + " " + r.selector, plan});
    rollbacks.push_back(r);
  }
  void abort_deploy(DeployId id, const std::string& actor) override {
    calls.push_back(Call{"abort " + std::to_string(id), 0});
  }
  void save_plan(const DeployPlan& p) override { saved[p.id] = p; }

  std::vector<std::string> what() const {
    std::vector<std::string> out;
    for (const auto& c : calls)
      out.push_back(c.what);
    return out;
  }

  std::vector<Call> calls;
  std::vector<std::string> actors;
  std::vector<StageRollback> rollbacks;
  std::map<PlanId, DeployPlan> saved;
};

PlanStage stage(const std::string& name, const std::string& app, int64_t wait_ms = 0,
                bool approve = false) {
  PlanStage s;
  s.name = name;
  s.app = app;
  s.version = "2.0";
  s.selector = "role=" + name;
  s.wait_ms = wait_ms;
  s.approve = approve;
  s.request = json::object{{"app", app}, {"env", "prod"}};
  return s;
}

// A finished deploy of `app` 2.0 whose nodes ran `from` (node -> version) before.
Deploy finished(DeployId id, const std::string& app, DeployState state,
                const std::map<std::string, std::string>& from, const std::string& version = "2.0",
                DeployKind kind = DeployKind::deploy) {
  Deploy d;
  d.id = id;
  d.kind = kind;
  d.app = app;
  d.version = version;
  d.env = "prod";
  d.selector = "role=x";
  d.state = state;
  d.reason = state == DeployState::succeeded ? "" : "node-9: health check failed";
  d.batch = BatchSize{1, false};
  for (const auto& [node, v] : from) {
    NodeProgress n;
    n.node = node;
    n.from_version = v;
    n.status = state == DeployState::succeeded ? NodeStatus::healthy : NodeStatus::reverted;
    d.nodes.push_back(n);
  }
  d.recount();
  return d;
}

class PlanManagerTest : public ::testing::Test {
 protected:
  PlanId start(std::vector<PlanStage> stages) {
    PlanRequest req;
    req.env = "prod";
    req.actor = "ann@host";
    req.spec = json::object{{"env", "prod"}};
    req.stages = std::move(stages);
    auto id = plans.start(std::move(req));
    EXPECT_TRUE(id) << id.error().message;
    return id ? *id : 0;
  }

  // The driver started deploy `id` for the plan, and it ended as `d` says.
  void started_and_finished(PlanId plan, const Deploy& d) {
    plans.on_started(plan, d.id);
    plans.on_deploy_finished(d);
  }

  // The saved record (the live one is gone once the plan is over).
  const DeployPlan& saved(PlanId id) { return driver.saved.at(id); }

  std::vector<std::string> states(PlanId id) {
    std::vector<std::string> out;
    for (const auto& s : saved(id).stages)
      out.emplace_back(stage_state_name(s.state));
    return out;
  }

  ManualClock clock;
  FakeDriver driver;
  PlanManager plans{clock, driver};
};

TEST_F(PlanManagerTest, StagesRunInOrderEachAfterThePreviousSucceeded) {
  const PlanId id =
      start({stage("migrate", "web-migrator"), stage("api", "web"), stage("worker", "web-worker")});
  EXPECT_EQ(plan_ref(id), "p1");
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage migrate"}));
  EXPECT_EQ(plans.find(id)->state, PlanState::running);

  started_and_finished(id, finished(1, "web-migrator", DeployState::succeeded, {{"m1", "1.0"}}));
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage migrate", "stage api"}));
  EXPECT_EQ(plans.find(id)->current, 1);
  started_and_finished(id, finished(2, "web", DeployState::succeeded, {{"a1", "1.0"}}));
  started_and_finished(id, finished(3, "web-worker", DeployState::succeeded, {{"w1", "1.0"}}));

  EXPECT_EQ(plans.find(id), nullptr);  // over: only the store has it
  const auto& p = saved(id);
  EXPECT_EQ(p.state, PlanState::succeeded);
  EXPECT_EQ(states(id), (std::vector<std::string>{"succeeded", "succeeded", "succeeded"}));
  EXPECT_EQ(p.stages[1].deploy, 2);
  EXPECT_TRUE(p.rollbacks.empty());
  EXPECT_EQ(driver.actors, (std::vector<std::string>{"ann@host", "ann@host", "ann@host"}));
  ASSERT_FALSE(p.log.empty());
  EXPECT_EQ(p.log.front().action, "started");
  EXPECT_EQ(p.log.back().action, "succeeded");
}

TEST_F(PlanManagerTest, AFailingSecondStageRollsBackTheFirstAndSkipsTheThird) {
  const PlanId id =
      start({stage("migrate", "migrate"), stage("api", "web"), stage("worker", "worker")});
  started_and_finished(id, finished(1, "migrate", DeployState::succeeded, {{"m1", "1.0"}}));
  started_and_finished(id, finished(2, "web", DeployState::rolled_back, {{"a1", "1.0"}}));

  // The first stage goes back to what its node ran before, on that node only.
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage migrate", "stage api",
                                                     "rollback migrate 1.0 m1 role=x"}));
  EXPECT_EQ(plans.find(id)->state, PlanState::rolling_back);
  EXPECT_EQ(states(id), (std::vector<std::string>{"rolling_back", "failed", "skipped"}));
  EXPECT_EQ(driver.rollbacks.at(0).batch, "1");
  EXPECT_EQ(driver.rollbacks.at(0).env, "prod");

  started_and_finished(id, finished(3, "migrate", DeployState::succeeded, {{"m1", "2.0"}}, "1.0",
                                    DeployKind::rollback));
  const auto& p = saved(id);
  EXPECT_EQ(p.state, PlanState::rolled_back);
  EXPECT_EQ(states(id), (std::vector<std::string>{"rolled_back", "failed", "skipped"}));
  EXPECT_EQ(p.rollbacks, (std::vector<DeployId>{3}));
  EXPECT_EQ(p.stages[0].rollbacks, (std::vector<DeployId>{3}));
  EXPECT_NE(p.reason.find("stage api failed: deploy #2 rolled_back"), std::string::npos)
      << p.reason;
  EXPECT_NE(p.stages[1].reason.find("health check failed"), std::string::npos);
  EXPECT_EQ(driver.calls.size(), 3u);  // the third stage never started
}

TEST_F(PlanManagerTest, StagesDoneAreRolledBackLastFirstOneAfterAnother) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b"), stage("c", "app-c")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  started_and_finished(id, finished(2, "app-b", DeployState::succeeded, {{"n2", "1.5"}}));
  started_and_finished(id, finished(3, "app-c", DeployState::rolled_back, {{"n3", "1.0"}}));
  EXPECT_EQ(driver.what().back(), "rollback app-b 1.5 n2 role=x");
  plans.on_started(id, DeployId{4});
  // Nothing else starts while it runs.
  EXPECT_EQ(driver.calls.size(), 4u);
  plans.on_deploy_finished(finished(4, "app-b", DeployState::succeeded, {}, "1.5"));
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.0 n1 role=x");
  started_and_finished(id, finished(5, "app-a", DeployState::succeeded, {}, "1.0"));
  EXPECT_EQ(saved(id).state, PlanState::rolled_back);
  EXPECT_EQ(saved(id).rollbacks, (std::vector<DeployId>{4, 5}));
  EXPECT_EQ(states(id), (std::vector<std::string>{"rolled_back", "rolled_back", "failed"}));
}

TEST_F(PlanManagerTest, ARollbackThatFailsStopsTheRollingBack) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b"), stage("c", "app-c")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  started_and_finished(id, finished(2, "app-b", DeployState::succeeded, {{"n2", "1.0"}}));
  started_and_finished(id, finished(3, "app-c", DeployState::rolled_back, {{"n3", "1.0"}}));
  started_and_finished(id, finished(4, "app-b", DeployState::failed, {}, "1.0"));
  const auto& p = saved(id);
  EXPECT_EQ(p.state, PlanState::failed);
  EXPECT_EQ(states(id), (std::vector<std::string>{"succeeded", "rollback_failed", "failed"}));
  EXPECT_NE(p.reason.find("the rollback of stage b failed"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("stage(s) a were left as they are"), std::string::npos) << p.reason;
  EXPECT_EQ(driver.what().back(), "rollback app-b 1.0 n2 role=x");  // a was not touched
}

TEST_F(PlanManagerTest, AFirstStageThatCouldNotGoBackLeavesThePlanFailed) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  started_and_finished(id, finished(1, "app-a", DeployState::failed, {{"n1", "1.0"}}));
  EXPECT_EQ(saved(id).state, PlanState::failed);
  EXPECT_EQ(states(id), (std::vector<std::string>{"failed", "skipped"}));
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage a"}));
}

TEST_F(PlanManagerTest, AStageThatCannotStartFailsThePlan) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  plans.on_started(id, err(Errc::failed_precondition, "no alive node matches env=prod role=b"));
  EXPECT_EQ(plans.find(id)->state, PlanState::rolling_back);
  EXPECT_EQ(saved(id).stages[1].state, StageState::failed);
  EXPECT_NE(saved(id).reason.find("stage b could not start: no alive node"), std::string::npos);
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.0 n1 role=x");
  // A rollback that cannot start either: failed.
  plans.on_started(id, err(Errc::conflict, "deploy #7 of app-a is still running"));
  EXPECT_EQ(saved(id).state, PlanState::failed);
  EXPECT_EQ(saved(id).stages[0].state, StageState::rollback_failed);
}

TEST_F(PlanManagerTest, ApprovalHoldsThePlanUntilPromoted) {
  const PlanId id = start({stage("a", "app-a", 0, true), stage("b", "app-b")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  const DeployPlan* p = plans.find(id);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->state, PlanState::waiting);
  EXPECT_EQ(p->gate, "approve");
  EXPECT_NE(p->waiting.find("slipway promote p1"), std::string::npos) << p->waiting;
  clock.advance(24 * 3600 * 1000);
  plans.tick();
  EXPECT_EQ(driver.calls.size(), 1u);  // time alone does not approve
  EXPECT_EQ(saved(id).state, PlanState::waiting);

  ASSERT_TRUE(plans.promote(id, "bob@host"));
  EXPECT_EQ(driver.what().back(), "stage b");
  EXPECT_EQ(plans.find(id)->state, PlanState::running);
  EXPECT_TRUE(plans.find(id)->waiting.empty());
  // Promoting a plan that is not waiting says so.
  auto st = plans.promote(id, "bob@host");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::failed_precondition);
  EXPECT_NE(st.error().message.find("not waiting"), std::string::npos);
  started_and_finished(id, finished(2, "app-b", DeployState::succeeded, {{"n2", "1.0"}}));
  bool approved = false;
  for (const auto& t : saved(id).log)
    approved = approved || (t.action == "approved" && t.actor == "bob@host");
  EXPECT_TRUE(approved);
  EXPECT_EQ(saved(id).state, PlanState::succeeded);
  // Over: nothing to promote or abort.
  EXPECT_EQ(plans.promote(id, "bob").error().code, Errc::failed_precondition);
  EXPECT_EQ(plans.abort(id, "bob").error().code, Errc::failed_precondition);
}

TEST_F(PlanManagerTest, AWaitEndsByItselfOrByPromote) {
  const PlanId id =
      start({stage("a", "app-a", 60'000), stage("b", "app-b", 60'000), stage("c", "app-c")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  EXPECT_EQ(plans.find(id)->state, PlanState::waiting);
  EXPECT_EQ(plans.find(id)->gate, "wait");
  EXPECT_EQ(plans.find(id)->resume_at, clock.now() + 60'000);
  clock.advance(59'000);
  plans.tick();
  EXPECT_EQ(driver.calls.size(), 1u);
  clock.advance(1'000);
  plans.tick();
  EXPECT_EQ(driver.what().back(), "stage b");
  started_and_finished(id, finished(2, "app-b", DeployState::succeeded, {{"n2", "1.0"}}));
  ASSERT_TRUE(plans.promote(id, "bob"));  // cuts the wait short
  EXPECT_EQ(driver.what().back(), "stage c");
}

TEST_F(PlanManagerTest, AbortWhileWaitingRollsBackTheStagesDone) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b", 0, true), stage("c", "c")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  started_and_finished(id, finished(2, "app-b", DeployState::succeeded, {{"n2", "1.0"}}));
  ASSERT_TRUE(plans.abort(id, "carol"));
  EXPECT_EQ(saved(id).aborted_by, "carol");
  EXPECT_EQ(driver.what().back(), "rollback app-b 1.0 n2 role=x");
  EXPECT_EQ(plans.abort(id, "carol").error().code, Errc::failed_precondition);
  EXPECT_EQ(plans.promote(id, "carol").error().code, Errc::failed_precondition);
  started_and_finished(id, finished(3, "app-b", DeployState::succeeded, {}, "1.0"));
  started_and_finished(id, finished(4, "app-a", DeployState::succeeded, {}, "1.0"));
  EXPECT_EQ(saved(id).state, PlanState::rolled_back);
  EXPECT_NE(saved(id).reason.find("aborted by carol"), std::string::npos);
  EXPECT_EQ(states(id), (std::vector<std::string>{"rolled_back", "rolled_back", "skipped"}));
}

TEST_F(PlanManagerTest, AbortDuringAStageAbortsItsDeployThenRollsBack) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  started_and_finished(id, finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  plans.on_started(id, DeployId{2});
  ASSERT_TRUE(plans.abort(id, "carol"));
  EXPECT_EQ(driver.what().back(), "abort 2");
  plans.on_deploy_finished(finished(2, "app-b", DeployState::rolled_back, {{"n2", "1.0"}}));
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.0 n1 role=x");
  EXPECT_NE(saved(id).reason.find("aborted by carol during stage b"), std::string::npos);
}

TEST_F(PlanManagerTest, AbortWhileAStageStartsAbortsItOnceStarted) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  ASSERT_TRUE(plans.abort(id, "carol"));
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage a"}));
  plans.on_started(id, DeployId{1});
  EXPECT_EQ(driver.what().back(), "abort 1");
  // It had finished before the abort reached it: it is rolled back like any stage done.
  plans.on_deploy_finished(finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}}));
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.0 n1 role=x");
  EXPECT_EQ(saved(id).stages[1].state, StageState::skipped);
}

TEST_F(PlanManagerTest, NodesWithOtherOrNoEarlierVersionsAreHandledApart) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  started_and_finished(
      id, finished(1, "app-a", DeployState::succeeded,
                   {{"n1", "1.0"}, {"n2", "1.1"}, {"n3", "1.0"}, {"n4", ""}, {"n5", "2.0"}}));
  started_and_finished(id, finished(2, "app-b", DeployState::rolled_back, {{"x", "1.0"}}));
  // One rollback per earlier version, with exactly its nodes; n5 was on 2.0 already (nothing to
  // undo), n4 had no version of the app (nothing to go back to).
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.0 n1,n3 role=x");
  started_and_finished(id, finished(3, "app-a", DeployState::succeeded, {}, "1.0"));
  EXPECT_EQ(saved(id).stages[0].state, StageState::rolling_back);
  EXPECT_EQ(driver.what().back(), "rollback app-a 1.1 n2 role=x");
  started_and_finished(id, finished(4, "app-a", DeployState::succeeded, {}, "1.1"));
  const auto& p = saved(id);
  EXPECT_EQ(p.state, PlanState::rolled_back);
  EXPECT_EQ(p.stages[0].state, StageState::rolled_back);
  EXPECT_EQ(p.stages[0].rollbacks, (std::vector<DeployId>{3, 4}));
  EXPECT_NE(p.stages[0].reason.find("n4 ran no earlier version of app-a: left on 2.0"),
            std::string::npos)
      << p.stages[0].reason;
}

TEST_F(PlanManagerTest, ADeployThatEndsWhileItStartsIsTakenAfterItsStart) {
  const PlanId id = start({stage("a", "app-a"), stage("b", "app-b")});
  const Deploy d = finished(1, "app-a", DeployState::succeeded, {{"n1", "1.0"}});
  plans.on_deploy_finished(d);  // not known yet: ignored
  EXPECT_EQ(driver.calls.size(), 1u);
  plans.on_started(id, DeployId{1});
  plans.on_deploy_finished(d);
  EXPECT_EQ(driver.what().back(), "stage b");
  // A second report of the same end, or the end of a deploy of no plan, changes nothing.
  plans.on_deploy_finished(d);
  plans.on_deploy_finished(finished(99, "other", DeployState::rolled_back, {}));
  plans.on_started(id, DeployId{5});  // stale answers too
  plans.on_started(id + 1, DeployId{6});
  EXPECT_EQ(driver.what(), (std::vector<std::string>{"stage a", "stage b"}));
  EXPECT_EQ(plans.find(id)->stages[1].deploy, 5);
}

TEST_F(PlanManagerTest, PlansAreNumberedAndNeedStages) {
  plans.set_next_id(7);
  EXPECT_FALSE(plans.start(PlanRequest{}));
  EXPECT_EQ(start({stage("a", "app-a")}), 7);
  EXPECT_EQ(start({stage("a", "app-b")}), 8);
  EXPECT_EQ(plans.running().size(), 2u);
}

TEST(PlanRecord, JsonRoundTripAndReferences) {
  DeployPlan p;
  p.id = 3;
  p.env = "prod";
  p.actor = "ann";
  p.state = PlanState::waiting;
  p.gate = "approve";
  p.waiting = "approval";
  p.created_at = 1'700'000'000'123;
  p.finished_at = 1'700'000'009'000;  // a fixed duration
  p.spec = json::object{{"env", "prod"}};
  p.stages.push_back(stage("a", "app-a", 5'000, false));
  p.stages[0].state = StageState::succeeded;
  p.stages[0].deploy = 12;
  p.stages[0].rollbacks = {14};
  p.stages[0].started_at = 1'700'000'000'500;
  p.rollbacks = {14};
  p.log.push_back(Transition{1'700'000'000'123, "ann", "started", "1 stage(s): a"});
  auto back = plan_from_json(to_json(p));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(to_json(*back), to_json(p));
  EXPECT_EQ(to_json(p).as_object().at("ref").as_string(), "p3");

  EXPECT_EQ(*parse_plan_ref("p12"), 12);
  EXPECT_EQ(*parse_plan_ref("12"), 12);
  EXPECT_EQ(*parse_plan_ref("P7"), 7);
  for (const char* bad : {"", "p", "p0", "-1", "p1x", "r3", "p99999999999999999999", "p\n1"}) {
    auto r = parse_plan_ref(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
  }
}

}  // namespace
}  // namespace slipway::engine
