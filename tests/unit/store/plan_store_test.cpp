// Deploy plans in the SQLite store: save and update, read back whole, list newest first, fail
// what a dead server left running, and the migration of a version-1 file.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/store.h"
#include "unit/store/schema_v1.h"
#include "unit/store/store_fixture.h"

namespace slipway::store {
namespace {

using engine::DeployPlan;
using engine::PlanState;
using engine::StageState;

DeployPlan plan(engine::PlanId id, std::string env = "prod", PlanState state = PlanState::running) {
  DeployPlan p;
  p.id = id;
  p.env = std::move(env);
  p.actor = "ann@host";
  p.state = state;
  p.current = 1;
  p.spec = json::object{{"env", p.env}, {"stages", json::array{json::object{{"name", "a"}}}}};
  p.created_at = 1'000 + id;
  p.finished_at = engine::is_terminal(state) ? 5'000 + id : 0;
  for (const char* name : {"migrate", "api", "worker"}) {
    engine::PlanStage s;
    s.name = name;
    s.app = std::string("web-") + name;
    s.version = "1.4.2";
    s.selector = std::string("role=") + name;
    s.request = json::object{{"app", s.app}, {"env", p.env}, {"strategy", "all"}};
    p.stages.push_back(std::move(s));
  }
  p.stages[0].state = StageState::succeeded;
  p.stages[0].deploy = 7;
  p.stages[0].started_at = 1'100;
  p.stages[0].finished_at = 1'200;
  p.stages[1].state = StageState::running;
  p.stages[1].deploy = 8;
  p.stages[1].approve = true;
  p.stages[2].wait_ms = 300'000;
  p.log.push_back(engine::Transition{1'000 + id, "ann@host", "started", "3 stage(s)"});
  return p;
}

using PlanStoreTest = FreshStoreTest;

TEST_F(PlanStoreTest, SavedPlansReadBackWholeAndUpdate) {
  auto p = plan(3);
  ASSERT_TRUE(store_->save_plan(p));
  auto back = store_->get_plan(3).value();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(to_json(engine::to_json(*back)), to_json(engine::to_json(p)));
  EXPECT_FALSE(store_->get_plan(4).value().has_value());

  p.state = PlanState::rolling_back;
  p.stages[1].state = StageState::failed;
  p.stages[0].state = StageState::rolling_back;
  p.stages[0].rollbacks = {9};
  p.rollbacks = {9};
  p.reason = "stage api failed: deploy #8 rolled_back";
  p.log.push_back(engine::Transition{1'500, "slipway", "failed", p.reason});
  ASSERT_TRUE(store_->save_plan(p));
  back = store_->get_plan(3).value();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state, PlanState::rolling_back);
  EXPECT_EQ(back->stages[0].rollbacks, (std::vector<engine::DeployId>{9}));
  EXPECT_EQ(back->rollbacks, (std::vector<engine::DeployId>{9}));
  EXPECT_EQ(back->log.size(), 2u);
  EXPECT_EQ(back->reason, p.reason);
}

TEST_F(PlanStoreTest, ListsNewestFirstByEnvironmentWithPaging) {
  for (engine::PlanId id = 1; id <= 5; ++id)
    ASSERT_TRUE(store_->save_plan(plan(id, id % 2 ? "prod" : "staging", PlanState::succeeded)));
  EXPECT_EQ(store_->max_plan_id().value(), 5);
  auto all = store_->list_plans(PlanFilter{}).value();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front().id, 5);
  EXPECT_EQ(all.front().stages.size(), 3u);
  PlanFilter f;
  f.env = "prod";
  f.limit = 2;
  f.before_id = 5;
  auto some = store_->list_plans(f).value();
  ASSERT_EQ(some.size(), 2u);
  EXPECT_EQ(some[0].id, 3);
  EXPECT_EQ(some[1].id, 1);
}

TEST_F(PlanStoreTest, PlansLeftRunningAreFailed) {
  ASSERT_TRUE(store_->save_plan(plan(1, "prod", PlanState::succeeded)));
  ASSERT_TRUE(store_->save_plan(plan(2, "prod", PlanState::running)));
  auto waiting = plan(3, "prod", PlanState::waiting);
  waiting.waiting = "approval";
  waiting.gate = "approve";
  ASSERT_TRUE(store_->save_plan(waiting));
  auto ids = store_->fail_running_plans("the server stopped", 9'000).value();
  EXPECT_EQ(ids, (std::vector<engine::PlanId>{2, 3}));
  auto p = store_->get_plan(2).value().value();
  EXPECT_EQ(p.state, PlanState::failed);
  EXPECT_EQ(p.reason, "the server stopped");
  EXPECT_EQ(p.finished_at, 9'000);
  EXPECT_EQ(p.stages[1].state, StageState::failed);
  EXPECT_EQ(p.stages[2].state, StageState::skipped);
  EXPECT_EQ(p.log.back().action, "failed");
  p = store_->get_plan(3).value().value();
  EXPECT_TRUE(p.waiting.empty());
  EXPECT_EQ(store_->get_plan(1).value().value().state, PlanState::succeeded);
  EXPECT_TRUE(store_->fail_running_plans("again", 10'000).value().empty());
}

TEST_F(PlanStoreTest, AVersion1DatabaseGainsPlans) {
  store_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kBackToSchemaVersion1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  store_ = make_sqlite_store(path());
  ASSERT_TRUE(store_->open());
  EXPECT_EQ(store_->max_plan_id().value(), 0);
  ASSERT_TRUE(store_->save_plan(plan(1)));
  EXPECT_TRUE(store_->get_plan(1).value().has_value());
}

}  // namespace
}  // namespace slipway::store
