#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/strings.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace slipway::store {

namespace {

using engine::Deploy;
using engine::DeployId;
using engine::NodeProgress;
using engine::Run;
using engine::RunId;
using engine::RunNode;
using engine::RunNodeStatus;
using engine::StepRecord;

// Schema versions, applied in order; PRAGMA user_version records how far a database is.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE artifacts (
  app TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
  manifest TEXT NOT NULL, pushed_by TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (app, version));
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY, env TEXT NOT NULL, roles TEXT NOT NULL, zone TEXT NOT NULL,
  tags TEXT NOT NULL, address TEXT NOT NULL, agent_version TEXT NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, apps TEXT NOT NULL);
CREATE TABLE deploys (
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, app TEXT NOT NULL, version TEXT NOT NULL,
  env TEXT NOT NULL, selector TEXT NOT NULL, strategy TEXT NOT NULL, batch TEXT NOT NULL,
  max_failures INTEGER NOT NULL, state TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT NOT NULL,
  actor TEXT NOT NULL, aborted_by TEXT NOT NULL, started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL, batches INTEGER NOT NULL, current_batch INTEGER NOT NULL);
CREATE INDEX deploys_app_env ON deploys (app, env, id);
CREATE TABLE deploy_nodes (
  deploy_id INTEGER NOT NULL REFERENCES deploys (id), node TEXT NOT NULL, zone TEXT NOT NULL,
  batch INTEGER NOT NULL, from_version TEXT NOT NULL, status TEXT NOT NULL, step TEXT NOT NULL,
  started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, reason TEXT NOT NULL,
  reverted_to TEXT NOT NULL, version_now TEXT NOT NULL, downloaded INTEGER NOT NULL,
  PRIMARY KEY (deploy_id, node));
CREATE TABLE deploy_steps (
  id INTEGER PRIMARY KEY AUTOINCREMENT, deploy_id INTEGER NOT NULL REFERENCES deploys (id),
  node TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL, output TEXT NOT NULL,
  started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL);
CREATE INDEX deploy_steps_deploy ON deploy_steps (deploy_id, id);
)sql",
    // 2: freeze windows, and deploys forced through one.
    R"sql(
CREATE TABLE freezes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, app TEXT NOT NULL,
  until INTEGER NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL, lifted_by TEXT NOT NULL, lifted_at INTEGER NOT NULL);
CREATE INDEX freezes_active ON freezes (lifted_at, until);
ALTER TABLE deploys ADD COLUMN forced_freeze TEXT NOT NULL DEFAULT '';
)sql",
    // 3: rollout strategies (their options as JSON), canary nodes, the log of each deploy.
    R"sql(
ALTER TABLE deploys ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE deploy_nodes ADD COLUMN canary INTEGER NOT NULL DEFAULT 0;
CREATE TABLE deploy_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, deploy_id INTEGER NOT NULL REFERENCES deploys (id),
  at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX deploy_log_deploy ON deploy_log (deploy_id, id);
)sql",
    // 4: ad-hoc runs (slipway run).
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY, env TEXT NOT NULL, selector TEXT NOT NULL, argv TEXT NOT NULL,
  batch TEXT NOT NULL, timeout_ms INTEGER NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL,
  created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, batches INTEGER NOT NULL,
  current_batch INTEGER NOT NULL, finished_nodes INTEGER NOT NULL);
CREATE INDEX runs_env ON runs (env, id);
CREATE TABLE run_nodes (
  run_id INTEGER NOT NULL REFERENCES runs (id), node TEXT NOT NULL, zone TEXT NOT NULL,
  batch INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER NOT NULL,
  signal INTEGER NOT NULL, timed_out INTEGER NOT NULL, output TEXT NOT NULL,
  reason TEXT NOT NULL, started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
  seq INTEGER NOT NULL, PRIMARY KEY (run_id, node));
)sql",
    // 5: desired state (what successful deploys set: per node, and per env + selector) and the
    // log of quarantines. A database from before learns the desired state of each scope from its
    // newest successful deploy or rollback.
    R"sql(
CREATE TABLE desired (
  env TEXT NOT NULL, app TEXT NOT NULL, node TEXT NOT NULL, selector TEXT NOT NULL,
  version TEXT NOT NULL, deploy_id INTEGER NOT NULL, actor TEXT NOT NULL, set_at INTEGER NOT NULL,
  PRIMARY KEY (env, app, node, selector));
CREATE TABLE quarantines (
  id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, app TEXT NOT NULL,
  deploy_id INTEGER NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL,
  released_by TEXT NOT NULL, released_at INTEGER NOT NULL);
CREATE INDEX quarantines_node ON quarantines (node, released_at);
INSERT INTO desired (env, app, node, selector, version, deploy_id, actor, set_at)
  SELECT env, app, '', selector, version, id, actor, finished_at FROM deploys d
  WHERE state = 'succeeded' AND kind IN ('deploy', 'rollback') AND id = (
    SELECT MAX(id) FROM deploys e WHERE e.env = d.env AND e.app = d.app
      AND e.selector = d.selector AND e.state = 'succeeded' AND e.kind IN ('deploy', 'rollback'));
)sql",
    // 6: deploy plans (slipway deploy -f: ordered stages). `stages`, `rollbacks` and `log` are
    // JSON (each stage with its state, deploy id and rollback deploy ids).
    R"sql(
CREATE TABLE plans (
  id INTEGER PRIMARY KEY, env TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
  current_stage INTEGER NOT NULL, stages TEXT NOT NULL, rollbacks TEXT NOT NULL,
  actor TEXT NOT NULL, aborted_by TEXT NOT NULL, reason TEXT NOT NULL, waiting TEXT NOT NULL,
  gate TEXT NOT NULL, resume_at INTEGER NOT NULL, log TEXT NOT NULL,
  created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL);
CREATE INDEX plans_env ON plans (env, id);
)sql",
    // 7: per-environment config and secrets of each app (secret values sealed by the server), and
    // the log of its versions (which keys changed, never values). A deploy records the version
    // it used in its options (config_version).
    R"sql(
CREATE TABLE config_entries (
  env TEXT NOT NULL, app TEXT NOT NULL, key TEXT NOT NULL, secret INTEGER NOT NULL,
  value TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (env, app, key));
CREATE TABLE config_versions (
  env TEXT NOT NULL, app TEXT NOT NULL, version INTEGER NOT NULL, changes TEXT NOT NULL,
  actor TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (env, app, version));
)sql",
    // 8: API tokens (only the hash of each secret) and the audit log, which SQL itself keeps
    // append-only: its triggers abort any UPDATE or DELETE. Each row holds the hash of the
    // previous one and of itself (a chain: an edit made around the triggers shows).
    R"sql(
CREATE TABLE tokens (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL, envs TEXT NOT NULL, apps TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_by TEXT NOT NULL,
  revoked_at INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, token TEXT NOT NULL,
  remote TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, status INTEGER NOT NULL, error_code TEXT NOT NULL, error TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX audit_at ON audit (at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql",
    // 9: node credentials. Each enrolled node's credential, as its SHA-256 only; a revoked node
    // keeps its row (hash '', revoked_at set) so that its name can never enroll again.
    R"sql(
CREATE TABLE node_credentials (
  node TEXT PRIMARY KEY, hash TEXT NOT NULL, enrolled_at INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL, revoked_by TEXT NOT NULL);
)sql",
    // 10: notification hooks (their credential sealed) and the append-only log of every delivery
    // attempt.
    R"sql(
CREATE TABLE notify_hooks (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, target TEXT NOT NULL,
  events TEXT NOT NULL, env TEXT NOT NULL, app TEXT NOT NULL, secret TEXT NOT NULL,
  created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE notify_deliveries (
  id INTEGER PRIMARY KEY, hook TEXT NOT NULL, delivery TEXT NOT NULL, event TEXT NOT NULL,
  attempt INTEGER NOT NULL, ok INTEGER NOT NULL, status_code INTEGER NOT NULL,
  error TEXT NOT NULL, duration_ms INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE INDEX notify_deliveries_by_hook ON notify_deliveries (hook, id);
CREATE TRIGGER notify_deliveries_no_update BEFORE UPDATE ON notify_deliveries
  BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER notify_deliveries_no_delete BEFORE DELETE ON notify_deliveries
  BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
)sql",
    // 11: an environment is a security boundary. Each enrollment keeps the environment and roles
    // the node may claim (a node enrolled before is bound to what it last registered as; one the
    // nodes table does not know is bound at its next hello), the join token that enrolled it, and
    // whether it waits for approval. Join tokens (hashes only) scoped to one environment; the
    // environments' settings (protected: new nodes only through a join token scoped to it).
    R"sql(
ALTER TABLE node_credentials ADD COLUMN env TEXT NOT NULL DEFAULT '';
ALTER TABLE node_credentials ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE node_credentials ADD COLUMN join_token TEXT NOT NULL DEFAULT '';
ALTER TABLE node_credentials ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_credentials ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE node_credentials ADD COLUMN approved_at INTEGER NOT NULL DEFAULT 0;
UPDATE node_credentials SET
  env = COALESCE((SELECT env FROM nodes WHERE nodes.name = node_credentials.node), ''),
  roles = COALESCE((SELECT roles FROM nodes WHERE nodes.name = node_credentials.node), '[]');
CREATE TABLE join_tokens (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL UNIQUE,
  env TEXT NOT NULL, roles TEXT NOT NULL, approve INTEGER NOT NULL, max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, revoked_by TEXT NOT NULL, revoked_at INTEGER NOT NULL,
  last_used INTEGER NOT NULL);
CREATE TABLE environments (
  name TEXT PRIMARY KEY, protected INTEGER NOT NULL, changed_by TEXT NOT NULL,
  changed_at INTEGER NOT NULL);
)sql",
    // 12: the audit log keyed (rows from now on hold an HMAC under DATA/audit.key, see
    // append_audit), a request's entry and its outcome as two rows (outcome_of), and the user a
    // client claims to be, kept apart from the actor (the token's name) in the audit log, pushes
    // and runs. It adds columns only, and depends on no other schema change of its release.
    R"sql(
ALTER TABLE audit ADD COLUMN claimed_user TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN outcome_of INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_outcomes ON audit (outcome_of) WHERE outcome_of > 0;
ALTER TABLE artifacts ADD COLUMN claimed_user TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN claimed_user TEXT NOT NULL DEFAULT '';
)sql",
};

// The strategy options of a deploy, kept in one JSON column.
std::string options_json(const Deploy& d) {
  json::object o = engine::strategy_options_json(d);
  o["promote_at"] = d.promote_at;
  o["config_version"] = d.config_version;
  if (!d.claimed_user.empty()) o["claimed_user"] = d.claimed_user;
  return to_json(o);
}

void options_from_json(const std::string& text, Deploy& d) {
  auto v = parse_json(text, "deploy options");
  if (!v || !v->is_object()) return;
  JsonReader r(*v, "deploy options");
  engine::read_strategy_options(r, d);
  d.promote_at = r.i64_or("promote_at", 0);
  d.config_version = r.i64_or("config_version", 0);
  d.claimed_user = r.str_or("claimed_user", "");
}

json::value apps_to_json(const std::map<std::string, inventory::NodeApp>& apps) {
  json::object o;
  for (const auto& [name, a] : apps) {
    json::array rel;
    for (const auto& r : a.releases)
      rel.emplace_back(r);
    o[name] = json::object{{"version", a.version},       {"healthy", a.healthy},
                           {"running", a.running},       {"port", a.port},
                           {"releases", std::move(rel)}, {"last_healthy", a.last_healthy},
                           {"updated_at", a.updated_at}};
  }
  return o;
}

std::map<std::string, inventory::NodeApp> apps_from_json(const std::string& text) {
  std::map<std::string, inventory::NodeApp> out;
  auto v = parse_json(text, "stored apps");
  if (!v || !v->is_object()) return out;
  for (const auto& [name, av] : v->get_object()) {
    JsonReader r(av, "app");
    inventory::NodeApp a;
    a.version = r.str_or("version", "");
    a.healthy = r.boolean_or("healthy", false);
    a.running = r.boolean_or("running", false);
    a.port = static_cast<int>(r.i64_or("port", 0));
    a.releases = r.str_list("releases");
    a.last_healthy = r.str_or("last_healthy", "");
    a.updated_at = r.i64_or("updated_at", 0);
    out.emplace(std::string(name), std::move(a));
  }
  return out;
}

// A node's roles as the nodes table keeps them: a JSON array.
std::string roles_json(const std::vector<std::string>& roles) {
  json::array a;
  for (const auto& r : roles)
    a.emplace_back(r);
  return to_json(a);
}

std::vector<std::string> roles_from_json(const std::string& text) {
  std::vector<std::string> out;
  if (auto v = parse_json(text, "roles"); v && v->is_array()) {
    for (const auto& r : v->as_array()) {
      if (r.is_string()) out.emplace_back(r.get_string());
    }
  }
  return out;
}

}  // namespace

std::string legacy_audit_hash(const AuditRecord& r) {
  // A JSON array: every field delimited unambiguously, whatever it holds.
  const json::array fields{r.id,   r.at,     r.actor,  r.token,  r.remote,     r.method,
                           r.path, r.action, r.target, r.status, r.error_code, r.error};
  return sha256_hex(r.prev_hash + "\n" + to_json(fields));
}

std::string audit_mac(const SecretKey& key, const AuditRecord& r) {
  // A label of its own, so that no other MAC under the key (the meta records) can pass for a row.
  const json::array fields{r.id,     r.at,         r.actor, r.token,     r.claimed_user,
                           r.remote, r.method,     r.path,  r.action,    r.target,
                           r.status, r.error_code, r.error, r.outcome_of};
  return key.mac_hex("slipway audit row\n" + r.prev_hash + "\n" + to_json(fields));
}

namespace {

// A meta record of the audit chain: "ID HASH MAC", MAC = HMAC(key, LABEL \n ID \n HASH).
struct ChainMark {
  int64_t id = 0;
  std::string hash;
};

std::string format_mark(const SecretKey& key, std::string_view label, const ChainMark& m) {
  const std::string body = fmt::format("{} {}", m.id, m.hash.empty() ? "-" : m.hash);
  return body + " " + key.mac_hex(fmt::format("{}\n{}\n{}", label, m.id, m.hash));
}

// The mark a record holds when its MAC verifies under `key`.
std::optional<ChainMark> parse_mark(const SecretKey& key, std::string_view label,
                                    const std::string& text) {
  const auto parts = split(text, ' ');
  if (parts.size() != 3) return std::nullopt;
  ChainMark m;
  auto [p, ec] = std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), m.id);
  if (ec != std::errc() || p != parts[0].data() + parts[0].size() || m.id < 0) return std::nullopt;
  m.hash = parts[1] == "-" ? "" : parts[1];
  if (!key.verify_mac(fmt::format("{}\n{}\n{}", label, m.id, m.hash), parts[2]))
    return std::nullopt;
  return m;
}

constexpr std::string_view kHeadLabel = "slipway audit head";
constexpr std::string_view kLegacyLabel = "slipway audit legacy";
constexpr const char* kHeadKey = "audit/head";
constexpr const char* kLegacyKey = "audit/legacy";

// Walks the audit rows in id order and finds where the chain first breaks: a missing id, a
// prev_hash that is not the previous row's hash, a row whose hash is neither its HMAC nor (for
// the rows the legacy record covers) its plain SHA-256, then the head record against the end.
class AuditVerifier {
 public:
  explicit AuditVerifier(const SecretKey& key) : key_(key) {}

  void set_records(const std::optional<std::string>& legacy,
                   const std::optional<std::string>& head) {
    if (legacy) {
      legacy_ = parse_mark(key_, kLegacyLabel, *legacy);
      legacy_forged_ = !legacy_;
    }
    if (head) {
      head_ = parse_mark(key_, kHeadLabel, *head);
      head_forged_ = !head_;
    }
    head_present_ = head.has_value();
  }

  // False once a row failed: the verdict is known.
  bool check(const AuditRecord& a) {
    ++v_.rows;
    if (a.id != last_id_ + 1) {
      return fail(last_id_ + 1,
                  fmt::format("row {} is missing: the log goes from row {} to row {} (rows were "
                              "deleted)",
                              last_id_ + 1, last_id_, a.id));
    }
    if (a.prev_hash != prev_) {
      return fail(a.id, last_id_ == 0
                            ? std::string("its prev_hash should be empty (it is the first row)")
                            : fmt::format("its prev_hash is not the hash of row {} (a row was "
                                          "changed, removed or put in between)",
                                          last_id_));
    }
    if (legacy_ && a.id <= legacy_->id) {
      ++v_.legacy_rows;
      if (legacy_audit_hash(a) != a.hash) {
        return fail(a.id,
                    "its SHA-256 does not match its fields: a row from before audit.key was "
                    "changed");
      }
      if (a.id == legacy_->id && a.hash != legacy_->hash) {
        return fail(a.id,
                    "the rows from before audit.key no longer end with the hash recorded when the "
                    "key was made: they were rewritten");
      }
    } else if (!constant_time_equal(audit_mac(key_, a), a.hash)) {
      std::string why =
          "its HMAC does not verify under audit.key: the row was changed, or written by someone "
          "without the key";
      if (legacy_forged_) {
        why +=
            "; the record of the rows from before the key (meta audit/legacy) does not verify "
            "either: it was forged";
      } else if (legacy_audit_hash(a) == a.hash) {
        why +=
            "; it holds a plain SHA-256 as rows from before audit.key do, but no valid record "
            "(meta audit/legacy) says it is one of them";
      }
      return fail(a.id, std::move(why));
    }
    prev_ = a.hash;
    last_id_ = a.id;
    return true;
  }

  AuditVerdict finish() {
    if (!v_.intact()) return v_;
    if (legacy_forged_) {
      fail(1,
           "the record of the rows from before audit.key (meta audit/legacy) does not verify: "
           "it was forged");
    } else if (head_forged_) {
      fail(std::max<int64_t>(last_id_, 1),
           "the head record (meta audit/head) does not verify under audit.key: it was forged");
    } else if (!head_present_) {
      if (last_id_ > 0) {
        fail(last_id_,
             "the head record (meta audit/head) is missing: it was deleted, so rows cut from the "
             "end would not show");
      }
    } else if (head_->id > last_id_) {
      fail(last_id_ + 1, fmt::format("rows {} to {} are missing: the log ends at row {} but its "
                                     "head record says {} (rows were cut from the end)",
                                     last_id_ + 1, head_->id, last_id_, head_->id));
    } else if (head_->id < last_id_) {
      fail(head_->id + 1,
           fmt::format("row {} comes after the newest row the head record knows ({}): it was "
                       "added without the key",
                       head_->id + 1, head_->id));
    } else if (head_->hash != prev_) {
      fail(last_id_, "its hash is not the one the head record holds: the newest row was replaced");
    }
    return v_;
  }

 private:
  bool fail(int64_t row, std::string why) {
    v_.bad_row = row;
    v_.why = std::move(why);
    return false;
  }

  const SecretKey& key_;
  std::optional<ChainMark> legacy_;  // verified
  bool legacy_forged_ = false;       // a record is there, but its MAC does not verify
  std::optional<ChainMark> head_;    // verified
  bool head_forged_ = false;
  bool head_present_ = false;
  int64_t last_id_ = 0;
  std::string prev_;
  AuditVerdict v_;
};

}  // namespace

namespace {

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::string path) : path_(std::move(path)) {}

  Status open() override {
    if (auto st = db_.open(path_); !st) return st;
    auto v = db_.prepare("PRAGMA user_version");
    if (!v) return v.error();
    auto row = v->step();
    if (!row) return row.error();
    int64_t version = *row ? v->i64(0) : 0;
    const int64_t target = static_cast<int64_t>(std::size(kMigrations));
    if (version > target) {
      return err(Errc::failed_precondition,
                 fmt::format("the database {} has schema version {}, newer than this server "
                             "knows ({}); upgrade slipway",
                             path_, version, target));
    }
    for (; version < target; ++version) {
      if (auto st = db_.exec("BEGIN IMMEDIATE"); !st) return st;
      if (auto st = db_.exec(kMigrations[version]); !st) {
        (void)db_.exec("ROLLBACK");
        return st;
      }
      if (auto st = db_.exec(fmt::format("PRAGMA user_version={}", version + 1)); !st) return st;
      if (auto st = db_.exec("COMMIT"); !st) return st;
    }
    return {};
  }

  Status begin() override { return db_.exec("BEGIN IMMEDIATE"); }
  Status commit() override {
    auto st = db_.exec("COMMIT");
    if (!st) audit_head_.reset();  // the rows it appended may be gone
    return st;
  }
  Status rollback() override {
    audit_head_.reset();
    return db_.exec("ROLLBACK");
  }

  Status commit_now() override {
    if (!db_.in_transaction()) return {};
    Status st = db_.exec("COMMIT");
    if (!st) {
      if (db_.in_transaction()) (void)db_.exec("ROLLBACK");
      audit_head_.reset();  // the rows it appended are gone: read the head again
    }
    (void)db_.exec("BEGIN IMMEDIATE");
    return st;
  }

  Result<std::optional<std::string>> get_meta(const std::string& key) override {
    auto s = db_.prepare("SELECT value FROM meta WHERE key = ?");
    if (!s) return s.error();
    s->bind(1, key);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<std::string>();
    return std::optional<std::string>(s->text(0));
  }

  Status set_meta(const std::string& key, const std::string& value) override {
    auto s = db_.prepare(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
        "excluded.value");
    if (!s) return s.error();
    return s->bind(1, key).bind(2, value).run();
  }

  Result<std::optional<ArtifactRecord>> get_artifact(const std::string& app,
                                                     const std::string& version) override {
    auto s = db_.prepare(
        "SELECT app, version, sha256, size, manifest, pushed_by, created_at, claimed_user FROM "
        "artifacts WHERE app = ? AND version = ?");
    if (!s) return s.error();
    s->bind(1, app).bind(2, version);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<ArtifactRecord>();
    return std::optional<ArtifactRecord>(artifact_row(*s));
  }

  Status insert_artifact(const ArtifactRecord& a) override {
    auto s = db_.prepare(
        "INSERT INTO artifacts (app, version, sha256, size, manifest, pushed_by, created_at, "
        "claimed_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s) return s.error();
    s->bind(1, a.app).bind(2, a.version).bind(3, a.sha256).bind(4, static_cast<int64_t>(a.size));
    s->bind(5, a.manifest_json).bind(6, a.pushed_by).bind(7, a.created_at);
    s->bind(8, a.claimed_user);
    return s->run();
  }

  Result<std::vector<ArtifactRecord>> list_artifacts(const std::string& app) override {
    auto s = db_.prepare(
        "SELECT app, version, sha256, size, manifest, pushed_by, created_at, claimed_user FROM "
        "artifacts WHERE app = ?");
    if (!s) return s.error();
    s->bind(1, app);
    std::vector<ArtifactRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(artifact_row(*s));
    }
    return out;
  }

  Result<std::vector<std::string>> list_apps() override {
    auto s = db_.prepare("SELECT DISTINCT app FROM artifacts ORDER BY app");
    if (!s) return s.error();
    std::vector<std::string> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(s->text(0));
    }
    return out;
  }

  Result<bool> blob_referenced(const std::string& sha256) override {
    auto s = db_.prepare("SELECT 1 FROM artifacts WHERE sha256 = ? LIMIT 1");
    if (!s) return s.error();
    s->bind(1, sha256);
    return s->step();
  }

  Status upsert_node(const inventory::Node& n) override {
    auto s = db_.prepare(
        "INSERT INTO nodes (name, env, roles, zone, tags, address, agent_version, first_seen, "
        "last_seen, apps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "env = excluded.env, roles = excluded.roles, zone = excluded.zone, tags = excluded.tags, "
        "address = excluded.address, agent_version = excluded.agent_version, last_seen = "
        "excluded.last_seen, apps = excluded.apps");
    if (!s) return s.error();
    json::object tags;
    for (const auto& [k, v] : n.tags)
      tags[k] = v;
    s->bind(1, n.name).bind(2, n.env).bind(3, roles_json(n.roles)).bind(4, n.zone);
    s->bind(5, to_json(tags)).bind(6, n.address).bind(7, n.agent_version);
    s->bind(8, n.first_seen).bind(9, n.last_seen).bind(10, to_json(apps_to_json(n.apps)));
    return s->run();
  }

  Status save_last_seen(const std::vector<std::pair<std::string, TimeMs>>& seen) override {
    for (const auto& [name, t] : seen) {
      auto s = db_.prepare("UPDATE nodes SET last_seen = ? WHERE name = ?");
      if (!s) return s.error();
      if (auto st = s->bind(1, t).bind(2, name).run(); !st) return st;
    }
    return {};
  }

  Result<std::vector<inventory::Node>> load_nodes() override {
    auto s = db_.prepare(
        "SELECT name, env, roles, zone, tags, address, agent_version, first_seen, last_seen, apps "
        "FROM nodes ORDER BY name");
    if (!s) return s.error();
    std::vector<inventory::Node> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      inventory::Node n;
      n.name = s->text(0);
      n.env = s->text(1);
      n.roles = roles_from_json(s->text(2));
      n.zone = s->text(3);
      if (auto v = parse_json(s->text(4), "tags"); v && v->is_object()) {
        for (const auto& [k, tv] : v->get_object()) {
          if (tv.is_string()) n.tags.emplace(std::string(k), std::string(tv.get_string()));
        }
      }
      n.address = s->text(5);
      n.agent_version = s->text(6);
      n.first_seen = s->i64(7);
      n.last_seen = s->i64(8);
      n.apps = apps_from_json(s->text(9));
      n.state = inventory::NodeState::lost;
      out.push_back(std::move(n));
    }
    return out;
  }

  Status save_deploy(const Deploy& d) override {
    auto s = db_.prepare(
        "INSERT INTO deploys (id, kind, app, version, env, selector, strategy, batch, "
        "max_failures, state, phase, reason, actor, aborted_by, started_at, finished_at, batches, "
        "current_batch, forced_freeze, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, "
        "?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, phase = excluded.phase, "
        "reason = excluded.reason, aborted_by = excluded.aborted_by, finished_at = "
        "excluded.finished_at, current_batch = excluded.current_batch, options = "
        "excluded.options");
    if (!s) return s.error();
    s->bind(1, d.id).bind(2, engine::deploy_kind_name(d.kind)).bind(3, d.app).bind(4, d.version);
    s->bind(5, d.env).bind(6, d.selector).bind(7, d.strategy).bind(8, d.batch.to_string());
    s->bind(9, d.max_failures).bind(10, engine::deploy_state_name(d.state));
    s->bind(11, d.phase == engine::Phase::forward ? "forward" : "revert").bind(12, d.reason);
    s->bind(13, d.actor).bind(14, d.aborted_by).bind(15, d.created_at).bind(16, d.finished_at);
    s->bind(17, d.batches).bind(18, d.current_batch).bind(19, d.forced_freeze);
    s->bind(20, options_json(d));
    if (auto st = s->run(); !st) return st;
    for (const auto& n : d.nodes) {
      if (auto st = save_deploy_node(d.id, n); !st) return st;
    }
    return {};
  }

  Status save_deploy_node(DeployId id, const NodeProgress& n) override {
    auto s = db_.prepare(
        "INSERT INTO deploy_nodes (deploy_id, node, zone, batch, from_version, status, step, "
        "started_at, finished_at, reason, reverted_to, version_now, downloaded, canary) VALUES (?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deploy_id, node) DO UPDATE SET status "
        "= "
        "excluded.status, step = excluded.step, started_at = excluded.started_at, finished_at = "
        "excluded.finished_at, reason = excluded.reason, reverted_to = excluded.reverted_to, "
        "version_now = excluded.version_now, downloaded = excluded.downloaded");
    if (!s) return s.error();
    s->bind(1, id).bind(2, n.node).bind(3, n.zone).bind(4, n.batch).bind(5, n.from_version);
    s->bind(6, engine::node_status_name(n.status)).bind(7, n.step).bind(8, n.started_at);
    s->bind(9, n.finished_at).bind(10, n.reason).bind(11, n.reverted_to).bind(12, n.version_now);
    s->bind(13, n.downloaded).bind(14, n.canary);
    return s->run();
  }

  Status save_transition(DeployId id, const engine::Transition& t) override {
    auto s = db_.prepare(
        "INSERT INTO deploy_log (deploy_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)");
    if (!s) return s.error();
    s->bind(1, id).bind(2, t.at).bind(3, t.actor).bind(4, t.action).bind(5, t.detail);
    return s->run();
  }

  Status save_step(const StepRecord& r) override {
    auto s = db_.prepare(
        "INSERT INTO deploy_steps (deploy_id, node, step, status, output, started_at, "
        "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s) return s.error();
    s->bind(1, r.deploy).bind(2, r.node).bind(3, r.step).bind(4, r.status).bind(5, r.output);
    s->bind(6, r.started_at).bind(7, r.duration_ms);
    return s->run();
  }

  Result<std::optional<Deploy>> get_deploy(DeployId id) override {
    auto s = db_.prepare(std::string(kDeployColumns) + " WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, id);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<Deploy>();
    Deploy d = deploy_row(*s);
    auto n = db_.prepare(
        "SELECT node, zone, batch, from_version, status, step, started_at, finished_at, reason, "
        "reverted_to, version_now, downloaded, canary FROM deploy_nodes WHERE deploy_id = ? ORDER "
        "BY batch, node");
    if (!n) return n.error();
    n->bind(1, id);
    for (;;) {
      auto r = n->step();
      if (!r) return r.error();
      if (!*r) break;
      NodeProgress p;
      p.node = n->text(0);
      p.zone = n->text(1);
      p.batch = static_cast<int>(n->i64(2));
      p.from_version = n->text(3);
      p.status = engine::node_status_from_name(n->text(4)).value_or(engine::NodeStatus::failed);
      p.step = n->text(5);
      p.started_at = n->i64(6);
      p.finished_at = n->i64(7);
      p.reason = n->text(8);
      p.reverted_to = n->text(9);
      p.version_now = n->text(10);
      p.downloaded = n->i64(11) != 0;
      p.canary = n->i64(12) != 0;
      d.nodes.push_back(std::move(p));
    }
    d.recount();
    auto l = db_.prepare(
        "SELECT at, actor, action, detail FROM deploy_log WHERE deploy_id = ? ORDER BY id");
    if (!l) return l.error();
    l->bind(1, id);
    for (;;) {
      auto r = l->step();
      if (!r) return r.error();
      if (!*r) break;
      d.log.push_back(engine::Transition{l->i64(0), l->text(1), l->text(2), l->text(3)});
    }
    return std::optional<Deploy>(std::move(d));
  }

  Result<std::vector<Deploy>> list_deploys(const DeployFilter& f) override {
    std::string sql = std::string(kDeployColumns) + " WHERE 1 = 1";
    if (!f.app.empty()) sql += " AND app = ?1";
    if (!f.env.empty()) sql += " AND env = ?2";
    if (f.state) sql += " AND state = ?3";
    if (f.before_id > 0) sql += " AND id < ?4";
    if (!f.node.empty()) sql += " AND id IN (SELECT deploy_id FROM deploy_nodes WHERE node = ?6)";
    if (f.since_ms > 0) sql += " AND started_at >= ?7";
    sql += " ORDER BY id DESC LIMIT ?5";
    auto s = db_.prepare(sql);
    if (!s) return s.error();
    if (!f.app.empty()) s->bind(1, f.app);
    if (!f.env.empty()) s->bind(2, f.env);
    if (f.state) s->bind(3, engine::deploy_state_name(*f.state));
    if (f.before_id > 0) s->bind(4, f.before_id);
    s->bind(5, static_cast<int64_t>(f.limit));
    if (!f.node.empty()) s->bind(6, f.node);
    if (f.since_ms > 0) s->bind(7, f.since_ms);
    std::vector<Deploy> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(deploy_row(*s));
    }
    // Node counts for listings.
    for (auto& d : out) {
      if (!f.with_nodes) break;
      auto c = db_.prepare(
          "SELECT node, status, batch FROM deploy_nodes WHERE deploy_id = ? ORDER BY batch, node");
      if (!c) return c.error();
      c->bind(1, d.id);
      for (;;) {
        auto r = c->step();
        if (!r) return r.error();
        if (!*r) break;
        NodeProgress p;
        p.node = c->text(0);
        p.status = engine::node_status_from_name(c->text(1)).value_or(engine::NodeStatus::failed);
        p.batch = static_cast<int>(c->i64(2));
        d.nodes.push_back(std::move(p));
      }
      d.recount();
    }
    return out;
  }

  Result<std::vector<StepRecord>> list_steps(DeployId id) override {
    auto s = db_.prepare(
        "SELECT deploy_id, node, step, status, output, started_at, duration_ms FROM deploy_steps "
        "WHERE deploy_id = ? ORDER BY id");
    if (!s) return s.error();
    s->bind(1, id);
    std::vector<StepRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(StepRecord{s->i64(0), s->text(1), s->text(2), s->text(3), s->text(4), s->i64(5),
                               s->i64(6)});
    }
    return out;
  }

  Result<DeployId> max_deploy_id() override {
    auto ids = int_column("SELECT COALESCE(MAX(id), 0) FROM deploys");
    if (!ids) return ids.error();
    return ids->front();
  }

  Result<std::vector<DeployId>> fail_running_deploys(const std::string& reason,
                                                     TimeMs now) override {
    auto ids = int_column("SELECT id FROM deploys WHERE state IN ('running', 'paused')");
    if (!ids) return ids.error();
    for (auto id : *ids) {
      auto s = db_.prepare(
          "UPDATE deploys SET state = 'failed', reason = CASE WHEN reason = '' THEN ?1 ELSE "
          "reason || '; ' || ?1 END, finished_at = ?2 WHERE id = ?3");
      if (!s) return s.error();
      if (auto st = s->bind(1, reason).bind(2, now).bind(3, id).run(); !st) return st.error();
      auto n = db_.prepare(
          "UPDATE deploy_nodes SET status = CASE status WHEN 'pending' THEN 'skipped' ELSE "
          "'failed' END, reason = ?1, finished_at = ?2 WHERE deploy_id = ?3 AND status IN "
          "('pending', 'running', 'reverting')");
      if (!n) return n.error();
      if (auto st = n->bind(1, reason).bind(2, now).bind(3, id).run(); !st) return st.error();
    }
    return *ids;
  }

  Status save_run(const Run& r, bool with_nodes) override {
    auto s = db_.prepare(
        "INSERT INTO runs (id, env, selector, argv, batch, timeout_ms, actor, state, created_at, "
        "finished_at, batches, current_batch, finished_nodes, claimed_user) VALUES (?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
        "finished_at = "
        "excluded.finished_at, current_batch = excluded.current_batch, finished_nodes = "
        "excluded.finished_nodes");
    if (!s) return s.error();
    json::array argv;
    for (const auto& a : r.argv)
      argv.emplace_back(a);
    s->bind(1, r.id).bind(2, r.env).bind(3, r.selector).bind(4, to_json(argv));
    s->bind(5, r.batch.to_string()).bind(6, static_cast<int64_t>(r.timeout.count()));
    s->bind(7, r.actor).bind(8, engine::run_state_name(r.state)).bind(9, r.created_at);
    s->bind(10, r.finished_at).bind(11, r.batches).bind(12, r.current_batch);
    s->bind(13, r.finished_nodes).bind(14, r.claimed_user);
    if (auto st = s->run(); !st) return st;
    if (!with_nodes) return {};
    for (const auto& n : r.nodes) {
      if (auto st = save_run_node(r.id, n); !st) return st;
    }
    return {};
  }

  Status save_run_node(RunId id, const RunNode& n) override {
    auto s = db_.prepare(
        "INSERT INTO run_nodes (run_id, node, zone, batch, status, exit_code, signal, timed_out, "
        "output, reason, started_at, duration_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?) ON CONFLICT (run_id, node) DO UPDATE SET status = excluded.status, exit_code = "
        "excluded.exit_code, signal = excluded.signal, timed_out = excluded.timed_out, output = "
        "excluded.output, reason = excluded.reason, started_at = excluded.started_at, "
        "duration_ms = excluded.duration_ms, seq = excluded.seq");
    if (!s) return s.error();
    s->bind(1, id).bind(2, n.node).bind(3, n.zone).bind(4, n.batch);
    s->bind(5, engine::run_node_status_name(n.status)).bind(6, n.exit_code).bind(7, n.signal);
    s->bind(8, n.timed_out).bind(9, n.output).bind(10, n.reason).bind(11, n.started_at);
    s->bind(12, n.duration_ms).bind(13, n.seq);
    return s->run();
  }

  Result<std::optional<Run>> get_run(RunId id) override {
    auto s = db_.prepare(std::string(kRunColumns) + " WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, id);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<Run>();
    Run r = run_row(*s);
    if (auto st = load_run_nodes(r, true); !st) return st.error();
    return std::optional<Run>(std::move(r));
  }

  Result<std::vector<Run>> list_runs(const RunFilter& f) override {
    auto s = newest_first(kRunColumns, f.env, f.before_id, f.limit);
    if (!s) return s.error();
    std::vector<Run> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(run_row(*s));
    }
    for (auto& r : out) {
      if (auto st = load_run_nodes(r, false); !st) return st.error();
    }
    return out;
  }

  Result<RunId> max_run_id() override {
    auto ids = int_column("SELECT COALESCE(MAX(id), 0) FROM runs");
    if (!ids) return ids.error();
    return ids->front();
  }

  Result<std::vector<RunId>> fail_running_runs(const std::string& reason, TimeMs now) override {
    auto ids = int_column("SELECT id FROM runs WHERE state = 'running'");
    if (!ids) return ids.error();
    for (auto id : *ids) {
      // Each node failed here finishes now, after those that finished before: it gets the next
      // seq, so that a client following the run with ?since= sees it.
      auto r = get_run(id);
      if (!r) return r.error();
      if (!*r) continue;
      int64_t seq = (*r)->finished_nodes;
      for (auto& n : (*r)->nodes) {
        if (n.status != RunNodeStatus::pending && n.status != RunNodeStatus::running) continue;
        n.status = RunNodeStatus::failed;
        n.reason = reason;
        n.seq = ++seq;
        if (auto st = save_run_node(id, n); !st) return st.error();
      }
      auto s = db_.prepare(
          "UPDATE runs SET state = 'failed', finished_at = ?1, finished_nodes = ?2 WHERE id = ?3");
      if (!s) return s.error();
      if (auto st = s->bind(1, now).bind(2, seq).bind(3, id).run(); !st) return st.error();
    }
    return *ids;
  }

  Status save_desired(const std::vector<engine::DesiredRecord>& records) override {
    for (const auto& r : records) {
      auto s = db_.prepare(
          "INSERT INTO desired (env, app, node, selector, version, deploy_id, actor, set_at) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env, app, node, selector) DO UPDATE SET "
          "version = excluded.version, deploy_id = excluded.deploy_id, actor = excluded.actor, "
          "set_at = excluded.set_at");
      if (!s) return s.error();
      s->bind(1, r.env).bind(2, r.app).bind(3, r.node).bind(4, r.selector).bind(5, r.version);
      s->bind(6, r.deploy).bind(7, r.actor).bind(8, r.set_at);
      if (auto st = s->run(); !st) return st;
    }
    return {};
  }

  Result<std::vector<engine::DesiredRecord>> load_desired() override {
    auto s = db_.prepare(
        "SELECT env, app, node, selector, version, deploy_id, actor, set_at FROM desired ORDER BY "
        "env, app, node, selector");
    if (!s) return s.error();
    std::vector<engine::DesiredRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(engine::DesiredRecord{s->text(0), s->text(1), s->text(2), s->text(3),
                                          s->text(4), s->i64(5), s->text(6), s->i64(7)});
    }
    return out;
  }

  Status quarantine_node(const std::string& node, const inventory::Quarantine& q) override {
    auto s = db_.prepare(
        "INSERT INTO quarantines (node, app, deploy_id, reason, at, released_by, released_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5, '', 0 WHERE NOT EXISTS (SELECT 1 FROM quarantines WHERE "
        "node = ?1 AND released_at = 0)");
    if (!s) return s.error();
    s->bind(1, node).bind(2, q.app).bind(3, q.deploy).bind(4, q.reason).bind(5, q.since);
    return s->run();
  }

  Result<bool> release_node(const std::string& node, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "UPDATE quarantines SET released_by = ?, released_at = ? WHERE node = ? AND released_at "
        "= 0");
    if (!s) return s.error();
    if (auto st = s->bind(1, by).bind(2, at).bind(3, node).run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Result<std::map<std::string, inventory::Quarantine>> active_quarantines() override {
    auto s = db_.prepare(
        "SELECT node, app, deploy_id, reason, at FROM quarantines WHERE released_at = 0 ORDER BY "
        "id");
    if (!s) return s.error();
    std::map<std::string, inventory::Quarantine> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out[s->text(0)] = inventory::Quarantine{s->text(3), s->text(1), s->i64(2), s->i64(4)};
    }
    return out;
  }

  Result<std::optional<NodeCredential>> get_node_credential(const std::string& node) override {
    auto found = node_credentials(" WHERE node = ?", node);
    if (!found) return found.error();
    if (found->empty()) return std::optional<NodeCredential>();
    return std::optional<NodeCredential>(std::move(found->front()));
  }

  Result<bool> enroll_node(const NodeCredential& c, int64_t join_token_id) override {
    if (auto st = db_.exec("SAVEPOINT enroll_node"); !st) return st.error();
    auto r = enroll(c, join_token_id);
    if (!r || !*r) {
      (void)db_.exec("ROLLBACK TO enroll_node");
      (void)db_.exec("RELEASE enroll_node");
      return r;
    }
    if (auto st = db_.exec("RELEASE enroll_node"); !st) return st.error();
    return r;
  }

  Result<std::vector<NodeCredential>> list_node_credentials() override {
    return node_credentials("", "");
  }

  Result<bool> move_node(const std::string& node, const std::string& env,
                         const std::optional<std::vector<std::string>>& roles) override {
    auto s = db_.prepare(
        "UPDATE node_credentials SET env = ?1, roles = COALESCE(?2, roles) WHERE node = ?3 AND "
        "revoked_at = 0");
    if (!s) return s.error();
    s->bind(1, env).bind(3, node);
    if (roles) s->bind(2, roles_json(*roles));
    if (auto st = s->run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Result<bool> approve_node(const std::string& node, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "UPDATE node_credentials SET pending = 0, approved_by = ?, approved_at = ? WHERE node = ? "
        "AND pending = 1 AND revoked_at = 0");
    if (!s) return s.error();
    if (auto st = s->bind(1, by).bind(2, at).bind(3, node).run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Result<int64_t> insert_join_token(const JoinTokenRecord& t) override {
    auto s = db_.prepare(
        "INSERT INTO join_tokens (name, hash, env, roles, approve, max_uses, uses, created_by, "
        "created_at, expires_at, revoked_by, revoked_at, last_used) VALUES (?, ?, ?, ?, ?, ?, 0, "
        "?, ?, ?, '', 0, 0) ON CONFLICT DO NOTHING");
    if (!s) return s.error();
    s->bind(1, t.name).bind(2, t.hash).bind(3, t.env).bind(4, join(t.roles, ","));
    s->bind(5, t.approve).bind(6, t.max_uses).bind(7, t.created_by).bind(8, t.created_at);
    s->bind(9, t.expires_at);
    if (auto st = s->run(); !st) return st.error();
    if (db_.changes() == 0) {
      return err(Errc::conflict, fmt::format("there is a join token named '{}' already (names of "
                                             "revoked join tokens are not reused)",
                                             t.name));
    }
    return db_.last_insert_id();
  }

  Result<std::vector<JoinTokenRecord>> list_join_tokens() override {
    auto s = db_.prepare(
        "SELECT id, name, hash, env, roles, approve, max_uses, uses, created_by, created_at, "
        "expires_at, revoked_by, revoked_at, last_used FROM join_tokens ORDER BY id");
    if (!s) return s.error();
    std::vector<JoinTokenRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      JoinTokenRecord t;
      t.id = s->i64(0);
      t.name = s->text(1);
      t.hash = s->text(2);
      t.env = s->text(3);
      t.roles = split(s->text(4), ',');
      t.approve = s->i64(5) != 0;
      t.max_uses = s->i64(6);
      t.uses = s->i64(7);
      t.created_by = s->text(8);
      t.created_at = s->i64(9);
      t.expires_at = s->i64(10);
      t.revoked_by = s->text(11);
      t.revoked_at = s->i64(12);
      t.last_used = s->i64(13);
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<bool> revoke_join_token(int64_t id, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "UPDATE join_tokens SET revoked_by = ?, revoked_at = ? WHERE id = ? AND revoked_at = 0");
    if (!s) return s.error();
    if (auto st = s->bind(1, by).bind(2, at).bind(3, id).run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Result<std::vector<EnvRecord>> list_environments() override {
    auto s = db_.prepare(
        "SELECT name, protected, changed_by, changed_at FROM environments ORDER BY name");
    if (!s) return s.error();
    std::vector<EnvRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(EnvRecord{s->text(0), s->i64(1) != 0, s->text(2), s->i64(3)});
    }
    return out;
  }

  Status save_environment(const EnvRecord& e) override {
    auto s = db_.prepare(
        "INSERT INTO environments (name, protected, changed_by, changed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET protected = excluded.protected, changed_by = "
        "excluded.changed_by, changed_at = excluded.changed_at");
    if (!s) return s.error();
    return s->bind(1, e.name)
        .bind(2, e.is_protected)
        .bind(3, e.changed_by)
        .bind(4, e.changed_at)
        .run();
  }

  Status revoke_node(const std::string& node, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "INSERT INTO node_credentials (node, hash, enrolled_at, revoked_at, revoked_by) VALUES "
        "(?1, '', 0, ?2, ?3) ON CONFLICT (node) DO UPDATE SET hash = '', revoked_at = ?2, "
        "revoked_by = ?3 WHERE revoked_at = 0");
    if (!s) return s.error();
    return s->bind(1, node).bind(2, at).bind(3, by).run();
  }

  Result<std::vector<NodeCredential>> revoked_nodes() override {
    return node_credentials(" WHERE revoked_at != 0", "");
  }

  Status save_plan(const engine::DeployPlan& p) override {
    // Its JSON holds the stages, rollbacks and log as the API shows them.
    const json::value v = engine::to_json(p);
    const auto& o = v.as_object();
    auto s = db_.prepare(
        "INSERT INTO plans (id, env, spec, state, current_stage, stages, rollbacks, actor, "
        "aborted_by, reason, waiting, gate, resume_at, log, created_at, finished_at) VALUES (?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = "
        "excluded.state, current_stage = excluded.current_stage, stages = excluded.stages, "
        "rollbacks = excluded.rollbacks, aborted_by = excluded.aborted_by, reason = "
        "excluded.reason, waiting = excluded.waiting, gate = excluded.gate, resume_at = "
        "excluded.resume_at, log = excluded.log, finished_at = excluded.finished_at");
    if (!s) return s.error();
    s->bind(1, p.id).bind(2, p.env).bind(3, to_json(p.spec));
    s->bind(4, engine::plan_state_name(p.state)).bind(5, p.current);
    s->bind(6, to_json(o.at("stages"))).bind(7, to_json(o.at("rollbacks"))).bind(8, p.actor);
    s->bind(9, p.aborted_by).bind(10, p.reason).bind(11, p.waiting).bind(12, p.gate);
    s->bind(13, p.resume_at).bind(14, to_json(o.at("log"))).bind(15, p.created_at);
    s->bind(16, p.finished_at);
    return s->run();
  }

  Result<std::optional<engine::DeployPlan>> get_plan(engine::PlanId id) override {
    auto s = db_.prepare(std::string(kPlanColumns) + " WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, id);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<engine::DeployPlan>();
    auto p = plan_row(*s);
    if (!p) return p.error();
    return std::optional<engine::DeployPlan>(std::move(*p));
  }

  Result<std::vector<engine::DeployPlan>> list_plans(const PlanFilter& f) override {
    auto s = newest_first(kPlanColumns, f.env, f.before_id, f.limit);
    if (!s) return s.error();
    std::vector<engine::DeployPlan> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      auto p = plan_row(*s);
      if (!p) return p.error();
      out.push_back(std::move(*p));
    }
    return out;
  }

  Result<engine::PlanId> max_plan_id() override {
    auto ids = int_column("SELECT COALESCE(MAX(id), 0) FROM plans");
    if (!ids) return ids.error();
    return ids->front();
  }

  Result<std::vector<engine::PlanId>> fail_running_plans(const std::string& reason,
                                                         TimeMs now) override {
    auto ids =
        int_column("SELECT id FROM plans WHERE state IN ('running', 'waiting', 'rolling_back')");
    if (!ids) return ids.error();
    for (auto id : *ids) {
      auto p = get_plan(id);
      if (!p) return p.error();
      if (!*p) continue;
      auto& plan = **p;
      plan.state = engine::PlanState::failed;
      plan.reason = plan.reason.empty() ? reason : plan.reason + "; " + reason;
      plan.finished_at = now;
      plan.waiting.clear();
      plan.gate.clear();
      plan.resume_at = 0;
      for (auto& st : plan.stages) {
        if (st.state == engine::StageState::pending) st.state = engine::StageState::skipped;
        if (st.state == engine::StageState::running) st.state = engine::StageState::failed;
        if (st.state == engine::StageState::rolling_back)
          st.state = engine::StageState::rollback_failed;
      }
      plan.log.push_back(engine::Transition{now, "slipway", "failed", reason});
      if (auto st = save_plan(plan); !st) return st.error();
    }
    return *ids;
  }

  Result<ConfigState> get_config(const std::string& env, const std::string& app) override {
    ConfigState out;
    auto v = db_.prepare(
        "SELECT COALESCE(MAX(version), 0) FROM config_versions WHERE env = ? AND app = ?");
    if (!v) return v.error();
    v->bind(1, env).bind(2, app);
    if (auto row = v->step(); !row) return row.error();
    out.version = v->i64(0);
    auto s = db_.prepare(
        "SELECT key, secret, value, updated_by, updated_at FROM config_entries WHERE env = ? AND "
        "app = ? ORDER BY key");
    if (!s) return s.error();
    s->bind(1, env).bind(2, app);
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.entries.push_back(
          ConfigEntry{s->text(0), s->i64(1) != 0, s->text(2), s->text(3), s->i64(4)});
    }
    return out;
  }

  Result<engine::ConfigVersion> change_config(const std::string& env, const std::string& app,
                                              const std::vector<ConfigEdit>& edits,
                                              const std::string& actor, TimeMs at) override {
    if (auto st = db_.exec("SAVEPOINT config_change"); !st) return st.error();
    auto r = apply_config(env, app, edits, actor, at);
    if (!r) {
      (void)db_.exec("ROLLBACK TO config_change");
      (void)db_.exec("RELEASE config_change");
      return r;
    }
    if (auto st = db_.exec("RELEASE config_change"); !st) return st.error();
    return r;
  }

  Result<std::vector<engine::ConfigVersion>> config_versions(const std::string& env,
                                                             const std::string& app, int64_t after,
                                                             int64_t upto) override {
    auto s = db_.prepare(
        "SELECT version, changes, actor, at FROM config_versions WHERE env = ? AND app = ? AND "
        "version > ? AND version <= ? ORDER BY version");
    if (!s) return s.error();
    s->bind(1, env).bind(2, app).bind(3, after).bind(4, upto);
    std::vector<engine::ConfigVersion> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      engine::ConfigVersion cv;
      cv.version = s->i64(0);
      auto v = parse_json(s->text(1), "stored config changes");
      if (!v) return v.error();
      auto changes = engine::config_changes_from_json(*v);
      if (!changes) return changes.error();
      cv.changes = std::move(*changes);
      cv.actor = s->text(2);
      cv.at = s->i64(3);
      out.push_back(std::move(cv));
    }
    return out;
  }

  Result<engine::FreezeId> insert_freeze(const engine::Freeze& f) override {
    auto s = db_.prepare(
        "INSERT INTO freezes (env, app, until, reason, created_by, created_at, lifted_by, "
        "lifted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s) return s.error();
    s->bind(1, f.env).bind(2, f.app).bind(3, f.until).bind(4, f.reason).bind(5, f.created_by);
    s->bind(6, f.created_at).bind(7, f.lifted_by).bind(8, f.lifted_at);
    if (auto st = s->run(); !st) return st.error();
    return db_.last_insert_id();
  }

  Result<std::optional<engine::Freeze>> get_freeze(engine::FreezeId id) override {
    auto s = db_.prepare(std::string(kFreezeColumns) + " WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, id);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return std::optional<engine::Freeze>();
    return std::optional<engine::Freeze>(freeze_row(*s));
  }

  Result<std::vector<engine::Freeze>> list_freezes(TimeMs now, bool all, int limit) override {
    auto s = db_.prepare(std::string(kFreezeColumns) +
                         (all ? " ORDER BY id DESC LIMIT ?2"
                              : " WHERE lifted_at = 0 AND until > ?1 ORDER BY id LIMIT ?2"));
    if (!s) return s.error();
    if (!all) s->bind(1, now);
    s->bind(2, static_cast<int64_t>(limit));
    std::vector<engine::Freeze> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(freeze_row(*s));
    }
    return out;
  }

  Status lift_freeze(engine::FreezeId id, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "UPDATE freezes SET lifted_by = ?, lifted_at = ? WHERE id = ? AND lifted_at = 0");
    if (!s) return s.error();
    return s->bind(1, by).bind(2, at).bind(3, id).run();
  }

  Result<int64_t> insert_token(const TokenRecord& t) override {
    auto s = db_.prepare(
        "INSERT INTO tokens (name, hash, role, envs, apps, created_by, created_at, expires_at, "
        "revoked_by, revoked_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 0, 0) "
        "ON CONFLICT DO NOTHING");
    if (!s) return s.error();
    s->bind(1, t.name).bind(2, t.hash).bind(3, t.role).bind(4, join(t.envs, ","));
    s->bind(5, join(t.apps, ",")).bind(6, t.created_by).bind(7, t.created_at);
    s->bind(8, t.expires_at);
    if (auto st = s->run(); !st) return st.error();
    if (db_.changes() == 0) {
      return err(Errc::conflict, fmt::format("there is a token named '{}' already (names of "
                                             "revoked tokens are not reused)",
                                             t.name));
    }
    return db_.last_insert_id();
  }

  Result<std::vector<TokenRecord>> list_tokens() override {
    auto s = db_.prepare(
        "SELECT id, name, hash, role, envs, apps, created_by, created_at, expires_at, "
        "revoked_by, revoked_at, last_used FROM tokens ORDER BY id");
    if (!s) return s.error();
    std::vector<TokenRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      TokenRecord t;
      t.id = s->i64(0);
      t.name = s->text(1);
      t.hash = s->text(2);
      t.role = s->text(3);
      t.envs = split(s->text(4), ',');
      t.apps = split(s->text(5), ',');
      t.created_by = s->text(6);
      t.created_at = s->i64(7);
      t.expires_at = s->i64(8);
      t.revoked_by = s->text(9);
      t.revoked_at = s->i64(10);
      t.last_used = s->i64(11);
      out.push_back(std::move(t));
    }
    return out;
  }

  Result<bool> revoke_token(int64_t id, const std::string& by, TimeMs at) override {
    auto s = db_.prepare(
        "UPDATE tokens SET revoked_by = ?, revoked_at = ? WHERE id = ? AND revoked_at = 0");
    if (!s) return s.error();
    if (auto st = s->bind(1, by).bind(2, at).bind(3, id).run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Status save_token_use(const std::vector<std::pair<int64_t, TimeMs>>& used) override {
    for (const auto& u : used) {
      auto s = db_.prepare("UPDATE tokens SET last_used = MAX(last_used, ?) WHERE id = ?");
      if (!s) return s.error();
      if (auto st = s->bind(1, u.second).bind(2, u.first).run(); !st) return st;
    }
    return {};
  }

  Result<int64_t> insert_notify_hook(const NotifyHookRecord& h) override {
    auto s = db_.prepare(
        "INSERT INTO notify_hooks (name, kind, target, events, env, app, secret, created_by, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    if (!s) return s.error();
    s->bind(1, h.name).bind(2, h.kind).bind(3, h.target).bind(4, join(h.events, ","));
    s->bind(5, h.env).bind(6, h.app).bind(7, h.secret).bind(8, h.created_by);
    s->bind(9, h.created_at);
    if (auto st = s->run(); !st) return st.error();
    if (db_.changes() == 0) {
      return err(Errc::conflict, fmt::format("there is a notification hook named '{}' already "
                                             "(remove it first)",
                                             h.name));
    }
    return db_.last_insert_id();
  }

  Result<std::vector<NotifyHookRecord>> list_notify_hooks() override {
    auto s = db_.prepare(
        "SELECT id, name, kind, target, events, env, app, secret, created_by, created_at "
        "FROM notify_hooks ORDER BY name");
    if (!s) return s.error();
    std::vector<NotifyHookRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      NotifyHookRecord h;
      h.id = s->i64(0);
      h.name = s->text(1);
      h.kind = s->text(2);
      h.target = s->text(3);
      h.events = split(s->text(4), ',');
      h.env = s->text(5);
      h.app = s->text(6);
      h.secret = s->text(7);
      h.created_by = s->text(8);
      h.created_at = s->i64(9);
      out.push_back(std::move(h));
    }
    return out;
  }

  Result<bool> delete_notify_hook(const std::string& name) override {
    auto s = db_.prepare("DELETE FROM notify_hooks WHERE name = ?");
    if (!s) return s.error();
    if (auto st = s->bind(1, name).run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Status append_notify_delivery(const NotifyDeliveryRecord& r) override {
    auto s = db_.prepare(
        "INSERT INTO notify_deliveries (hook, delivery, event, attempt, ok, status_code, error, "
        "duration_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s) return s.error();
    s->bind(1, r.hook).bind(2, r.delivery).bind(3, r.event).bind(4, int64_t{r.attempt});
    s->bind(5, int64_t{r.ok ? 1 : 0}).bind(6, int64_t{r.status_code}).bind(7, r.error);
    s->bind(8, r.duration_ms).bind(9, r.at);
    return s->run();
  }

  Result<std::vector<NotifyDeliveryRecord>> list_notify_deliveries(const std::string& hook,
                                                                   int limit) override {
    auto s = db_.prepare(
        "SELECT id, hook, delivery, event, attempt, ok, status_code, error, duration_ms, at "
        "FROM notify_deliveries WHERE ? = '' OR hook = ? ORDER BY id DESC LIMIT ?");
    if (!s) return s.error();
    s->bind(1, hook).bind(2, hook).bind(3, int64_t{limit});
    std::vector<NotifyDeliveryRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      NotifyDeliveryRecord r;
      r.id = s->i64(0);
      r.hook = s->text(1);
      r.delivery = s->text(2);
      r.event = s->text(3);
      r.attempt = static_cast<int>(s->i64(4));
      r.ok = s->i64(5) != 0;
      r.status_code = static_cast<int>(s->i64(6));
      r.error = s->text(7);
      r.duration_ms = s->i64(8);
      r.at = s->i64(9);
      out.push_back(std::move(r));
    }
    return out;
  }

  void set_audit_key(const SecretKey& key) override {
    audit_key_ = key;
    audit_head_.reset();
  }

  Status adopt_legacy_audit() override {
    if (!audit_key_) return no_audit_key();
    auto last = last_audit_row();
    if (!last) return last.error();
    if (auto st = set_meta(kLegacyKey, format_mark(*audit_key_, kLegacyLabel, *last)); !st)
      return st;
    if (auto st = set_meta(kHeadKey, format_mark(*audit_key_, kHeadLabel, *last)); !st) return st;
    audit_head_ = *last;
    return {};
  }

  Result<int64_t> append_audit(const AuditRecord& r) override {
    if (!audit_key_) return no_audit_key();
    if (!audit_head_) {
      auto head = chain_head();
      if (!head) return head.error();
      audit_head_ = *head;
    }
    auto m = db_.prepare("SELECT COALESCE(MAX(id), 0) FROM audit");
    if (!m) return m.error();
    auto mrow = m->step();
    if (!mrow) return mrow.error();
    AuditRecord a = r;
    // After the head even when rows were cut from the end: the gap stays visible.
    a.id = std::max(m->i64(0), audit_head_->id) + 1;
    a.prev_hash = audit_head_->hash;
    a.hash = audit_mac(*audit_key_, a);
    const ChainMark next{a.id, a.hash};
    if (auto st = db_.exec("SAVEPOINT audit_append"); !st) {
      audit_head_.reset();
      return st.error();
    }
    auto s = db_.prepare(
        "INSERT INTO audit (id, at, actor, token, claimed_user, remote, method, path, action, "
        "target, status, error_code, error, outcome_of, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    Status st = s ? Status{} : Status(s.error());
    if (st) {
      s->bind(1, a.id).bind(2, a.at).bind(3, a.actor).bind(4, a.token).bind(5, a.claimed_user);
      s->bind(6, a.remote).bind(7, a.method).bind(8, a.path).bind(9, a.action).bind(10, a.target);
      s->bind(11, a.status).bind(12, a.error_code).bind(13, a.error).bind(14, a.outcome_of);
      s->bind(15, a.prev_hash).bind(16, a.hash);
      st = s->run();
    }
    if (st) st = set_meta(kHeadKey, format_mark(*audit_key_, kHeadLabel, next));
    if (st) st = db_.exec("RELEASE audit_append");
    if (!st) {
      (void)db_.exec("ROLLBACK TO audit_append");
      (void)db_.exec("RELEASE audit_append");
      audit_head_.reset();  // read again from the database next time
      return st.error();
    }
    audit_head_ = next;
    return a.id;
  }

  Result<std::vector<AuditRecord>> list_audit(TimeMs since, int limit) override {
    // Each request's entry, with its outcome's status, error and target when there is one.
    auto s = db_.prepare(
        "SELECT e.id, e.at, e.actor, e.token, e.claimed_user, e.remote, e.method, e.path, "
        "e.action, COALESCE(o.target, e.target), COALESCE(o.status, e.status), "
        "COALESCE(o.error_code, e.error_code), COALESCE(o.error, e.error), e.outcome_of, "
        "e.prev_hash, e.hash FROM audit e LEFT JOIN audit o ON o.outcome_of = e.id "
        "WHERE e.outcome_of = 0 AND e.at >= ? ORDER BY e.id DESC LIMIT ?");
    if (!s) return s.error();
    s->bind(1, since).bind(2, static_cast<int64_t>(limit));
    std::vector<AuditRecord> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(audit_row(*s));
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

  Result<AuditVerdict> verify_audit() override {
    if (!audit_key_) return no_audit_key();
    AuditVerifier v(*audit_key_);
    auto legacy = get_meta(kLegacyKey);
    if (!legacy) return legacy.error();
    auto head = get_meta(kHeadKey);
    if (!head) return head.error();
    v.set_records(*legacy, *head);
    auto s = db_.prepare(std::string(kAuditColumns) + " ORDER BY id");
    if (!s) return s.error();
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      if (!v.check(audit_row(*s))) break;
    }
    return v.finish();
  }

  Result<std::vector<SealedValue>> list_sealed_values() override {
    std::vector<SealedValue> out;
    auto c = db_.prepare(
        "SELECT env, app, key, value FROM config_entries WHERE secret = 1 ORDER BY env, app, key");
    if (!c) return c.error();
    for (;;) {
      auto row = c->step();
      if (!row) return row.error();
      if (!*row) break;
      SealedValue v;
      v.kind = SealedValue::Kind::config;
      v.env = c->text(0);
      v.app = c->text(1);
      v.key = c->text(2);
      v.sealed = c->text(3);
      out.push_back(std::move(v));
    }
    auto h = db_.prepare("SELECT name, secret FROM notify_hooks WHERE secret != '' ORDER BY name");
    if (!h) return h.error();
    for (;;) {
      auto row = h->step();
      if (!row) return row.error();
      if (!*row) break;
      SealedValue v;
      v.kind = SealedValue::Kind::notify_hook;
      v.hook = h->text(0);
      v.sealed = h->text(1);
      out.push_back(std::move(v));
    }
    return out;
  }

  Status replace_sealed_values(const std::vector<SealedValue>& values,
                               const std::map<std::string, std::string>& meta) override {
    if (auto st = db_.exec("SAVEPOINT reseal"); !st) return st;
    Status st = reseal_in_place(values);
    for (auto it = meta.begin(); st && it != meta.end(); ++it)
      st = set_meta(it->first, it->second);
    if (st) st = db_.exec("RELEASE reseal");
    if (!st) {
      (void)db_.exec("ROLLBACK TO reseal");
      (void)db_.exec("RELEASE reseal");
    }
    return st;
  }

 private:
  Status reseal_in_place(const std::vector<SealedValue>& values) {
    for (const auto& v : values) {
      const bool config = v.kind == SealedValue::Kind::config;
      auto s = db_.prepare(config ? "UPDATE config_entries SET value = ? WHERE env = ? AND app = ? "
                                    "AND key = ? AND secret = 1"
                                  : "UPDATE notify_hooks SET secret = ? WHERE name = ?");
      if (!s) return s.error();
      s->bind(1, v.sealed);
      if (config) {
        s->bind(2, v.env).bind(3, v.app).bind(4, v.key);
      } else {
        s->bind(2, v.hook);
      }
      if (auto st = s->run(); !st) return st;
      if (db_.changes() == 0) {
        return err(Errc::not_found,
                   config ? fmt::format("there is no secret {} of {} in {}", v.key, v.app, v.env)
                          : fmt::format("there is no notification hook '{}'", v.hook));
      }
    }
    return {};
  }

 public:
 private:
  // The node credentials matching `where` (" WHERE ...", with at most one parameter, `arg`), by
  // name.
  Result<std::vector<NodeCredential>> node_credentials(const char* where, const std::string& arg) {
    auto s = db_.prepare(std::string("SELECT node, hash, enrolled_at, revoked_at, revoked_by, env, "
                                     "roles, join_token, pending, approved_by, approved_at FROM "
                                     "node_credentials") +
                         where + " ORDER BY node");
    if (!s) return s.error();
    if (!arg.empty()) s->bind(1, arg);
    std::vector<NodeCredential> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      NodeCredential c;
      c.node = s->text(0);
      c.hash = s->text(1);
      c.enrolled_at = s->i64(2);
      c.revoked_at = s->i64(3);
      c.revoked_by = s->text(4);
      c.env = s->text(5);
      c.roles = roles_from_json(s->text(6));
      c.join_token = s->text(7);
      c.pending = s->i64(8) != 0;
      c.approved_by = s->text(9);
      c.approved_at = s->i64(10);
      out.push_back(std::move(c));
    }
    return out;
  }

  // enroll_node inside its savepoint: the join token's use first (refused when it may not enroll
  // any more), then the credential (false when the name has a record).
  Result<bool> enroll(const NodeCredential& c, int64_t join_token_id) {
    if (join_token_id != 0) {
      auto use = db_.prepare(
          "UPDATE join_tokens SET uses = uses + 1, last_used = ?1 WHERE id = ?2 AND revoked_at = "
          "0 AND (expires_at = 0 OR expires_at > ?1) AND (max_uses = 0 OR uses < max_uses)");
      if (!use) return use.error();
      if (auto st = use->bind(1, c.enrolled_at).bind(2, join_token_id).run(); !st)
        return st.error();
      if (db_.changes() == 0) {
        return err(Errc::failed_precondition,
                   fmt::format("the join token '{}' is revoked, expired or used up", c.join_token));
      }
    }
    auto s = db_.prepare(
        "INSERT INTO node_credentials (node, hash, enrolled_at, revoked_at, revoked_by, env, "
        "roles, join_token, pending, approved_by, approved_at) VALUES (?, ?, ?, 0, '', ?, ?, ?, "
        "?, '', 0) ON CONFLICT (node) DO NOTHING");
    if (!s) return s.error();
    s->bind(1, c.node).bind(2, c.hash).bind(3, c.enrolled_at).bind(4, c.env);
    s->bind(5, roles_json(c.roles)).bind(6, c.join_token).bind(7, c.pending);
    if (auto st = s->run(); !st) return st.error();
    return db_.changes() > 0;
  }

  Result<engine::ConfigVersion> apply_config(const std::string& env, const std::string& app,
                                             const std::vector<ConfigEdit>& edits,
                                             const std::string& actor, TimeMs at) {
    auto current = get_config(env, app);
    if (!current) return current.error();
    std::map<std::string, ConfigEntry> now;
    for (auto& e : current->entries) {
      std::string key = e.key;
      now.emplace(std::move(key), std::move(e));
    }
    engine::ConfigVersion cv;
    cv.version = current->version;
    cv.actor = actor;
    cv.at = at;
    for (const auto& ed : edits) {
      const auto it = now.find(ed.key);
      const char* kind_name = ed.secret ? "secret" : "config key";
      if (!ed.value) {
        if (it == now.end() || it->second.secret != ed.secret) {
          return err(Errc::not_found,
                     fmt::format("{} in {} has no {} {}", app, env, kind_name, ed.key));
        }
        auto del = db_.prepare("DELETE FROM config_entries WHERE env = ? AND app = ? AND key = ?");
        if (!del) return del.error();
        if (auto st = del->bind(1, env).bind(2, app).bind(3, ed.key).run(); !st) return st.error();
        cv.changes.push_back({ed.key, ed.secret, engine::ConfigChangeKind::removed});
        now.erase(it);
        continue;
      }
      if (it != now.end() && it->second.secret != ed.secret) {
        return err(Errc::conflict,
                   fmt::format("{} of {} in {} is a {}; `slipway {} unset` it first", ed.key, app,
                               env, it->second.secret ? "secret" : "plain config key",
                               it->second.secret ? "secret" : "config"));
      }
      if (it != now.end() && !ed.secret && it->second.value == *ed.value) continue;
      if (it == now.end() && now.size() >= engine::kMaxConfigEntries) {
        return err(Errc::failed_precondition,
                   fmt::format("{} in {} has {} config keys and secrets already; at most {}", app,
                               env, now.size(), engine::kMaxConfigEntries));
      }
      auto put = db_.prepare(
          "INSERT INTO config_entries (env, app, key, secret, value, updated_by, updated_at) "
          "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env, app, key) DO UPDATE SET secret = "
          "excluded.secret, value = excluded.value, updated_by = excluded.updated_by, "
          "updated_at = excluded.updated_at");
      if (!put) return put.error();
      put->bind(1, env).bind(2, app).bind(3, ed.key).bind(4, ed.secret).bind(5, *ed.value);
      put->bind(6, actor).bind(7, at);
      if (auto st = put->run(); !st) return st.error();
      cv.changes.push_back(
          {ed.key, ed.secret,
           it == now.end() ? engine::ConfigChangeKind::added : engine::ConfigChangeKind::changed});
      now[ed.key] = ConfigEntry{ed.key, ed.secret, *ed.value, actor, at};
    }
    if (cv.changes.empty()) return cv;
    size_t bytes = 0;
    for (const auto& [k, e] : now)
      bytes += k.size() + e.value.size();
    if (bytes > engine::kMaxConfigBytes) {
      return err(Errc::too_large,
                 fmt::format("the config of {} in {} would take {} bytes; at most {} (keys and "
                             "values together, a secret counting about twice)",
                             app, env, bytes, engine::kMaxConfigBytes));
    }
    ++cv.version;
    auto ins = db_.prepare(
        "INSERT INTO config_versions (env, app, version, changes, actor, at) VALUES (?, ?, ?, ?, "
        "?, ?)");
    if (!ins) return ins.error();
    ins->bind(1, env)
        .bind(2, app)
        .bind(3, cv.version)
        .bind(4, to_json(engine::to_json(cv.changes)));
    ins->bind(5, actor).bind(6, at);
    if (auto st = ins->run(); !st) return st.error();
    return cv;
  }

  static constexpr const char* kAuditColumns =
      "SELECT id, at, actor, token, claimed_user, remote, method, path, action, target, status, "
      "error_code, error, outcome_of, prev_hash, hash FROM audit";

  static AuditRecord audit_row(const Statement& s) {
    AuditRecord a;
    a.id = s.i64(0);
    a.at = s.i64(1);
    a.actor = s.text(2);
    a.token = s.text(3);
    a.claimed_user = s.text(4);
    a.remote = s.text(5);
    a.method = s.text(6);
    a.path = s.text(7);
    a.action = s.text(8);
    a.target = s.text(9);
    a.status = static_cast<int>(s.i64(10));
    a.error_code = s.text(11);
    a.error = s.text(12);
    a.outcome_of = s.i64(13);
    a.prev_hash = s.text(14);
    a.hash = s.text(15);
    return a;
  }

  static Error no_audit_key() {
    return err(Errc::failed_precondition,
               "the audit log has no key (DATA_DIR/audit.key): nothing can be appended or checked");
  }

  // The id and hash of the newest row ({0, ""} for an empty log).
  Result<ChainMark> last_audit_row() {
    auto s = db_.prepare("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1");
    if (!s) return s.error();
    auto row = s->step();
    if (!row) return row.error();
    return *row ? ChainMark{s->i64(0), s->text(1)} : ChainMark{};
  }

  // What the next row chains to: the head record when its MAC verifies, else the newest row (a
  // log whose head record is missing or forged: verify_audit reports it).
  Result<ChainMark> chain_head() {
    auto text = get_meta(kHeadKey);
    if (!text) return text.error();
    if (*text) {
      if (auto mark = parse_mark(*audit_key_, kHeadLabel, **text)) return *mark;
    }
    return last_audit_row();
  }

  std::optional<SecretKey> audit_key_;
  std::optional<ChainMark> audit_head_;  // of the newest row, once read

  static constexpr const char* kFreezeColumns =
      "SELECT id, env, app, until, reason, created_by, created_at, lifted_by, lifted_at FROM "
      "freezes";

  static engine::Freeze freeze_row(const Statement& s) {
    engine::Freeze f;
    f.id = s.i64(0);
    f.env = s.text(1);
    f.app = s.text(2);
    f.until = s.i64(3);
    f.reason = s.text(4);
    f.created_by = s.text(5);
    f.created_at = s.i64(6);
    f.lifted_by = s.text(7);
    f.lifted_at = s.i64(8);
    return f;
  }

  // `columns` (a SELECT ... FROM table with env and id) of one environment ("" = all), newest
  // first, older than `before_id` (when > 0), at most `limit`.
  Result<Statement> newest_first(const char* columns, const std::string& env, int64_t before_id,
                                 int limit) {
    std::string sql = std::string(columns) + " WHERE 1 = 1";
    if (!env.empty()) sql += " AND env = ?1";
    if (before_id > 0) sql += " AND id < ?2";
    sql += " ORDER BY id DESC LIMIT ?3";
    auto s = db_.prepare(sql);
    if (!s) return s.error();
    if (!env.empty()) s->bind(1, env);
    if (before_id > 0) s->bind(2, before_id);
    s->bind(3, static_cast<int64_t>(limit));
    return s;
  }

  // The first column of every row of `sql` (no parameters), as integers.
  Result<std::vector<int64_t>> int_column(const std::string& sql) {
    auto s = db_.prepare(sql);
    if (!s) return s.error();
    std::vector<int64_t> out;
    for (;;) {
      auto row = s->step();
      if (!row) return row.error();
      if (!*row) break;
      out.push_back(s->i64(0));
    }
    return out;
  }

  static constexpr const char* kPlanColumns =
      "SELECT id, env, spec, state, current_stage, stages, rollbacks, actor, aborted_by, reason, "
      "waiting, gate, resume_at, log, created_at, finished_at FROM plans";

  // A plans row as the plan's JSON, read back with plan_from_json.
  static Result<engine::DeployPlan> plan_row(const Statement& s) {
    json::object o{{"id", s.i64(0)},
                   {"env", s.text(1)},
                   {"state", s.text(3)},
                   {"current_stage", s.i64(4)},
                   {"actor", s.text(7)},
                   {"aborted_by", s.text(8)},
                   {"reason", s.text(9)},
                   {"waiting", s.text(10)},
                   {"gate", s.text(11)},
                   {"resume_at", format_time(s.i64(12))},
                   {"started_at", format_time(s.i64(14))},
                   {"finished_at", format_time(s.i64(15))}};
    for (auto [key, column] :
         {std::pair{"spec", 2}, {"stages", 5}, {"rollbacks", 6}, {"log", 13}}) {
      auto v = parse_json(s.text(column), "stored plan");
      if (!v) return v.error();
      o[key] = std::move(*v);
    }
    return engine::plan_from_json(o);
  }

  static constexpr const char* kRunColumns =
      "SELECT id, env, selector, argv, batch, timeout_ms, actor, state, created_at, finished_at, "
      "batches, current_batch, finished_nodes, claimed_user FROM runs";

  static Run run_row(const Statement& s) {
    Run r;
    r.id = s.i64(0);
    r.env = s.text(1);
    r.selector = s.text(2);
    if (auto v = parse_json(s.text(3), "argv"); v && v->is_array()) {
      for (const auto& a : v->get_array()) {
        if (a.is_string()) r.argv.emplace_back(a.get_string());
      }
    }
    if (auto b = engine::BatchSize::parse(s.text(4))) r.batch = *b;
    r.timeout = Millis(s.i64(5));
    r.actor = s.text(6);
    r.state = engine::run_state_from_name(s.text(7)).value_or(engine::RunState::failed);
    r.created_at = s.i64(8);
    r.finished_at = s.i64(9);
    r.batches = static_cast<int>(s.i64(10));
    r.current_batch = static_cast<int>(s.i64(11));
    r.finished_nodes = s.i64(12);
    r.claimed_user = s.text(13);
    return r;
  }

  // The nodes of `r`, in wave and name order; their output only `with_output`.
  Status load_run_nodes(Run& r, bool with_output) {
    auto n = db_.prepare(
        "SELECT node, zone, batch, status, exit_code, signal, timed_out, CASE WHEN ?2 THEN output "
        "ELSE '' END, reason, started_at, duration_ms, seq FROM run_nodes WHERE run_id = ?1 ORDER "
        "BY batch, node");
    if (!n) return n.error();
    n->bind(1, r.id).bind(2, with_output);
    for (;;) {
      auto row = n->step();
      if (!row) return row.error();
      if (!*row) break;
      RunNode node;
      node.node = n->text(0);
      node.zone = n->text(1);
      node.batch = static_cast<int>(n->i64(2));
      node.status =
          engine::run_node_status_from_name(n->text(3)).value_or(engine::RunNodeStatus::failed);
      node.exit_code = static_cast<int>(n->i64(4));
      node.signal = static_cast<int>(n->i64(5));
      node.timed_out = n->i64(6) != 0;
      node.output = n->text(7);
      node.reason = n->text(8);
      node.started_at = n->i64(9);
      node.duration_ms = n->i64(10);
      node.seq = n->i64(11);
      r.nodes.push_back(std::move(node));
    }
    return {};
  }

  static constexpr const char* kDeployColumns =
      "SELECT id, kind, app, version, env, selector, strategy, batch, max_failures, state, phase, "
      "reason, actor, aborted_by, started_at, finished_at, batches, current_batch, forced_freeze, "
      "options FROM deploys";

  static ArtifactRecord artifact_row(const Statement& s) {
    return ArtifactRecord{s.text(0), s.text(1), s.text(2), static_cast<uint64_t>(s.i64(3)),
                          s.text(4), s.text(5), s.i64(6),  s.text(7)};
  }

  static Deploy deploy_row(const Statement& s) {
    Deploy d;
    d.id = s.i64(0);
    d.kind = engine::deploy_kind_from_name(s.text(1)).value_or(engine::DeployKind::deploy);
    d.app = s.text(2);
    d.version = s.text(3);
    d.env = s.text(4);
    d.selector = s.text(5);
    d.strategy = s.text(6);
    if (auto b = engine::BatchSize::parse(s.text(7))) d.batch = *b;
    d.max_failures = static_cast<int>(s.i64(8));
    d.state = engine::deploy_state_from_name(s.text(9)).value_or(engine::DeployState::failed);
    d.phase = s.text(10) == "revert" ? engine::Phase::revert : engine::Phase::forward;
    d.reason = s.text(11);
    d.actor = s.text(12);
    d.aborted_by = s.text(13);
    d.created_at = s.i64(14);
    d.finished_at = s.i64(15);
    d.batches = static_cast<int>(s.i64(16));
    d.current_batch = static_cast<int>(s.i64(17));
    d.forced_freeze = s.text(18);
    options_from_json(s.text(19), d);
    return d;
  }

  std::string path_;
  Database db_;
};

}  // namespace

std::unique_ptr<Store> make_sqlite_store(std::string path) {
  return std::make_unique<SqliteStore>(std::move(path));
}

}  // namespace slipway::store
