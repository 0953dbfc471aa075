// Desired state and quarantines in the SQLite store (schema 5): records upserted by their key,
// a log of quarantines with one in force per node at most, and a database of schema 4 that learns
// the desired state of each scope from its newest successful deploy.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/store.h"
#include "support/temp_dir.h"
#include "unit/engine/finished_deploy.h"

namespace slipway::store {
namespace {

using engine::DesiredRecord;

class DesiredStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(reopen()); }
  Status reopen() {
    store_ = make_sqlite_store(path());
    return store_->open();
  }
  std::string path() const { return (dir_.path() / "slipway.db").string(); }
  void exec(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    char* msg = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &msg), SQLITE_OK) << (msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(db);
  }

  slipway::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

DesiredRecord rec(std::string node, std::string selector, std::string version,
                  engine::DeployId id) {
  return DesiredRecord{"staging",          "web", std::move(node), std::move(selector),
                       std::move(version), id,    "ann@host",      1'000 + id};
}

TEST_F(DesiredStoreTest, RecordsAreUpsertedByTheirKey) {
  ASSERT_TRUE(store_->save_desired(
      {rec("", "", "1.0.0", 1), rec("node-1", "", "1.0.0", 1), rec("", "role=api", "0.9", 2)}));
  // A newer deploy of the same scope and node replaces them.
  ASSERT_TRUE(store_->save_desired({rec("", "", "1.1.0", 3), rec("node-1", "", "1.1.0", 3)}));
  ASSERT_TRUE(reopen());
  auto all = store_->load_desired();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 3u);
  // Ordered by env, app, node, selector.
  EXPECT_EQ((*all)[0].selector, "");
  EXPECT_EQ((*all)[0].node, "");
  EXPECT_EQ((*all)[0].version, "1.1.0");
  EXPECT_EQ((*all)[0].deploy, 3);
  EXPECT_EQ((*all)[0].actor, "ann@host");
  EXPECT_EQ((*all)[0].set_at, 1'003);
  EXPECT_EQ((*all)[1].selector, "role=api");
  EXPECT_EQ((*all)[1].version, "0.9");
  EXPECT_EQ((*all)[2].node, "node-1");
  EXPECT_EQ((*all)[2].version, "1.1.0");
}

TEST_F(DesiredStoreTest, AQuarantineInForceUntilReleasedAndTheLogKeepsWhoLiftedIt) {
  EXPECT_TRUE(store_->active_quarantines().value().empty());
  const inventory::Quarantine q{"convergence to web 1.1.0 failed (deploy #4): hook", "web", 4, 500};
  ASSERT_TRUE(store_->quarantine_node("node-3", q));
  // One in force at a time: a second one is not recorded.
  ASSERT_TRUE(store_->quarantine_node("node-3", inventory::Quarantine{"again", "web", 5, 600}));
  ASSERT_TRUE(store_->quarantine_node("node-4", inventory::Quarantine{"health", "api", 0, 700}));
  ASSERT_TRUE(reopen());
  auto active = store_->active_quarantines().value();
  ASSERT_EQ(active.size(), 2u);
  EXPECT_EQ(active["node-3"].reason, q.reason);
  EXPECT_EQ(active["node-3"].app, "web");
  EXPECT_EQ(active["node-3"].deploy, 4);
  EXPECT_EQ(active["node-3"].since, 500);
  EXPECT_EQ(active["node-4"].app, "api");

  EXPECT_TRUE(store_->release_node("node-3", "bob@desk", 900).value());
  EXPECT_FALSE(store_->release_node("node-3", "bob@desk", 901).value());  // nothing in force
  EXPECT_FALSE(store_->release_node("node-9", "bob@desk", 901).value());
  active = store_->active_quarantines().value();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_TRUE(active.contains("node-4"));
  // Quarantined again later: a new entry of the log.
  ASSERT_TRUE(store_->quarantine_node("node-3", inventory::Quarantine{"later", "web", 8, 1'000}));
  EXPECT_EQ(store_->active_quarantines().value()["node-3"].reason, "later");

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT reason, released_by, released_at FROM quarantines WHERE "
                               "node = 'node-3' ORDER BY id",
                               -1, &st, nullptr),
            SQLITE_OK);
  std::vector<std::string> rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + "|" +
                   reinterpret_cast<const char*>(sqlite3_column_text(st, 1)) + "|" +
                   std::to_string(sqlite3_column_int64(st, 2)));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_EQ(rows, (std::vector<std::string>{q.reason + "|bob@desk|900", "later||0"}));
}

engine::Deploy finished(engine::DeployId id, std::string version, std::string selector,
                        engine::DeployState state,
                        engine::DeployKind kind = engine::DeployKind::deploy) {
  return engine::testing::finished_deploy(id, std::move(version), std::move(selector), {}, state,
                                          kind);
}

TEST_F(DesiredStoreTest, ADatabaseOfSchema4LearnsTheDesiredStateFromItsNewestSuccessfulDeploys) {
  using engine::DeployKind;
  using engine::DeployState;
  ASSERT_TRUE(store_->save_deploy(finished(1, "1.0.0", "", DeployState::succeeded)));
  ASSERT_TRUE(store_->save_deploy(finished(2, "1.1.0", "", DeployState::succeeded)));
  ASSERT_TRUE(store_->save_deploy(finished(3, "1.2.0", "", DeployState::rolled_back)));
  ASSERT_TRUE(store_->save_deploy(finished(4, "0.9", "role=api", DeployState::succeeded)));
  ASSERT_TRUE(
      store_->save_deploy(finished(5, "1.0.0", "", DeployState::succeeded, DeployKind::rollback)));
  ASSERT_TRUE(store_->save_deploy(
      finished(6, "1.3.0", "name=node-1", DeployState::succeeded, DeployKind::converge)));
  store_.reset();
  exec(
      "ALTER TABLE artifacts DROP COLUMN claimed_user; ALTER TABLE runs DROP COLUMN claimed_user; "
      "DROP TABLE environments; DROP TABLE join_tokens; "
      "DROP TABLE notify_deliveries; DROP TABLE notify_hooks; "
      "DROP TABLE node_credentials; DROP TABLE audit; DROP TABLE tokens; DROP TABLE "
      "config_versions; DROP TABLE config_entries; "
      "DROP TABLE plans; DROP TABLE quarantines; DROP TABLE desired; PRAGMA user_version = 4");
  ASSERT_TRUE(reopen());
  auto all = store_->load_desired().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].selector, "");
  EXPECT_EQ(all[0].node, "");
  EXPECT_EQ(all[0].version, "1.0.0");  // the rollback #5, newer than #2
  EXPECT_EQ(all[0].deploy, 5);
  EXPECT_EQ(all[0].set_at, 550);
  EXPECT_EQ(all[1].selector, "role=api");
  EXPECT_EQ(all[1].version, "0.9");
  EXPECT_TRUE(store_->active_quarantines().value().empty());
}

}  // namespace
}  // namespace slipway::store
