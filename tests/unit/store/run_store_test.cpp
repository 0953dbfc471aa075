// Ad-hoc runs in the SQLite store: save, read back with every node's output, list newest first
// without output, fail what a dead server left running, and the migration of a version-1 file.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/store.h"
#include "unit/store/schema_v1.h"
#include "unit/store/store_fixture.h"

namespace slipway::store {
namespace {

using engine::Run;
using engine::RunNode;
using engine::RunNodeStatus;
using engine::RunState;

engine::Run run(engine::RunId id, std::string env = "staging",
                RunState state = RunState::succeeded) {
  engine::Run r;
  r.id = id;
  r.env = std::move(env);
  r.selector = "role=api";
  r.argv = {"sh", "-c", "echo 'a b' \"$(x)\""};
  r.batch = engine::BatchSize{2, false};
  r.timeout = Millis(30'000);
  r.actor = "ann@host";
  r.state = state;
  r.created_at = 1'000 + id;
  r.finished_at = state == RunState::running ? 0 : 2'000 + id;
  r.batches = 2;
  r.current_batch = 1;
  r.finished_nodes = state == RunState::running ? 1 : 3;
  for (int i = 1; i <= 3; ++i) {
    RunNode n;
    n.node = "node-" + std::to_string(i);
    n.zone = i % 2 ? "a" : "b";
    n.batch = (i - 1) / 2;
    const bool done = state != RunState::running || i == 1;
    n.status = done ? (i == 2 ? RunNodeStatus::failed : RunNodeStatus::ok) : RunNodeStatus::pending;
    n.exit_code = done ? (i == 2 ? 1 : 0) : -1;
    n.output = done ? "out of " + n.node + "\n" : "";
    n.reason = i == 2 && done ? "exit code 1" : "";
    n.started_at = 1'500;
    n.duration_ms = 12;
    n.seq = done ? i : 0;
    r.nodes.push_back(n);
  }
  return r;
}

using RunStoreTest = FreshStoreTest;

TEST_F(RunStoreTest, SaveAndGetWithEveryNode) {
  const engine::Run r = run(1);
  ASSERT_TRUE(store_->save_run(r, true));
  auto back = store_->get_run(1);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(*back);
  const engine::Run& b = **back;
  EXPECT_EQ(b.env, "staging");
  EXPECT_EQ(b.selector, "role=api");
  EXPECT_EQ(b.argv, r.argv);
  EXPECT_EQ(b.batch.to_string(), "2");
  EXPECT_EQ(b.timeout, Millis(30'000));
  EXPECT_EQ(b.actor, "ann@host");
  EXPECT_EQ(b.state, RunState::succeeded);
  EXPECT_EQ(b.created_at, 1'001);
  EXPECT_EQ(b.finished_at, 2'001);
  EXPECT_EQ(b.finished_nodes, 3);
  ASSERT_EQ(b.nodes.size(), 3u);
  EXPECT_EQ(b.nodes[1].node, "node-2");
  EXPECT_EQ(b.nodes[1].status, RunNodeStatus::failed);
  EXPECT_EQ(b.nodes[1].exit_code, 1);
  EXPECT_EQ(b.nodes[1].reason, "exit code 1");
  EXPECT_EQ(b.nodes[1].output, "out of node-2\n");
  EXPECT_EQ(b.nodes[1].seq, 2);
  EXPECT_EQ(b.nodes[2].batch, 1);

  EXPECT_FALSE(*store_->get_run(99));
  EXPECT_EQ(store_->max_run_id().value(), 1);
}

TEST_F(RunStoreTest, HeaderAndNodeUpdates) {
  engine::Run r = run(5, "staging", RunState::running);
  ASSERT_TRUE(store_->save_run(r, true));
  r.nodes[1].status = RunNodeStatus::ok;
  r.nodes[1].exit_code = 0;
  r.nodes[1].output = "late\n";
  r.nodes[1].seq = 2;
  ASSERT_TRUE(store_->save_run_node(5, r.nodes[1]));
  r.state = RunState::failed;
  r.finished_at = 9'000;
  r.finished_nodes = 2;
  ASSERT_TRUE(store_->save_run(r.header(), false));
  auto b = store_->get_run(5).value().value();
  EXPECT_EQ(b.state, RunState::failed);
  EXPECT_EQ(b.finished_at, 9'000);
  ASSERT_EQ(b.nodes.size(), 3u);  // a header-only save leaves the nodes alone
  EXPECT_EQ(b.nodes[1].output, "late\n");
  EXPECT_EQ(b.nodes[2].status, RunNodeStatus::pending);
}

TEST_F(RunStoreTest, ListNewestFirstWithFiltersAndWithoutOutput) {
  for (engine::RunId id = 1; id <= 5; ++id)
    ASSERT_TRUE(store_->save_run(run(id, id % 2 ? "staging" : "prod"), true));
  RunFilter f;
  auto all = store_->list_runs(f).value();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front().id, 5);
  EXPECT_EQ(all.front().nodes.size(), 3u);
  EXPECT_EQ(all.front().count(RunNodeStatus::ok), 2);
  EXPECT_TRUE(all.front().nodes[0].output.empty());
  f.env = "prod";
  auto prod = store_->list_runs(f).value();
  ASSERT_EQ(prod.size(), 2u);
  EXPECT_EQ(prod[0].id, 4);
  f.env = "";
  f.limit = 2;
  f.before_id = 4;
  auto page = store_->list_runs(f).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, 3);
  EXPECT_EQ(page[1].id, 2);
}

TEST_F(RunStoreTest, FailRunningRuns) {
  ASSERT_TRUE(store_->save_run(run(1), true));
  ASSERT_TRUE(store_->save_run(run(2, "staging", RunState::running), true));
  auto ids = store_->fail_running_runs("the server stopped", 7'000);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<engine::RunId>{2}));
  auto b = store_->get_run(2).value().value();
  EXPECT_EQ(b.state, RunState::failed);
  EXPECT_EQ(b.finished_at, 7'000);
  EXPECT_EQ(b.nodes[0].status, RunNodeStatus::ok);  // finished before: kept
  EXPECT_EQ(b.nodes[1].status, RunNodeStatus::failed);
  EXPECT_EQ(b.nodes[1].reason, "the server stopped");
  // They finish after the one that had, in order.
  EXPECT_EQ(b.nodes[1].seq, 2);
  EXPECT_EQ(b.nodes[2].seq, 3);
  EXPECT_EQ(b.finished_nodes, 3);
  EXPECT_EQ(store_->get_run(1).value().value().state, RunState::succeeded);
}

TEST(RunStoreMigration, AVersion1DatabaseGainsTheRunTablesAndKeepsItsData) {
  slipway::testing::TempDir dir;
  const std::string path = (dir.path() / "old.db").string();
  {
    auto s = make_sqlite_store(path);
    ASSERT_TRUE(s->open());
    ASSERT_TRUE(s->set_meta("kept", "yes"));
  }
  {
    // Take the file back to what version 1 of the schema was.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, kBackToSchemaVersion1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = make_sqlite_store(path);
  ASSERT_TRUE(s->open());
  EXPECT_EQ(s->get_meta("kept").value(), std::optional<std::string>("yes"));
  ASSERT_TRUE(s->save_run(run(1), true));
  EXPECT_EQ(s->max_run_id().value(), 1);
}

}  // namespace
}  // namespace slipway::store
