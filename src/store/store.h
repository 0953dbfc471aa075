// The server's persistent state behind one interface (SQLite now; PostgreSQL later): artifacts,
// nodes, deploys with their per-node progress and steps, ad-hoc runs with each node's outcome,
// deploy plans (ordered stages), and small settings.
//
// Thread-safety: none. The server owns one Store and uses it only from its database thread
// (see DbExecutor).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/secret_box.h"
#include "engine/config.h"
#include "engine/deploy.h"
#include "engine/desired.h"
#include "engine/freeze.h"
#include "engine/plan.h"
#include "engine/run.h"
#include "inventory/node.h"

namespace slipway::store {

struct ArtifactRecord {
  std::string app;
  std::string version;
  std::string sha256;
  uint64_t size = 0;
  std::string manifest_json;
  std::string pushed_by;  // the token's name
  TimeMs created_at = 0;
  std::string claimed_user{};  // the user the client named (X-Slipway-User), "" for none; schema 12
};

// A node's enrollment (schema 9): the SHA-256 (hex) of the credential the server gave its agent.
// A revoked node has an empty hash and revoked_at set; its name never enrolls again.
// Schema 11: what the node may claim in its hello, fixed at enrollment (changed only by
// `slipway nodes move`): its environment ("" = not bound yet: enrolled before schema 11 and not
// seen since) and the roles it may have; the join token that enrolled it ("default": the
// server's DATA_DIR/join.token); whether it waits for an admin's approval.
struct NodeCredential {
  std::string node;
  std::string hash;
  TimeMs enrolled_at = 0;
  TimeMs revoked_at = 0;
  std::string revoked_by;
  std::string env;
  std::vector<std::string> roles;
  std::string join_token;
  bool pending = false;
  std::string approved_by;
  TimeMs approved_at = 0;
};

// A join token (schema 11): what enrolls new nodes into one environment, with the roles they may
// claim ("" = any), until it expires, is used `max_uses` times or is revoked. Only the SHA-256
// of the secret is kept. With `approve`, the nodes it enrolls wait (pending) for an admin.
struct JoinTokenRecord {
  int64_t id = 0;
  std::string name;
  std::string hash;
  std::string env;
  std::vector<std::string> roles;  // empty = any
  bool approve = false;
  int64_t max_uses = 0;  // 0 = unlimited
  int64_t uses = 0;      // enrollments so far
  std::string created_by;
  TimeMs created_at = 0;
  TimeMs expires_at = 0;  // 0 = never
  std::string revoked_by;
  TimeMs revoked_at = 0;  // 0 = not revoked
  TimeMs last_used = 0;   // the last enrollment
};

// An environment's settings (schema 11): a protected environment accepts new nodes only through
// join tokens scoped to it. Environments without a record are not protected.
struct EnvRecord {
  std::string name;
  bool is_protected = false;
  std::string changed_by;
  TimeMs changed_at = 0;
};

struct DeployFilter {
  std::string app;  // "" = any
  std::string env;  // "" = any
  std::optional<engine::DeployState> state;
  int limit = 50;
  engine::DeployId before_id = 0;  // 0 = newest first from the top
  std::string node;                // "" = any; else only deploys that targeted this node
  int64_t since_ms = 0;            // 0 = any; else only deploys started at or after (epoch ms)
  // With each deploy's nodes (name, status, batch: what listings count); off when only the
  // deploys themselves are wanted.
  bool with_nodes = true;
};

struct RunFilter {
  std::string env;  // "" = any
  int limit = 50;
  engine::RunId before_id = 0;  // 0 = newest first from the top
};

struct PlanFilter {
  std::string env;  // "" = any
  int limit = 50;
  engine::PlanId before_id = 0;  // 0 = newest first from the top
};

// One key of an (env, app) config. `value` is the plain value, or for a secret its sealed form
// (common/secret_box.h): the store never sees a secret in clear.
struct ConfigEntry {
  std::string key;
  bool secret = false;
  std::string value;
  std::string updated_by;
  TimeMs updated_at = 0;
};

// The current config of an (env, app): its version (0 = never set) and keys, sorted.
struct ConfigState {
  int64_t version = 0;
  std::vector<ConfigEntry> entries;
};

// A set (value present) or an unset (std::nullopt) of one key.
struct ConfigEdit {
  std::string key;
  bool secret = false;
  std::optional<std::string> value;
};

// An API token (schema 8). Only the SHA-256 of the secret is kept.
struct TokenRecord {
  int64_t id = 0;
  std::string name;
  std::string hash;               // lower-case hex SHA-256 of the secret
  std::string role;               // admin | deployer | viewer
  std::vector<std::string> envs;  // empty = every environment
  std::vector<std::string> apps;  // empty = every app
  std::string created_by;
  TimeMs created_at = 0;
  TimeMs expires_at = 0;  // 0 = never
  std::string revoked_by;
  TimeMs revoked_at = 0;  // 0 = not revoked
  TimeMs last_used = 0;   // 0 = never (saved now and then, not on every request)
};

// One row of the audit log (schema 8; claimed_user and outcome_of schema 12): append-only, each
// row chained to the previous one. A request that changes something has two rows: its entry,
// appended before its handler runs (status 0), and its outcome (outcome_of = the entry's id),
// appended after. A request refused before its handler (401, 403, 413) has one row with its
// status. Rows appended with the audit key hold hash = HMAC-SHA256(audit key, prev_hash and the
// row's fields) (audit_mac); rows from before the key (a server of an older version) hold
// SHA-256(prev_hash, the row's fields but claimed_user and outcome_of) (legacy_audit_hash).
struct AuditRecord {
  int64_t id = 0;
  TimeMs at = 0;
  std::string actor;         // who: the token's name ("admin" for the bootstrap token)
  std::string token;         // the token's name (authenticated), "" for none
  std::string claimed_user;  // the user the client named (X-Slipway-User), never trusted
  std::string remote;        // the peer address
  std::string method;
  std::string path;
  std::string action;  // the route's action label: deploy.create
  std::string target;  // path parameters and the env/app it was authorized for; never bodies
  int status = 0;      // HTTP status of the answer; 0 in an entry whose outcome comes later
  std::string error_code;
  std::string error;
  int64_t outcome_of = 0;  // 0, or the id of the entry whose outcome this row is
  std::string prev_hash;
  std::string hash;
};

// What verify_audit found.
struct AuditVerdict {
  int64_t rows = 0;         // rows in the log
  int64_t legacy_rows = 0;  // of them, rows from before the audit key (a plain SHA-256 chain)
  int64_t bad_row = 0;      // the first row that fails (or is missing); 0 when the log is intact
  std::string why;          // what is wrong with it
  bool intact() const { return bad_row == 0; }
};

// A notification hook (schema 10). `secret` is the hook's credential sealed with the server's
// secret key (common/secret_box.h): a webhook's signing secret, a Slack hook's URL (which is
// itself a credential); "" for e-mail. The store never sees it in clear.
struct NotifyHookRecord {
  int64_t id = 0;
  std::string name;
  std::string kind;    // webhook | slack | email
  std::string target;  // webhook: the URL; slack: the URL without path; email: the address
  std::vector<std::string> events;  // deploy.started, ..., drift
  std::string env;                  // "" = every environment
  std::string app;                  // "" = every app
  std::string secret;               // sealed
  std::string created_by;
  TimeMs created_at = 0;
};

// One delivery attempt of a notification (schema 10): the log is append-only.
struct NotifyDeliveryRecord {
  int64_t id = 0;
  std::string hook;
  std::string delivery;  // the delivery's id (the same for each attempt of one notification)
  std::string event;
  int attempt = 1;
  bool ok = false;
  int status_code = 0;  // HTTP status (SMTP reply code for e-mail); 0 when none came
  std::string error;    // the transport's error ("" when a status came)
  int64_t duration_ms = 0;
  TimeMs at = 0;
};

// The hash of an audit row from before the audit key: SHA-256 of prev_hash and the row's fields
// (id included, claimed_user and outcome_of not), hex. What a server of schema 8 to 11 wrote.
std::string legacy_audit_hash(const AuditRecord& r);
// The hash of an audit row under the audit key: HMAC-SHA256 of prev_hash and every field of the
// row (id included), hex. Recomputing it needs the key, which is kept outside the database.
std::string audit_mac(const SecretKey& key, const AuditRecord& r);

// A value sealed with the secrets key (common/secret_box.h), where it lives: a secret of
// config_entries (env, app, key) or the credential of a notification hook (hook = its name).
struct SealedValue {
  enum class Kind { config, notify_hook };
  Kind kind = Kind::config;
  std::string env;
  std::string app;
  std::string key;
  std::string hook;
  std::string sealed;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens the database and brings its schema up to date.
  virtual Status open() = 0;
  virtual Status begin() = 0;
  virtual Status commit() = 0;
  virtual Status rollback() = 0;
  // The database thread runs each batch of jobs in one transaction, committed after the batch
  // (DbExecutor). A job that must know its writes are durable before it answers (an audit entry
  // before the action it records, a key rotation before the key files change) calls
  // commit_now(): it commits what the batch wrote so far and begins the next transaction (when
  // the commit fails, everything since the last commit is rolled back: as when the batch's own
  // commit fails). Outside a transaction (each statement commits itself) it does nothing.
  virtual Status commit_now() = 0;

  virtual Result<std::optional<std::string>> get_meta(const std::string& key) = 0;
  virtual Status set_meta(const std::string& key, const std::string& value) = 0;

  virtual Result<std::optional<ArtifactRecord>> get_artifact(const std::string& app,
                                                             const std::string& version) = 0;
  // conflict when (app, version) exists.
  virtual Status insert_artifact(const ArtifactRecord& a) = 0;
  virtual Result<std::vector<ArtifactRecord>> list_artifacts(const std::string& app) = 0;
  virtual Result<std::vector<std::string>> list_apps() = 0;
  virtual Result<bool> blob_referenced(const std::string& sha256) = 0;

  virtual Status upsert_node(const inventory::Node& n) = 0;
  virtual Status save_last_seen(const std::vector<std::pair<std::string, TimeMs>>& seen) = 0;
  virtual Result<std::vector<inventory::Node>> load_nodes() = 0;

  virtual Status save_deploy(const engine::Deploy& d) = 0;  // header and all nodes
  virtual Status save_deploy_node(engine::DeployId id, const engine::NodeProgress& n) = 0;
  virtual Status save_step(const engine::StepRecord& s) = 0;
  virtual Status save_transition(engine::DeployId id, const engine::Transition& t) = 0;
  virtual Result<std::optional<engine::Deploy>> get_deploy(engine::DeployId id) = 0;
  virtual Result<std::vector<engine::Deploy>> list_deploys(const DeployFilter& f) = 0;
  virtual Result<std::vector<engine::StepRecord>> list_steps(engine::DeployId id) = 0;
  virtual Result<engine::DeployId> max_deploy_id() = 0;
  // Marks every running deploy failed with `reason` (the server died while they ran); returns
  // the ids.
  virtual Result<std::vector<engine::DeployId>> fail_running_deploys(const std::string& reason,
                                                                     TimeMs now) = 0;

  // Desired state (schema 5): upserts each record by (env, app, node, selector); loads them all.
  virtual Status save_desired(const std::vector<engine::DesiredRecord>& records) = 0;
  virtual Result<std::vector<engine::DesiredRecord>> load_desired() = 0;
  // Quarantines (schema 5), kept as a log: who lifted each and when. quarantine_node records one
  // unless the node has one in force already; release_node lifts the one in force (false when
  // there was none).
  virtual Status quarantine_node(const std::string& node, const inventory::Quarantine& q) = 0;
  virtual Result<bool> release_node(const std::string& node, const std::string& by, TimeMs at) = 0;
  // node -> its quarantine in force.
  virtual Result<std::map<std::string, inventory::Quarantine>> active_quarantines() = 0;

  // Freeze windows. insert_freeze returns the new id (f.id is ignored).
  virtual Result<engine::FreezeId> insert_freeze(const engine::Freeze& f) = 0;
  virtual Result<std::optional<engine::Freeze>> get_freeze(engine::FreezeId id) = 0;
  // The freezes active at `now` (neither lifted nor over), oldest first; with `all`, every
  // freeze ever set, newest first, at most `limit`.
  virtual Result<std::vector<engine::Freeze>> list_freezes(TimeMs now, bool all,
                                                           int limit = 1000) = 0;
  // Records that `by` lifted the freeze at `at` (when it was not lifted already).
  virtual Status lift_freeze(engine::FreezeId id, const std::string& by, TimeMs at) = 0;
  // Ad-hoc runs.
  virtual Status save_run(const engine::Run& r, bool with_nodes) = 0;  // header (and nodes)
  virtual Status save_run_node(engine::RunId id, const engine::RunNode& n) = 0;
  virtual Result<std::optional<engine::Run>> get_run(engine::RunId id) = 0;
  // Newest first; each run with its nodes' names and statuses (for counts), not their output.
  virtual Result<std::vector<engine::Run>> list_runs(const RunFilter& f) = 0;
  virtual Result<engine::RunId> max_run_id() = 0;
  // Marks every running run failed, and its unfinished nodes with `reason`; returns the ids.
  virtual Result<std::vector<engine::RunId>> fail_running_runs(const std::string& reason,
                                                               TimeMs now) = 0;
  // Node credentials (schema 9). enroll_node records a node's first credential (c.node, hash,
  // enrolled_at, env, roles, join_token, pending): false when the name has a record already
  // (enrolled or revoked). With a join token (its id; 0 for the server's default join token) the
  // same step counts one use of it, and refuses (failed_precondition, nothing recorded) when it is
  // revoked, expired at c.enrolled_at or used up: the store, not a cache, has the last word.
  // revoke_node revokes a name for good, enrolled or not (a second revoke keeps the first's time
  // and author).
  virtual Result<std::optional<NodeCredential>> get_node_credential(const std::string& node) = 0;
  virtual Result<bool> enroll_node(const NodeCredential& c, int64_t join_token_id = 0) = 0;
  virtual Status revoke_node(const std::string& node, const std::string& by, TimeMs at) = 0;
  virtual Result<std::vector<NodeCredential>> revoked_nodes() = 0;
  // Every record, revoked ones too, by name (what the server's credential cache starts from).
  virtual Result<std::vector<NodeCredential>> list_node_credentials() = 0;
  // Binds an enrolled node to `env` and, when given, `roles` (slipway nodes move; and the first
  // hello of a node enrolled before schema 11). False when the name has no record or is revoked.
  virtual Result<bool> move_node(const std::string& node, const std::string& env,
                                 const std::optional<std::vector<std::string>>& roles) = 0;
  // Lifts a pending node's wait: false when the name is not pending (unknown, revoked, approved).
  virtual Result<bool> approve_node(const std::string& node, const std::string& by, TimeMs at) = 0;

  // Join tokens (schema 11). insert_join_token returns the new id (t.id, uses and last_used are
  // ignored); conflict when the name is taken (also by a revoked token: names are never reused).
  // revoke_join_token: false when there is no such token or it was revoked already.
  virtual Result<int64_t> insert_join_token(const JoinTokenRecord& t) = 0;
  virtual Result<std::vector<JoinTokenRecord>> list_join_tokens() = 0;  // oldest first
  virtual Result<bool> revoke_join_token(int64_t id, const std::string& by, TimeMs at) = 0;

  // Environments' settings (schema 11), by name.
  virtual Result<std::vector<EnvRecord>> list_environments() = 0;
  virtual Status save_environment(const EnvRecord& e) = 0;  // insert or replace
  // Deploy plans (ordered stages): the whole record (insert or update).
  virtual Status save_plan(const engine::DeployPlan& p) = 0;
  virtual Result<std::optional<engine::DeployPlan>> get_plan(engine::PlanId id) = 0;
  // Newest first, whole records.
  virtual Result<std::vector<engine::DeployPlan>> list_plans(const PlanFilter& f) = 0;
  virtual Result<engine::PlanId> max_plan_id() = 0;
  // Marks every plan that was running, waiting or rolling back failed with `reason`; returns
  // the ids.
  virtual Result<std::vector<engine::PlanId>> fail_running_plans(const std::string& reason,
                                                                 TimeMs now) = 0;

  // Per-environment config and secrets (schema 7).
  virtual Result<ConfigState> get_config(const std::string& env, const std::string& app) = 0;
  // Applies `edits` atomically and records them as the next version (with which keys were
  // added, changed or removed, and by whom); returns that version record (version unchanged and
  // no changes when nothing changed: a plain value set to what it was). Errors: not_found when an
  // unset names a key that is not there (of that kind), conflict when a set would turn a secret
  // into plain config or back (unset it first), failed_precondition beyond kMaxConfigEntries keys.
  virtual Result<engine::ConfigVersion> change_config(const std::string& env,
                                                      const std::string& app,
                                                      const std::vector<ConfigEdit>& edits,
                                                      const std::string& actor, TimeMs at) = 0;
  // The versions in (after, upto], oldest first.
  virtual Result<std::vector<engine::ConfigVersion>> config_versions(const std::string& env,
                                                                     const std::string& app,
                                                                     int64_t after,
                                                                     int64_t upto) = 0;

  // API tokens (schema 8). insert_token returns the new id (t.id is ignored); conflict when the
  // name is taken (also by a revoked token: names are never reused).
  virtual Result<int64_t> insert_token(const TokenRecord& t) = 0;
  virtual Result<std::vector<TokenRecord>> list_tokens() = 0;  // oldest first
  // Marks it revoked; false when there is no such token or it was revoked already.
  virtual Result<bool> revoke_token(int64_t id, const std::string& by, TimeMs at) = 0;
  virtual Status save_token_use(const std::vector<std::pair<int64_t, TimeMs>>& used) = 0;

  // The audit log (schema 8): append and read only; the table's triggers refuse UPDATE and
  // DELETE.
  //
  // The chain is keyed (schema 12): set_audit_key gives the key of DATA/audit.key; without it
  // append_audit refuses (failed_precondition). The meta table holds two records, each with an
  // HMAC under the key: "audit/head" (the id and hash of the newest row: rows cut from the end
  // show) and "audit/legacy" (the id and hash of the last row from before the key: only rows up
  // to it may be a plain SHA-256 chain, so nobody without the key can turn keyed rows into
  // "legacy" ones, and deleting the record makes the legacy rows fail).
  virtual void set_audit_key(const SecretKey& key) = 0;
  // Records the rows in the log now as legacy (the plain chain of a server from before the key)
  // and the head. Call it once, when the audit key was just made (DATA/audit.key did not exist):
  // that, not the database, says the rows are from before the key. Needs the key.
  virtual Status adopt_legacy_audit() = 0;
  // Appends a row: fills in id, prev_hash and hash (chained to the head record, so that rows cut
  // from the end still show after the next append) and returns the id. Rows and head in one
  // savepoint: both or neither.
  virtual Result<int64_t> append_audit(const AuditRecord& r) = 0;
  // The newest `limit` entries at or after `since`, oldest first: one per request, with the
  // status, error and target of its outcome row when there is one (status 0 when its outcome was
  // never recorded: the server stopped in between).
  virtual Result<std::vector<AuditRecord>> list_audit(TimeMs since, int limit) = 0;
  // Checks every row, the legacy record and the head record: the first row that fails and why.
  virtual Result<AuditVerdict> verify_audit() = 0;

  // Every sealed value of the database (secrets of config_entries, notification hooks' secrets).
  virtual Result<std::vector<SealedValue>> list_sealed_values() = 0;
  // Replaces the sealed text of each value (its place unchanged) and sets the meta records in
  // `meta` (what says which key they are sealed with), all or none (a savepoint); not_found when
  // a place does not exist. Durable when the transaction it runs in commits (commit_now).
  virtual Status replace_sealed_values(const std::vector<SealedValue>& values,
                                       const std::map<std::string, std::string>& meta) = 0;

  // Notification hooks and their delivery log (schema 10). insert_notify_hook returns the new id;
  // conflict when the name is taken. delete_notify_hook: false when there is no such hook.
  virtual Result<int64_t> insert_notify_hook(const NotifyHookRecord& h) = 0;
  virtual Result<std::vector<NotifyHookRecord>> list_notify_hooks() = 0;  // by name
  virtual Result<bool> delete_notify_hook(const std::string& name) = 0;
  virtual Status append_notify_delivery(const NotifyDeliveryRecord& r) = 0;
  // The newest `limit` attempts (of `hook`, or of every hook for ""), newest first.
  virtual Result<std::vector<NotifyDeliveryRecord>> list_notify_deliveries(const std::string& hook,
                                                                           int limit) = 0;
};

std::unique_ptr<Store> make_sqlite_store(std::string path);

}  // namespace slipway::store
