// The audit log end to end (issue 13): `slipway audit verify` on the server's real slipway.db
// catches what someone with write access to the database does around the triggers (a row edited
// with every plain SHA-256 hash after it recomputed, a row deleted, rows cut from the end), since
// the chain is an HMAC under DATA/audit.key; and the recorded actor of every action is the token's
// name, whatever user the client claims to be (kept apart, as claimed_user).
#include <fmt/format.h>
#include <sys/stat.h>

#include "common/crypto.h"
#include "e2e/harness.h"
#include "support/sqlite_file.h"

namespace slipway::e2e {
namespace {

using testing::SqliteFile;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class AuditTest : public E2eTest {
 protected:
  fs::path data() const { return info().dir / "server"; }
  fs::path db() const { return data() / "slipway.db"; }

  // The database files of a stopped server, saved or put back (with its -wal and -shm).
  void save_database(const fs::path& to) {
    fs::create_directories(to);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const fs::path f = db().string() + suffix;
      if (fs::exists(f)) fs::copy_file(f, to / f.filename(), fs::copy_options::overwrite_existing);
    }
  }
  void restore_database(const fs::path& from) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const fs::path f = db().string() + suffix;
      fs::remove(f);
      if (fs::exists(from / f.filename())) fs::copy_file(from / f.filename(), f);
    }
  }

  // What the attacker of issue 13 does with the file: the audit triggers dropped, then every
  // plain hash from row `from` on recomputed as the schema-8 chain defined it
  // (SHA-256(prev_hash "\n" JSON array of the fields)), so that a plain chain would verify.
  static void recompute_plain_chain(SqliteFile& f, int64_t from) {
    f.exec("DROP TRIGGER IF EXISTS audit_no_update");
    const auto rows = f.query(
        "SELECT id, at, actor, token, remote, method, path, action, target, status, error_code, "
        "error, hash FROM audit ORDER BY id");
    std::string prev;
    for (const auto& r : rows) {
      const int64_t id = std::stoll(r[0]);
      if (id < from) {
        prev = r[12];
        continue;
      }
      const json::array fields{id,   std::stoll(r[1]), r[2],  r[3], r[4], r[5], r[6], r[7],
                               r[8], std::stoll(r[9]), r[10], r[11]};
      const std::string hash = sha256_hex(prev + "\n" + to_json(fields));
      f.exec(fmt::format("UPDATE audit SET prev_hash = '{}', hash = '{}' WHERE id = {}", prev, hash,
                         id));
      prev = hash;
    }
  }

  // `slipway audit verify`: its exit code, and the first bad row of its JSON form (0 if none).
  std::pair<ProcResult, int64_t> verify() {
    auto text = cli({"audit", "verify"});
    auto js = cli({"audit", "verify", "-o", "json"});
    EXPECT_EQ(js.exit_code, text.exit_code) << js.describe();
    const auto v = parse(js.out, "audit verify -o json");
    const auto& o = obj(v);
    EXPECT_EQ(boolean(v, "intact"), text.exit_code == 0) << js.out;
    const auto* bad = o.if_contains("first_bad");
    return {text, bad && bad->is_object() ? i64(*bad, "id") : 0};
  }
};

TEST_F(AuditTest, VerifyCatchesEditsWithThePlainChainRecomputedDeletionsAndTruncation) {
  ASSERT_NO_THROW(start_lab(1));
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  for (const char* name : {"ci", "ops", "night"}) {
    auto r = cli({"token", "create", "--role", "deployer", "--name", name});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  auto r = cli({"freeze", "--env", "staging", "--until", "1h", "--reason", "audit test"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "production"});  // refused: no node; still audited
  ASSERT_NE(r.exit_code, 0) << r.describe();

  auto [intact, none] = verify();
  ASSERT_EQ(intact.exit_code, 0) << intact.describe();
  EXPECT_TRUE(has(intact.out, "intact")) << intact.describe();
  EXPECT_EQ(none, 0);
  struct stat st {};
  ASSERT_EQ(::stat((data() / "audit.key").c_str(), &st), 0) << "the key lives outside the db";
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_TRUE(lab_.stop_server());
  const fs::path pristine = dir() / "pristine";
  save_database(pristine);
  int64_t edited = 0;
  {
    SqliteFile f(db().string());
    const auto rows = f.query(
        "SELECT id FROM audit WHERE action = 'token.create' AND outcome_of = 0 AND target = '' "
        "ORDER BY id LIMIT 1 OFFSET 1");
    ASSERT_EQ(rows.size(), 1u);
    edited = std::stoll(rows[0][0]);
    const auto last = f.query("SELECT MAX(id) FROM audit");
    ASSERT_GT(std::stoll(last[0][0]), edited + 2) << "rows after the edited one";
    // Who created the second token is rewritten, and the chain after it made whole again.
    f.exec("DROP TRIGGER audit_no_update");
    f.exec(fmt::format(
        "UPDATE audit SET actor = 'mallory', token = 'mallory', remote = '10.6.6.6' WHERE id IN "
        "({0}, (SELECT id FROM audit WHERE outcome_of = {0}))",
        edited));
    recompute_plain_chain(f, edited);
  }
  ASSERT_TRUE(lab_.start_server());
  auto [caught, bad] = verify();
  EXPECT_EQ(caught.exit_code, 1) << caught.describe();
  EXPECT_EQ(bad, edited);
  EXPECT_TRUE(has(caught.all(), fmt::format("row {} is bad", edited))) << caught.describe();
  EXPECT_TRUE(has(caught.all(), "HMAC does not verify")) << caught.describe();
  // The listing shows what the attacker wrote; only verify knows better.
  EXPECT_TRUE(has(to_json(cli_json({"audit"})), "mallory"));

  // A row deleted in the middle.
  ASSERT_TRUE(lab_.stop_server());
  restore_database(pristine);
  {
    SqliteFile f(db().string());
    f.exec(fmt::format("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = {}", edited));
    recompute_plain_chain(f, edited + 1);
  }
  ASSERT_TRUE(lab_.start_server());
  auto [deleted, missing] = verify();
  EXPECT_EQ(deleted.exit_code, 1) << deleted.describe();
  EXPECT_EQ(missing, edited);
  EXPECT_TRUE(has(deleted.all(), fmt::format("row {} is missing", edited))) << deleted.describe();

  // The newest rows cut off: the log left is a valid prefix, but the keyed head record says more.
  ASSERT_TRUE(lab_.stop_server());
  restore_database(pristine);
  int64_t last = 0;
  {
    SqliteFile f(db().string());
    last = std::stoll(f.query("SELECT MAX(id) FROM audit")[0][0]);
    f.exec(fmt::format("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id > {}", last - 3));
  }
  ASSERT_TRUE(lab_.start_server());
  auto [cut, first_cut] = verify();
  EXPECT_EQ(cut.exit_code, 1) << cut.describe();
  EXPECT_EQ(first_cut, last - 2);
  EXPECT_TRUE(has(cut.all(), "cut from the end")) << cut.describe();
  // Still caught after the server appended more rows.
  ASSERT_EQ(cli({"unfreeze", "--env", "staging"}).exit_code, 0);
  EXPECT_EQ(verify().second, last - 2);

  // The untouched database verifies again.
  ASSERT_TRUE(lab_.stop_server());
  restore_database(pristine);
  ASSERT_TRUE(lab_.start_server());
  EXPECT_EQ(verify().first.exit_code, 0);
  EXPECT_EQ(cli_env({"audit", "verify"}, {{"SLIPWAY_SERVER", info().server_url}}).exit_code, 3)
      << "admin only";
}

// The recorded actor is the token's name; X-Slipway-User (free text from the client) is only a
// claim, kept apart as claimed_user and shown as "ci (claims alice@...)".
TEST_F(AuditTest, TheActorIsTheTokensNameWhateverUserTheClientClaims) {
  ASSERT_NO_THROW(start_lab(1));
  auto created = cli_json({"token", "create", "--role", "deployer", "--name", "ci"});
  const std::string ci = str(created, "token");
  ASSERT_FALSE(ci.empty());
  const std::map<std::string, std::string> as_ci = {
      {"SLIPWAY_SERVER", info().server_url}, {"SLIPWAY_TOKEN", ci}, {"USER", "alice"}};

  // The CLI sends USER@HOST: a claim.
  auto r =
      cli_env({"push", release("1.0.0").string(), "--app", "web", "--version", "1.0.0"}, as_ci);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli_env({"deploy", "web", "1.0.0", "--env", "staging"}, as_ci);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli_env({"run", "--env", "staging", "--", "true"}, as_ci);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // A client claiming to be the admin, by hand.
  auto h = http("POST", "/api/v1/freezes",
                R"({"env":"staging","until":"2099-01-01T00:00:00Z","reason":"claims"})",
                {{"X-Slipway-User", "admin"}}, ci);
  ASSERT_EQ(h.status, 201) << h.body;
  EXPECT_EQ(str(parse(h.body, "freeze"), "created_by"), "ci") << h.body;
  // A claim that is not one short line of text is not kept at all.
  h = http("POST", "/api/v1/freezes/lift", R"({"env":"staging"})",
           {{"X-Slipway-User", std::string(300, 'x')}}, ci);
  ASSERT_EQ(h.status, 200) << h.body;
  h = http("POST", "/api/v1/freezes/lift", R"({"env":"staging"})",
           {{"X-Slipway-User", "alice\tadmin"}}, ci);
  EXPECT_NE(h.status, 503) << h.body;

  const auto d = latest_deploy();
  EXPECT_EQ(str(d, "actor"), "ci") << to_json(d);
  EXPECT_TRUE(has(str(d, "claimed_user"), "alice@")) << to_json(d);
  const auto versions = get_json("/api/v1/artifacts/web");
  const auto& v = arr(versions, "versions").front();
  EXPECT_EQ(str(v, "pushed_by"), "ci") << to_json(v);
  EXPECT_TRUE(has(str(v, "claimed_user"), "alice@")) << to_json(v);
  const auto runs = get_json("/api/v1/runs?env=staging");
  const auto& run = arr(runs, "runs").front();
  EXPECT_EQ(str(run, "actor"), "ci") << to_json(run);
  EXPECT_TRUE(has(str(run, "claimed_user"), "alice@")) << to_json(run);

  r = cli({"history", "show", std::to_string(i64(d, "id"))});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, "ci (claims alice@")) << r.out;
  r = cli({"versions", "web"});
  EXPECT_TRUE(has(r.out, "ci (claims alice@")) << r.out;

  // The audit log: one line per action, the token as actor, the claim beside it.
  r = cli({"audit"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, "ci (claims admin)")) << r.out;
  EXPECT_TRUE(has(r.out, "ci (claims alice@")) << r.out;
  const auto audit = cli_json({"audit"});
  int freezes = 0;
  for (const auto& e : arr(audit, "entries")) {
    if (str(e, "token") != "ci") continue;
    EXPECT_EQ(str(e, "actor"), "ci") << to_json(e);
    EXPECT_NE(i64(e, "status"), 0) << "each action with its outcome: " << to_json(e);
    if (str(e, "action") == "freeze.create") {
      ++freezes;
      EXPECT_EQ(str(e, "claimed_user"), "admin");
      EXPECT_EQ(i64(e, "status"), 201);
      EXPECT_TRUE(has(str(e, "target"), "env=staging")) << to_json(e);
    }
    if (str(e, "action") == "freeze.lift") {
      EXPECT_EQ(str(e, "claimed_user"), "") << to_json(e);
    }
  }
  EXPECT_EQ(freezes, 1) << "one line per action, not one per row: " << to_json(audit);
  EXPECT_EQ(cli({"audit", "verify"}).exit_code, 0);
}

}  // namespace
}  // namespace slipway::e2e
