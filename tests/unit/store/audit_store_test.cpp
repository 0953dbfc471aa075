// API tokens and the audit log in the store (schema 8, keyed in schema 12): tokens kept as hashes
// and revoked in place; the audit log append-only (the store offers append and list; SQLite's
// triggers abort UPDATE and DELETE) and chained with an HMAC under a key kept outside the
// database, so that an edit made around the triggers shows even when the plain hashes are
// recomputed, and so do deleted rows, rows cut from the end and a forged legacy boundary.
#include <fmt/format.h>
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

// SELECT COUNT(*) through a second connection: what another process sees (committed rows only).
int64_t raw_count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  return n;
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

class AuditStoreTest : public FreshStoreTest {
 protected:
  void SetUp() override {
    FreshStoreTest::SetUp();
    store_->set_audit_key(key_);
  }
  // Reopens the database as a restarted server does.
  void reopen() {
    store_ = make_sqlite_store(path());
    ASSERT_TRUE(store_->open());
    store_->set_audit_key(key_);
  }
  AuditVerdict verify() {
    auto v = store_->verify_audit();
    if (!v) throw std::runtime_error(v.error().message);
    return *v;
  }

  SecretKey key_ = SecretKey::random();
};

// What an attacker with the database file (and without audit.key) does after an edit: recompute
// the plain SHA-256 chain (as schema 8 defined it) from row `from` to the end.
void recompute_plain_chain(const std::string& path, int64_t from) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_exec(db, "DROP TRIGGER IF EXISTS audit_no_update", nullptr, nullptr, nullptr);
  sqlite3_stmt* sel = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT id, at, actor, token, remote, method, path, action, target, "
                               "status, error_code, error, hash FROM audit ORDER BY id",
                               -1, &sel, nullptr),
            SQLITE_OK);
  std::string prev;
  std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> updates;
  while (sqlite3_step(sel) == SQLITE_ROW) {
    auto text = [&](int c) {
      const auto* p = sqlite3_column_text(sel, c);
      return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
    };
    AuditRecord r;
    r.id = sqlite3_column_int64(sel, 0);
    r.at = sqlite3_column_int64(sel, 1);
    r.actor = text(2);
    r.token = text(3);
    r.remote = text(4);
    r.method = text(5);
    r.path = text(6);
    r.action = text(7);
    r.target = text(8);
    r.status = sqlite3_column_int(sel, 9);
    r.error_code = text(10);
    r.error = text(11);
    if (r.id < from) {  // rows before the edit keep their hashes
      prev = text(12);
      continue;
    }
    r.prev_hash = prev;
    prev = legacy_audit_hash(r);
    updates.push_back({r.id, {r.prev_hash, prev}});
  }
  sqlite3_finalize(sel);
  for (const auto& [id, hashes] : updates) {
    const std::string sql =
        fmt::format("UPDATE audit SET prev_hash = '{}', hash = '{}' WHERE id = {}", hashes.first,
                    hashes.second, id);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  }
  sqlite3_close_v2(db);
}

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
  EXPECT_EQ(all[0].hash, audit_mac(key_, all[0]));
  EXPECT_NE(all[0].hash, legacy_audit_hash(all[0])) << "keyed, not a plain SHA-256";

  auto since = store_->list_audit(3'000, 100).value();
  ASSERT_EQ(since.size(), 3u);
  EXPECT_EQ(since.front().id, 3);
  auto newest = store_->list_audit(0, 2).value();  // the newest two, oldest first
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, 4);
  EXPECT_EQ(newest[1].id, 5);
  const auto v = verify();
  EXPECT_TRUE(v.intact()) << v.why;
  EXPECT_EQ(v.rows, 5);
}

TEST_F(AuditStoreTest, TheChainGoesOnAcrossReopening) {
  ASSERT_TRUE(store_->append_audit(entry(1'000, "token.create")));
  reopen();
  ASSERT_TRUE(store_->append_audit(entry(2'000, "token.revoke")));
  auto all = store_->list_audit(0, 10).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].prev_hash, all[0].hash);
  EXPECT_TRUE(verify().intact()) << verify().why;
  // Another key (audit.key replaced) does not verify the rows.
  store_->set_audit_key(SecretKey::random());
  EXPECT_EQ(verify().bad_row, 1);
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
  EXPECT_TRUE(verify().intact());
}

TEST_F(AuditStoreTest, AnEditAroundTheTriggersBreaksTheChain) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  // Someone with the database file drops the trigger and rewrites a row.
  ASSERT_EQ(raw_exec(path(),
                     "DROP TRIGGER audit_no_update; "
                     "UPDATE audit SET actor = 'mallory' WHERE id = 2"),
            "");
  const auto v = verify();
  EXPECT_EQ(v.bad_row, 2);
  EXPECT_NE(v.why.find("HMAC does not verify"), std::string::npos) << v.why;
}

// The attack of issue 13: the edit, then every plain hash recomputed from the edited row on. A
// plain SHA-256 chain would pass; the HMAC needs audit.key.
TEST_F(AuditStoreTest, AnEditWithThePlainChainRecomputedIsCaught) {
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  ASSERT_EQ(raw_exec(path(),
                     "DROP TRIGGER audit_no_update; "
                     "UPDATE audit SET actor = 'mallory', token = 'mallory' WHERE id = 2"),
            "");
  recompute_plain_chain(path(), 2);
  const auto v = verify();
  EXPECT_EQ(v.bad_row, 2);
  EXPECT_NE(v.why.find("HMAC does not verify"), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("plain SHA-256"), std::string::npos) << v.why;
}

TEST_F(AuditStoreTest, DeletingARowAroundTheTriggersBreaksTheChain) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  ASSERT_EQ(raw_exec(path(), "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2"), "");
  const auto v = verify();
  EXPECT_EQ(v.bad_row, 2);
  EXPECT_NE(v.why.find("row 2 is missing"), std::string::npos) << v.why;
}

// Rows cut from the end leave the log a valid prefix: the head record (keyed, in meta) shows it,
// and the next append goes on after the head, so the gap stays.
TEST_F(AuditStoreTest, RowsCutFromTheEndAreCaughtAlsoAfterTheNextAppend) {
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  ASSERT_EQ(raw_exec(path(), "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id >= 3"), "");
  reopen();
  auto v = verify();
  EXPECT_EQ(v.bad_row, 3);
  EXPECT_NE(v.why.find("cut from the end"), std::string::npos) << v.why;
  auto id = store_->append_audit(entry(5'000, "token.create"));
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 5) << "after the head, not after the last row left";
  v = verify();
  EXPECT_EQ(v.bad_row, 3);
  EXPECT_NE(v.why.find("row 3 is missing"), std::string::npos) << v.why;

  // Deleting the head record as well does not hide it either.
  ASSERT_EQ(raw_exec(path(), "DELETE FROM meta WHERE key = 'audit/head'"), "");
  EXPECT_EQ(verify().bad_row, 3);
}

TEST_F(AuditStoreTest, AForgedOrMissingHeadRecordIsCaught) {
  for (int i = 1; i <= 2; ++i)
    ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "deploy.create")));
  ASSERT_EQ(raw_exec(path(), "DELETE FROM meta WHERE key = 'audit/head'"), "");
  auto v = verify();
  EXPECT_EQ(v.bad_row, 2);
  EXPECT_NE(v.why.find("head record"), std::string::npos) << v.why;
  ASSERT_EQ(raw_exec(path(), "INSERT INTO meta (key, value) VALUES ('audit/head', '1 abc def')"),
            "");
  v = verify();
  EXPECT_FALSE(v.intact());
  EXPECT_NE(v.why.find("forged"), std::string::npos) << v.why;
}

TEST_F(AuditStoreTest, WithoutTheKeyNothingIsAppendedOrChecked) {
  store_ = make_sqlite_store(path());
  ASSERT_TRUE(store_->open());
  auto id = store_->append_audit(entry(1'000, "deploy.create"));
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, Errc::failed_precondition);
  EXPECT_NE(id.error().message.find("audit.key"), std::string::npos) << id.error().message;
  EXPECT_FALSE(store_->verify_audit());
}

// A request is two rows (its entry before the handler, its outcome after); the list shows one
// line per request with the outcome, or status 0 when none was recorded.
TEST_F(AuditStoreTest, AnEntryAndItsOutcomeAreListedAsOneAction) {
  AuditRecord e = entry(1'000, "deploy.create", 0);
  e.target = "";
  e.claimed_user = "alice@laptop";
  const auto first = store_->append_audit(e);
  ASSERT_TRUE(first);
  ASSERT_TRUE(store_->append_audit(entry(1'500, "token.create", 401)));  // refused: one row
  AuditRecord o = entry(2'000, "deploy.create", 403);
  o.outcome_of = *first;
  o.claimed_user = "alice@laptop";
  ASSERT_TRUE(store_->append_audit(o));
  AuditRecord pending = entry(3'000, "freeze.create", 0);
  ASSERT_TRUE(store_->append_audit(pending));

  const auto all = store_->list_audit(0, 10).value();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, *first);
  EXPECT_EQ(all[0].at, 1'000) << "when it was asked";
  EXPECT_EQ(all[0].status, 403);
  EXPECT_EQ(all[0].error_code, "forbidden");
  EXPECT_EQ(all[0].target, "env=staging app=web") << "the outcome's target";
  EXPECT_EQ(all[0].claimed_user, "alice@laptop");
  EXPECT_EQ(all[1].action, "token.create");
  EXPECT_EQ(all[1].status, 401);
  EXPECT_EQ(all[2].action, "freeze.create");
  EXPECT_EQ(all[2].status, 0) << "no outcome recorded";
  EXPECT_EQ(store_->list_audit(0, 1).value().front().action, "freeze.create");
  EXPECT_TRUE(verify().intact());
  // The claimed user and the link are covered by the HMAC.
  ASSERT_EQ(raw_exec(path(),
                     "DROP TRIGGER audit_no_update; UPDATE audit SET outcome_of = 2 WHERE id = 3"),
            "");
  EXPECT_EQ(verify().bad_row, 3);
}

// The database thread runs its jobs in a transaction committed after the batch; an audit entry
// must be on disk before the action it records: commit_now commits it (and what came before) and
// goes on in a new transaction.
TEST_F(AuditStoreTest, CommitNowMakesAnEntryDurableInsideABatch) {
  ASSERT_TRUE(store_->begin());
  ASSERT_TRUE(store_->append_audit(entry(1'000, "deploy.create", 0)));
  EXPECT_EQ(raw_count(path(), "SELECT COUNT(*) FROM audit"), 0) << "not committed yet";
  ASSERT_TRUE(store_->commit_now());
  EXPECT_EQ(raw_count(path(), "SELECT COUNT(*) FROM audit"), 1);
  ASSERT_TRUE(store_->append_audit(entry(2'000, "deploy.create", 201)));
  ASSERT_TRUE(store_->rollback());  // the batch's own commit failed: the outcome is lost
  EXPECT_EQ(raw_count(path(), "SELECT COUNT(*) FROM audit"), 1);
  ASSERT_TRUE(store_->append_audit(entry(3'000, "token.create", 201)));
  const auto v = verify();
  EXPECT_TRUE(v.intact()) << "the next row chains to what is in the database: " << v.why;
  EXPECT_TRUE(store_->commit_now()) << "outside a transaction: nothing to do";
}

// A log written by a server from before the key (a plain SHA-256 chain, schema 8 to 11).
class LegacyAuditStoreTest : public AuditStoreTest {
 protected:
  // Rows 1..n as an older server wrote them.
  void write_legacy_rows(int n) {
    std::string prev;
    for (int i = 1; i <= n; ++i) {
      AuditRecord r = entry(i * 1'000, "deploy.create");
      r.id = i;
      r.prev_hash = prev;
      r.hash = legacy_audit_hash(r);
      prev = r.hash;
      ASSERT_EQ(raw_exec(path(),
                         fmt::format("INSERT INTO audit (id, at, actor, token, remote, method, "
                                     "path, action, target, status, error_code, error, prev_hash, "
                                     "hash) VALUES ({}, {}, '{}', '{}', '{}', '{}', '{}', '{}', "
                                     "'{}', {}, '', '', '{}', '{}')",
                                     r.id, r.at, r.actor, r.token, r.remote, r.method, r.path,
                                     r.action, r.target, r.status, r.prev_hash, r.hash)),
                "");
    }
  }
  void SetUp() override {
    FreshStoreTest::SetUp();
    write_legacy_rows(3);
    store_->set_audit_key(key_);
    ASSERT_TRUE(store_->adopt_legacy_audit());  // audit.key was just made
    for (int i = 4; i <= 5; ++i)
      ASSERT_TRUE(store_->append_audit(entry(i * 1'000, "token.create")));
  }
};

TEST_F(LegacyAuditStoreTest, TheLegacyRowsAreCheckedAsAPlainChainAndTheRestAsHmac) {
  const auto v = verify();
  EXPECT_TRUE(v.intact()) << v.why;
  EXPECT_EQ(v.rows, 5);
  EXPECT_EQ(v.legacy_rows, 3);
  const auto all = store_->list_audit(0, 10).value();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[3].prev_hash, all[2].hash) << "the keyed chain goes on from the legacy one";
}

// Legacy rows rewritten with their plain chain recomputed: the chain no longer ends with the hash
// recorded (under the key) when the key was made.
TEST_F(LegacyAuditStoreTest, ARewrittenLegacyChainIsCaught) {
  ASSERT_EQ(
      raw_exec(path(),
               "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 2"),
      "");
  recompute_plain_chain(path(), 2);
  // Rows 4 and 5 would now fail too; the first bad one is the end of the rewritten legacy chain.
  const auto v = verify();
  EXPECT_EQ(v.bad_row, 3);
  EXPECT_NE(v.why.find("rewritten"), std::string::npos) << v.why;
}

// Keyed rows turned into "legacy" ones: their plain hashes recomputed and the boundary moved. The
// boundary carries an HMAC: a forged one does not verify.
TEST_F(LegacyAuditStoreTest, KeyedRowsCannotBeTurnedIntoLegacyOnes) {
  ASSERT_EQ(
      raw_exec(path(),
               "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 4"),
      "");
  recompute_plain_chain(path(), 4);
  auto rows = store_->list_audit(0, 10).value();
  ASSERT_EQ(raw_exec(path(), fmt::format("UPDATE meta SET value = '5 {} {}' WHERE key = "
                                         "'audit/legacy'",
                                         rows.back().hash, std::string(64, 'a'))),
            "");
  // Nothing about the legacy rows can be trusted then: the first of them fails, saying why.
  auto v = verify();
  EXPECT_EQ(v.bad_row, 1);
  EXPECT_NE(v.why.find("forged"), std::string::npos) << v.why;

  // Without the boundary, no row may be legacy: the old ones fail.
  ASSERT_EQ(raw_exec(path(), "DELETE FROM meta WHERE key = 'audit/legacy'"), "");
  v = verify();
  EXPECT_EQ(v.bad_row, 1);
  EXPECT_NE(v.why.find("no valid record"), std::string::npos) << v.why;
}

}  // namespace
}  // namespace slipway::store
