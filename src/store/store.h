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
  std::string pushed_by;
  TimeMs created_at = 0;
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

// One entry of the audit log (schema 8): append-only, each row chained to the previous one by
// hash = SHA-256(prev_hash, the row's fields).
struct AuditRecord {
  int64_t id = 0;
  TimeMs at = 0;
  std::string actor;   // who (as the client said: X-Slipway-User, else the token's name)
  std::string token;   // the token's name (authenticated), "" for none
  std::string remote;  // the peer address
  std::string method;
  std::string path;
  std::string action;  // the route's action label: deploy.create
  std::string target;  // path parameters and the env/app it was authorized for; never bodies
  int status = 0;      // HTTP status of the answer
  std::string error_code;
  std::string error;
  std::string prev_hash;
  std::string hash;
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

// The hash of an audit row: SHA-256 of prev_hash and the row's fields (id included), hex.
std::string audit_hash(const AuditRecord& r);

class Store {
 public:
  virtual ~Store() = default;

  // Opens the database and brings its schema up to date.
  virtual Status open() = 0;
  virtual Status begin() = 0;
  virtual Status commit() = 0;
  virtual Status rollback() = 0;

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
  // DELETE. append_audit fills in id, prev_hash and hash and returns the id.
  virtual Result<int64_t> append_audit(const AuditRecord& r) = 0;
  // The newest `limit` entries at or after `since`, oldest first.
  virtual Result<std::vector<AuditRecord>> list_audit(TimeMs since, int limit) = 0;
  // Recomputes the hash chain: 0 when intact, else the id of the first row that does not match.
  virtual Result<int64_t> verify_audit() = 0;

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
