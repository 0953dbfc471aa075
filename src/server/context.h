// The state one server process shares between its parts, and the two ways handlers leave the I/O
// thread: db_call (the database thread) and work_call (the worker pool). Internal to the server.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "artifacts/blob_store.h"
#include "artifacts/manifest.h"
#include "common/secret_box.h"
#include "engine/engine.h"
#include "engine/plans.h"
#include "engine/runs.h"
#include "inventory/inventory.h"
#include "server/enrollment.h"
#include "server/http.h"
#include "server/server.h"
#include "server/tokens.h"
#include "store/db_executor.h"
#include "store/latest_writes.h"

namespace boost::asio::ssl {
class context;
}

namespace slipway::server {

namespace asio = boost::asio;

class AgentGateway;
class Convergence;
class Watchers;
namespace notify {
class Notifier;
}

struct Stats {
  std::atomic<uint64_t> artifact_downloads{0};  // blob GETs that sent bytes
  std::atomic<uint64_t> bytes_served{0};
  std::atomic<uint64_t> http_requests{0};
};

class ServerContext {
 public:
  ServerContext(ServerOptions options, asio::io_context& io);
  ~ServerContext();

  ServerOptions opts;
  asio::io_context& ioc;
  asio::thread_pool workers;
  std::unique_ptr<store::DbExecutor> db;
  // Nodes' records waiting to be written, the newest of each node only (save_node).
  std::unique_ptr<store::LatestWrites<inventory::Node>> node_writes;
  artifacts::BlobStore blobs;
  inventory::Inventory inventory;
  std::unique_ptr<AgentGateway> gateway;
  std::unique_ptr<Watchers> watchers;
  std::unique_ptr<Convergence> convergence;  // desired state; the engine's event sink
  std::unique_ptr<engine::DeployJournal> journal;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::RunJournal> run_journal;
  std::unique_ptr<engine::RunManager> runs;  // ad-hoc commands (slipway run)
  // Where the engine's events go: the watchers, and the plans (which learn of their deploys'
  // ends there).
  std::unique_ptr<engine::EventSink> events;
  std::unique_ptr<engine::PlanDriver> plan_driver;
  std::unique_ptr<engine::PlanManager> plans;  // deploy plans (slipway deploy -f)
  Router router;
  // Seals and opens secret config values and notification hooks' credentials
  // (DATA_DIR/secrets.key); set before the routes run. A rotation replaces it on the database
  // thread: after start, use it only there (inside db_call jobs), never on the I/O thread.
  std::optional<SecretKey> secret_key;
  std::string admin_token;
  std::string join_token;  // the secret of DATA_DIR/join.token (the default join token)
  // Under TLS, the CA fingerprint join tokens carry (sha256:HEX, see net/tls.h); "" otherwise.
  std::string ca_pin;
  std::string url;  // where this server listens, e.g. http://127.0.0.1:7700 or https://...
  // Set when the listener speaks TLS (HTTPS and WSS).
  std::shared_ptr<boost::asio::ssl::context> tls;
  // Open connections per remote address (the listener's bound).
  std::map<std::string, int> connections_by_address;
  Stats stats;
  // Webhooks, Slack and e-mail (server/notifier.h); set by start_notifications.
  std::unique_ptr<notify::Notifier> notifier;

  // API tokens by hash (loaded at start, kept up to date by the token routes).
  TokenCache tokens;
  // Join tokens, node credentials and protected environments (loaded at start, kept up to date
  // by the gateway and the enrollment routes).
  Enrollment enrollment;

  // Who is calling, from the Authorization header: the bootstrap admin token (the root,
  // break-glass token: an unscoped admin), a join token (the default one, or one of
  // `slipway join-token create`), a node's credential, or an API token (looked up by its SHA-256
  // in memory). A principal of kind none when there is no bearer token; unauthenticated for an
  // unknown, expired, used-up or revoked one, with the reason.
  Result<Principal> authenticate(const std::string& authorization);

  // Runs f(Store&) on the database thread and resumes the caller on the I/O thread with its
  // result. Everything posted before runs first, so a read sees every earlier write. When the
  // database queue is above its mark, the job waits for room before it is queued (the caller
  // stays suspended; the I/O thread goes on): db_call is how a handler waits for the database,
  // and its back-pressure (store/db_executor.h).
  // Never write the lambda inside the co_await expression: GCC 12 destroys a lambda temporary
  // of a co_await expression twice (a double free with captures such as strings). Name it first:
  //   auto job = [id](store::Store& s) { return s.get_deploy(id); };
  //   auto d = co_await ctx.db_call(job);
  template <class F>
  asio::awaitable<std::invoke_result_t<F, store::Store&>> db_call(F f) {
    using R = std::invoke_result_t<F, store::Store&>;
    return asio::async_initiate<const asio::use_awaitable_t<>, void(R)>(
        [this](auto handler, F fn) {
          auto ex = asio::get_associated_executor(handler, ioc.get_executor());
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          if (journal) journal->flush();  // buffered deploy progress first, so it is seen
          // Called at once when there is room, else on the database thread once there is.
          db->when_room([db = db.get(), ex, h, fn = std::move(fn)]() mutable {
            db->post([ex, h, fn = std::move(fn)](store::Store& s) mutable {
              auto r = std::make_shared<R>(fn(s));
              asio::post(ex, [h, r]() mutable { std::move (*h)(std::move(*r)); });
            });
          });
        },
        asio::use_awaitable, std::move(f));
  }

  // Resumes once the database queue has room for one more job: at once (one trip through the
  // I/O thread's queue) when it has. For producers that post fire-and-forget writes and can wait
  // before they produce (the agent gateway's read loop, the listener).
  asio::awaitable<void> db_room() {
    return asio::async_initiate<const asio::use_awaitable_t<>, void()>(
        [this](auto handler) {
          auto ex = asio::get_associated_executor(handler, ioc.get_executor());
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          db->when_room([ex, h] { asio::post(ex, [h]() mutable { std::move (*h)(); }); });
        },
        asio::use_awaitable);
  }

  // Runs f() on the worker pool (hashing, archive inspection) and resumes on the I/O thread.
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> work_call(F f) {
    using R = std::invoke_result_t<F>;
    return asio::async_initiate<const asio::use_awaitable_t<>, void(R)>(
        [this](auto handler, F fn) {
          auto ex = asio::get_associated_executor(handler, ioc.get_executor());
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          asio::post(workers, [ex, h, fn = std::move(fn)]() mutable {
            auto r = std::make_shared<R>(fn());
            asio::post(ex, [h, r]() mutable { std::move (*h)(std::move(*r)); });
          });
        },
        asio::use_awaitable, std::move(f));
  }

  // Persists a node's current record (fire and forget, on the database thread): a copy waits in
  // node_writes, replacing the node's earlier copy if that one is not written yet.
  void save_node(const std::string& name);
};

// The audit log's one writer (audit.cpp). Every request that changes something (every method
// but GET and HEAD) is recorded: who (the token's name, and the user the client claims to be),
// what (the route's action, its path parameters and the env/app authorize() was asked about;
// never the body), when, from where and the outcome.
//
// Sets req.actor to the authenticated token's name and req.claimed_user to X-Slipway-User (when
// it is a short line of printable text): a client names a user, it never chooses the actor.
void set_actor(Request& req);
// Runs the route's handler. An audited request is fail-closed (as Vault refuses a request it
// cannot log): its entry is appended first, awaited on the database thread, and when that fails
// the handler does not run and the answer is 503 saying why; after the handler its outcome is
// appended as a second row linked to the entry (fire and forget: the action happened). An
// exception from the handler becomes a 500.
asio::awaitable<Response> run_audited(ServerContext& ctx, Request& req, const Route& route);
// A request refused before its handler (401, 403, 413): one row with its outcome (fire and
// forget: nothing was done).
void audit_refusal(ServerContext& ctx, const Request& req, const Route& route, const Response& res);

// At start, on the database thread once the store is open (DATA_DIR = ctx.opts.data_dir):
// finishes or discards a key rotation a stop interrupted, loads DATA_DIR/secrets.key (made on the
// first start) into ctx.secret_key and checks it against the database (secrets_key.cpp).
Status load_secrets_key(ServerContext& ctx, store::Store& s);
// POST /api/v1/secrets/rotate-key (secrets_key.cpp).
void register_secret_key_routes(ServerContext& ctx);
// Where a sealed value belongs, the associated data it is sealed with: "ENV/APP/KEY" for a config
// secret (api_config.cpp), "notify/NAME" for a notification hook's credential (api_notify.cpp). A
// sealed value moved to another place does not open.
std::string config_secret_place(const std::string& env, const std::string& app,
                                const std::string& key);
std::string notify_secret_place(const std::string& name);
// At start, on the database thread once the store is open: keys the audit chain with
// DATA_DIR/audit.key. When the file does not exist (a new server, or the first start of this
// version), a key is made, the rows already in the log are recorded as legacy (store.h), and only
// then is the file written (audit.cpp).
Status open_audit_log(store::Store& s, const std::filesystem::path& data_dir);
// A node's enrollment, which happens inside the agent WebSocket rather than in a route of its own,
// is audited like a request (action node.enroll: the node, its environment and roles, the join
// token used; `who` is the join token's principal): its entry, committed before the enrollment is
// (fail closed: the gateway refuses an enrollment whose entry cannot be written), then the
// outcome linked to it (fire and forget). audit.cpp.
store::AuditRecord enrollment_audit_entry(const store::NodeCredential& c, const Principal& who,
                                          const std::string& remote);
void record_enrollment_outcome(ServerContext& ctx, store::AuditRecord entry, int64_t entry_id,
                               int status, const std::string& error);

// Registers the API routes (api_*.cpp).
void register_artifact_routes(ServerContext& ctx);
void register_inventory_routes(ServerContext& ctx);
void register_deploy_routes(ServerContext& ctx);
void register_freeze_routes(ServerContext& ctx);
void register_token_routes(ServerContext& ctx);  // tokens, audit, routes (api_tokens.cpp)
// Join tokens, environments (protect), nodes move and approve (api_enrollment.cpp).
void register_enrollment_routes(ServerContext& ctx);

// The scope check of a route that reads deploy `id` (authorize_object with the deploy's env and
// app, looked up): not_found when there is no such deploy, for every caller. A route that acts on
// a deploy checks and acts in one step instead (control_deploy). In api_deploys.cpp.
asio::awaitable<Status> authorize_deploy(ServerContext& ctx, Request& req, engine::DeployId id);

// The freeze check of a deploy of `app` to `env` (rollbacks do not ask): "" when no freeze
// applies; when some do, a failed_precondition error naming them, or with `force` what the
// deploy records as forced through (Deploy::forced_freeze). In api_freezes.cpp.
asio::awaitable<Result<std::string>> freeze_gate(ServerContext& ctx, const std::string& app,
                                                 const std::string& env, bool force);
void register_run_routes(ServerContext& ctx);
void register_lb_routes(ServerContext& ctx);
void register_plan_routes(ServerContext& ctx);
void register_config_routes(ServerContext& ctx);
void register_metrics_routes(ServerContext& ctx);  // delivery metrics (api_metrics.cpp)

// The config of (env, app) as an install sends it: plain values and secrets opened with `key`,
// and its version. On the database thread (api_config.cpp). The result holds secrets in clear:
// never log it.
struct ResolvedConfig {
  int64_t version = 0;
  std::map<std::string, std::string> vars;
};
Result<ResolvedConfig> resolve_config(store::Store& s, const SecretKey& key, const std::string& env,
                                      const std::string& app);
// What changed in the config of a deploy's (env, app) since the previous deploy of it:
// {"previous_deploy", "from_version", "to_version", "changes": [{key, secret, change}]} (names
// only, never values). On the database thread.
Result<json::value> deploy_config_diff(store::Store& s, const engine::Deploy& d);
// What the PlanManager starts its deploys through (api_plans.cpp).
std::unique_ptr<engine::PlanDriver> make_plan_driver(ServerContext& ctx);

// The load-balancer commands of an environment (api_lb.cpp), from what the meta table holds under
// "lb/ENV" ("" = none): used for the apps whose manifest names no drain or undrain.
struct EnvLb {
  std::optional<artifacts::LbCommand> drain;
  std::optional<artifacts::LbCommand> undrain;
  std::string updated_by;
};
Result<EnvLb> env_lb(const std::string& stored);

}  // namespace slipway::server
