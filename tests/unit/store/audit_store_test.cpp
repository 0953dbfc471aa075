// API tokens and the audit log in the store (schema 7): tokens kept as hashes and revoked in
// place; the audit log append-only (the store offers append and list; SQLite's triggers abort
// UPDATE and DELETE) and hash-chained so that an edit made around the triggers shows.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/store.h"
#include "unit/store/store_fixture.h"

namespace slipway::store {
namespace {

// Runs SQL on the file through a second connection; the error message, "" when it succeeded.
std::string raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(db);
    return "cannot open";
  }
  sqlite3_busy_timeout(db, 5000);
  char* msg = nullptr;
  std::string out;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    out = msg ? msg : "error";
    if (out.empty()) out = "error";
  }
  sqlite3_free(msg);
  sqlite3_close_v2(db);
  return out;
}

AuditRecord entry(TimeMs at, const std::string& action, int status = 200) {
  AuditRecord a;
  a.at = at;
  a.actor = "alice";
  a.token = "ci";
  a.remote = "127.0.0.1";
  a.method = "POST";
  a.path = "/api/v1/deploys";
  a.action = action;
  a.target = "env=staging app=web";
  a.status = status;
  if (status >= 400) {
    a.error_code = "forbidden";
    a.error = "token 'ci' is scoped to environment(s) staging, not 'production'";
  }
  return a;
}

TokenRecord token(const std::string& name, const std::string& hash) {
  TokenRecord t;
  t.name = name;
  t.hash = hash;
  t.role = "deployer";
  t.envs = {"staging"};
  t.apps = {"api", "web"};
  t.created_by = "admin";
  t.created_at = 1'000;
  t.expires_at = 9'000;
  return t;
}

using AuditStoreTest = FreshStoreTest;

TEST_F(AuditStoreTest, TokensAreStoredListedAndRevoked) {
  auto id = store_->insert_token(token("ci", std::string(64, 'a')));
  ASSERT_TRUE(id) << id.error().message;
  auto list = store_->list_tokens().value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, *id);
  EXPECT_EQ(list[0].name, "ci");
  EXPECT_EQ(list[0].hash, std::string(64, 'a'));
  EXPECT_EQ(list[0].envs, std::vector<std::string>{"staging"});
  EXPECT_EQ(list[0].apps, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(list[0].expires_at, 9'000);
  EXPECT_EQ(list[0].revoked_at, 0);

  EXPECT_TRUE(store_->revoke_token(*id, "bob", 5'000).value());
  EXPECT_FALSE(store_->revoke_token(*id, "carol", 6'000).value()) << "revoked once only";
  EXPECT_FALSE(store_->revoke_token(999, "bob", 5'000).value());
  ASSERT_TRUE(store_->save_token_use({{*id, 4'000}}));
  list = store_->list_tokens().value();
  EXPECT_EQ(list[0].revoked_by, "bob");
  EXPECT_EQ(list[0].revoked_at, 5'000);
  EXPECT_EQ(list[0].last_used, 4'000);
}

TEST_F(AuditStoreTest, ATokenNameIsNeverReused) {
  ASSERT_TRUE(store_->insert_token(token("ci", std::string(64, 'a'))));
  auto again = store_->insert_token(token("ci", std::string(64, 'b')));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_NE(again.error().message.find("'ci'"), std::string::npos) << again.error().message;
}

TEST_F(AuditStoreTest, AppendsAndListsOldestFirstSinceAndLimited) {
  for (int i = 1; i <= 5; ++i) {
    auto id = store_->append_audit(entry(i * 1'000, "deploy.create"));
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, i);
  }
  auto all = store_->list_audit(0, 100).value();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front().id, 1);
  EXPECT_EQ(all.back().id, 5);
  EXPECT_EQ(all[0].actor, "alice");
  EXPECT_EQ(all[0].target, "env=staging app=web");
  EXPECT_EQ(all[0].prev_hash, "");
  EXPECT_EQ(all[1].prev_hash, all[0].hash);
  EXPECT_EQ(all[0].hash, audit_hash(all[0]));

  auto since = store_->list_audit(3'000, 100).value();
  ASSERT_EQ(since.size(), 3u);
  EXPECT_EQ(since.front().id, 3);
  auto newest = store_->list_audit(0, 2).value();  // the newest two, oldest first
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, 4);
  EXPECT_EQ(newest[1].id, 5);
  EXPECT_EQ(store_->verify_audit().value(), 0);
}

TEST_F(AuditStoreTest, TheChainGoesOnAcrossReopening) {
  ASSERT_TRUE(store_->append_audit(entry(1'000, "token.create")));
  store_ = make_sqlite_store(path());
  ASSERT_TRUE(store_->open());
  ASSERT_TRUE(store_->append_audit(entry(2'000, "token.revoke")));
  auto all = store_->list_audit(0, 10).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].prev_hash, all[0].hash);
  EXPECT_EQ(store_->verify_audit().value(), 0);
}

TEST_F(AuditStoreTest, TriggersRefuseUpdateAndDelete) {
  ASSERT_TRUE(store_->append_audit(entry(1'000, "deploy.create")));
  ASSERT_TRUE(store_->append_audit(entry(2'000, "deploy.abort", 403)));
  const std::string update = raw_exec(path(), "UPDATE audit SET actor = 'mallory' WHERE id = 1");
  EXPECT_NE(update.find("append-only"), std::string::npos) << update;
  const std::string del = raw_exec(path(), "DELETE FROM audit WHERE id = 2");
  EXPECT_NE(del.find("append-only"), std::string::npos) << del;
  const std::string wipe = raw_exec(path(), "DELETE FROM audit");
  EXPECT_NE(wipe.find("append-only"), std::string::npos) << wipe;
  auto all = store_->list_audit(0, 10).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].actor, "alice");
  EXPECT_EQ(all[1].status, 403);
  EXPECT_EQ(all[1].error_code, "forbidden");
  EXPECT_EQ(store_->verify_audit().value(), 0);
}

TEST_F(AuditStoreTest, AnEditAroundTheTriggersBreaksTheChain) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  // Someone with the database file drops the trigger and rewrites a row.
  ASSERT_EQ(raw_exec(path(),
                     "DROP TRIGGER audit_no_update; "
                     "UPDATE audit SET actor = 'mallory' WHERE id = 2"),
            "");
  EXPECT_EQ(store_->verify_audit().value(), 2);
}

TEST_F(AuditStoreTest, DeletingARowAroundTheTriggersBreaksTheChain) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  ASSERT_EQ(raw_exec(path(), "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2"), "");
  EXPECT_EQ(store_->verify_audit().value(), 3);
}

}  // namespace
}  // namespace slipway::store
