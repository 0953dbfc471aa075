#include "server/server.h"

#include <atomic>
#include <functional>
#include <memory>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/strings.h"
#include "net/io_context.h"
#include "net/tls.h"
#include "net/tls_context.h"
#include "server/agent_gateway.h"
#include "server/console.h"
#include "server/context.h"
#include "server/convergence.h"
#include "server/listener.h"
#include "server/notifier.h"
#include "server/notify_events.h"
#include "server/watchers.h"

namespace slipway::server {

namespace {

// Engine journal: every write goes to the database thread, in order. Writes are buffered and
// handed over together once the I/O thread has run what was ready (one database job, so one
// transaction, per burst of agent reports rather than one per step).
class StoreJournal final : public engine::DeployJournal {
 public:
  StoreJournal(store::DbExecutor& db, asio::io_context& ioc) : db_(db), ioc_(ioc) {}
  void save_deploy(const engine::Deploy& d) override { add(d); }
  void save_node(engine::DeployId id, const engine::NodeProgress& n) override {
    add(NodeWrite{id, n});
  }
  void save_step(const engine::StepRecord& r) override { add(r); }
  void save_transition(engine::DeployId id, const engine::Transition& t) override {
    add(TransitionWrite{id, t});
  }

  // Hands the buffered writes to the database thread now.
  void flush() override {
    flush_posted_ = false;
    if (pending_.empty()) return;
    db_.post([writes = std::move(pending_)](store::Store& s) {
      for (const auto& w : writes) {
        if (const auto* d = std::get_if<engine::Deploy>(&w)) {
          log(s.save_deploy(*d));
        } else if (const auto* n = std::get_if<NodeWrite>(&w)) {
          log(s.save_deploy_node(n->id, n->node));
        } else if (const auto* t = std::get_if<TransitionWrite>(&w)) {
          log(s.save_transition(t->id, t->transition));
        } else {
          log(s.save_step(std::get<engine::StepRecord>(w)));
        }
      }
    });
    pending_.clear();
  }

 private:
  struct NodeWrite {
    engine::DeployId id;
    engine::NodeProgress node;
  };
  struct TransitionWrite {
    engine::DeployId id;
    engine::Transition transition;
  };
  using Write = std::variant<engine::Deploy, NodeWrite, engine::StepRecord, TransitionWrite>;

  void add(Write w) {
    pending_.push_back(std::move(w));
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(ioc_, [this] { flush(); });
    }
  }
  static void log(const Status& st) {
    if (!st) spdlog::error("cannot record deploy progress: {}", st.error().message);
  }
  store::DbExecutor& db_;
  asio::io_context& ioc_;
  std::vector<Write> pending_;
  bool flush_posted_ = false;
};

// Run records go to the database thread as they come: a run writes once per node, when the node
// finishes, and a read (db_call) queued later sees them.
class StoreRunJournal final : public engine::RunJournal {
 public:
  explicit StoreRunJournal(store::DbExecutor& db) : db_(db) {}
  void save_run(const engine::Run& r, bool with_nodes) override {
    db_.post([run = with_nodes ? r : r.header(), with_nodes](store::Store& s) {
      log(s.save_run(run, with_nodes));
    });
  }
  void save_run_node(engine::RunId id, const engine::RunNode& n) override {
    db_.post([id, n](store::Store& s) { log(s.save_run_node(id, n)); });
  }

 private:
  static void log(const Status& st) {
    if (!st) spdlog::error("cannot record run progress: {}", st.error().message);
  }
  store::DbExecutor& db_;
};

// Where the engine's events go: every event to convergence and on to the watchers; the end of
// each deploy also to the plans, whose stages and rollbacks are deploys.
class ServerEvents final : public engine::EventSink {
 public:
  explicit ServerEvents(ServerContext& ctx) : ctx_(ctx) {}
  void on_event(const engine::DeployEvent& e, const engine::Deploy& d) override {
    ctx_.convergence->on_event(e, d);  // which passes every event on to the watchers
    if (e.kind == "deploy.finished" && ctx_.plans) ctx_.plans->on_deploy_finished(d);
    notify_deploy_event(ctx_, e, d);
  }

 private:
  ServerContext& ctx_;
};

// Reads DIR/NAME, or writes a fresh random token there (mode 0600) on first start.
Result<std::string> load_or_create_token(const fs::path& file, bool& created) {
  created = false;
  auto existing = read_file(file, 4096);
  if (existing) {
    std::string t(trim(*existing));
    if (t.size() >= 16) return t;
    return err(Errc::failed_precondition, fmt::format("{} holds no valid token", file.string()));
  }
  if (existing.error().code != Errc::not_found) return existing.error();
  std::string token = "slw_" + random_hex(24);
  if (auto st = write_file_atomic(file, token + "\n", 0600); !st) return st.error();
  created = true;
  return token;
}

}  // namespace

ServerContext::ServerContext(ServerOptions options, asio::io_context& io)
    : opts(std::move(options)),
      ioc(io),
      workers(static_cast<size_t>(std::max(1, opts.worker_threads))),
      blobs(opts.data_dir / "artifacts") {}

ServerContext::~ServerContext() {
  workers.join();
}

Result<Principal> ServerContext::authenticate(const std::string& authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) return Principal{};
  if (authorization.size() <= kBearer.size() ||
      authorization.compare(0, kBearer.size(), kBearer) != 0) {
    return err(Errc::unauthenticated, "the Authorization header must be 'Bearer TOKEN'");
  }
  const std::string_view token = std::string_view(authorization).substr(kBearer.size());
  Principal p;
  if (constant_time_equal(token, admin_token)) {
    // The bootstrap token from DATA_DIR/admin.token: root, unscoped, never expires.
    p.kind = Principal::Kind::token;
    p.role = Role::admin;
    p.name = "admin";
    return p;
  }
  if (constant_time_equal(token, join_token)) {
    p.kind = Principal::Kind::agent;
    p.name = "agent";
    p.join_token = kDefaultJoinToken;
    return p;
  }
  // Looked up by hash: no secret is compared, so no timing tells how much of one matched.
  if (token.starts_with(protocol::kNodeCredentialPrefix)) {
    const auto* node = enrollment.node_for(token);
    if (!node) {
      return err(Errc::unauthenticated,
                 "the node credential is not valid (the node was revoked, or this server never "
                 "enrolled it)");
    }
    p.kind = Principal::Kind::agent;
    p.name = "node:" + node->node;
    p.node = node->node;
    return p;
  }
  if (token.starts_with(kJoinTokenPrefix)) {
    const auto* t = enrollment.join_token_for(token);
    if (!t) return err(Errc::unauthenticated, "the join token is not valid");
    if (auto why = join_token_unusable(*t, now_ms()); !why.empty())
      return err(Errc::unauthenticated, why);
    p.kind = Principal::Kind::agent;
    p.name = "join:" + t->name;
    p.join_token = t->name;
    return p;
  }
  return tokens.lookup(token, now_ms());
}

void ServerContext::save_node(const std::string& name) {
  if (const auto* n = inventory.find(name)) node_writes->save(name, *n);
}

namespace {

// A periodic write that is skipped while its previous one still waits in the database queue, so
// that a stalled disk does not collect one copy per period.
// Used on the I/O thread only; the job clears the flag on the database thread.
class PeriodicWrite {
 public:
  // Whether the previous write has run (a new one may be posted).
  bool idle() const { return !pending_->load(); }
  // Marks a write as posted; its job calls the function returned once it has run.
  std::function<void()> start() {
    pending_->store(true);
    return [p = pending_] { p->store(false); };
  }

 private:
  std::shared_ptr<std::atomic<bool>> pending_ = std::make_shared<std::atomic<bool>>(false);
};

asio::awaitable<void> housekeeping(ServerContext& ctx) {
  asio::steady_timer timer(ctx.ioc);
  PeriodicWrite last_seen_write;
  PeriodicWrite token_use_write;
  int ticks = 0;
  for (;;) {
    timer.expires_after(std::chrono::milliseconds(500));
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    ctx.gateway->check_liveness();
    ctx.engine->tick();
    ctx.runs->tick();
    if (ticks % 2 == 0) ctx.convergence->tick();
    ctx.plans->tick();
    if (++ticks % 20 == 0) {
      ctx.watchers->expire();
      // Persist last_seen of live nodes in one transaction, rather than on every heartbeat.
      std::vector<std::pair<std::string, TimeMs>> seen;
      for (const auto* n : ctx.inventory.all()) {
        if (n->state == inventory::NodeState::alive) seen.emplace_back(n->name, n->last_seen);
      }
      if (!seen.empty() && last_seen_write.idle()) {
        ctx.db->post([seen = std::move(seen), done = last_seen_write.start()](store::Store& s) {
          (void)s.save_last_seen(seen);
          done();
        });
      }
      // When each API token was last used (kept in memory until taken; saved every ten seconds).
      if (token_use_write.idle()) {
        if (auto used = ctx.tokens.take_used(); !used.empty()) {
          ctx.db->post([used = std::move(used), done = token_use_write.start()](store::Store& s) {
            (void)s.save_token_use(used);
            done();
          });
        }
      }
      // A large deploy leaves freed memory behind in malloc's free lists; give it back to the
      // system (on a worker: trimming a large heap takes a few milliseconds).
      asio::post(ctx.workers, [] { malloc_trim(0); });
    }
  }
}

// One descriptor per agent connection: a server for thousands of agents needs more than the
// usual soft limit of 1024, so it raises the soft limit to the hard one (as nginx's
// worker_rlimit_nofile or Go's runtime do) and says so when even that is low.
void raise_open_files_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 16'384) {
    spdlog::info(
        "the open-files limit is {}: at most about {} agents can connect (raise it with "
        "ulimit -n or LimitNOFILE=)",
        rl.rlim_cur, rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 0);
  }
}

// The host part of a --listen HOST:PORT ("[::1]:80" -> "::1"); empty when malformed.
std::string listen_host(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return {};
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

// The TLS identity: the given certificate, or the self-made CA and server certificate in
// DATA_DIR/tls. Returns the context and the fingerprint the join token carries.
Result<std::pair<std::shared_ptr<asio::ssl::context>, std::string>> setup_tls(
    const ServerOptions& opts, const std::string& host) {
  net::ServerTlsFiles files;
  if (!opts.tls_cert.empty()) {
    files.chain = opts.tls_cert;
    files.key = opts.tls_key;
  } else {
    std::vector<std::string> sans;
    auto add = [&sans](const std::string& n) {
      if (!n.empty() && std::find(sans.begin(), sans.end(), n) == sans.end()) sans.push_back(n);
    };
    if (host != "0.0.0.0" && host != "::") add(host);
    add("localhost");
    add("127.0.0.1");
    char hostname[256] = {0};
    if (::gethostname(hostname, sizeof hostname - 1) == 0) add(hostname);
    for (const auto& n : opts.tls_sans)
      add(n);
    auto made = net::ensure_server_certificate(opts.data_dir / "tls", sans);
    if (!made) return made.error();
    files = *made;
    if (files.created) {
      spdlog::info("made the TLS certificate {} (names: {}) signed by the server's CA {}",
                   files.chain.string(), join(sans, ", "), files.ca.string());
    }
  }
  auto ctx = net::make_server_tls_context(files);
  if (!ctx) return ctx.error();
  auto pin = net::chain_anchor_fingerprint(files.chain);
  if (!pin) return pin.error();
  return std::make_pair(*ctx, *pin);
}

// What is left once the I/O thread has stopped, in an order that never lets anything touch a
// part that is gone. Coroutines still suspended (HTTP sessions, agent and watch WebSockets,
// handlers waiting for the database or the worker pool) hold references to `ctx`: their frames
// must be destroyed while `ctx` lives, which the io_context's own destructor would do too late
// (it runs after ctx's, being declared first). And no thread may hand the io_context a new
// completion once its handlers are destroyed, so every thread that posts to it is stopped first.
//  1. the worker pool: running jobs finish, their completions are queued (never run);
//  2. the notifier's threads (deliveries in flight are aborted; their records reach the
//     database queue);
//  3. the journal's buffered writes, then the database queue, run to the end;
//  4. the io_context's handlers and the coroutine frames they own are destroyed, with ctx alive.
// The server was seen to corrupt its heap without this (a session's per-address counter
// erased from the freed ctx when its frame was destroyed with the io_context).
void stop_server(ServerContext& ctx, net::IoContext& ioc) {
  ctx.workers.join();
  ctx.notifier.reset();
  ctx.journal->flush();
  ctx.db->drain();
  ioc.destroy_handlers();
}

}  // namespace

int run_server(const ServerOptions& opts) {
  if (opts.data_dir.empty()) {
    spdlog::error("--data is required");
    return kExitUsage;
  }
  // The transport is decided before anything is written or bound.
  const std::string host = listen_host(opts.listen);
  const auto transport = net::decide_tls(host, opts.want_tls, opts.insecure);
  if (transport.refused) {
    spdlog::error(
        "refusing to serve plain HTTP on {}: it is not a loopback address. Serve HTTPS (drop "
        "--no-tls), or give --insecure to send tokens and secrets unencrypted anyway",
        opts.listen);
    return kExitUsage;
  }
  if (opts.tls_cert.empty() != opts.tls_key.empty()) {
    spdlog::error("--tls-cert and --tls-key go together");
    return kExitUsage;
  }
  if (transport.warn_insecure) {
    spdlog::warn(
        "--insecure: serving plain HTTP on {}: tokens, secrets and artifacts cross the network "
        "unencrypted and unauthenticated",
        opts.listen);
  }
  if (auto st = ensure_dir(opts.data_dir, 0700); !st) {
    spdlog::error("{}", st.error().message);
    return kExitFailed;
  }
  raise_open_files_limit();
  net::IoContext ioc(1);
  ServerContext ctx(opts, ioc);
  if (ctx.opts.console_dir.empty()) ctx.opts.console_dir = default_console_dir();

  bool created = false;
  auto admin = load_or_create_token(opts.data_dir / "admin.token", created);
  if (!admin) {
    spdlog::error("{}", admin.error().message);
    return kExitFailed;
  }
  if (created)
    spdlog::info("wrote the admin token to {}", (opts.data_dir / "admin.token").string());
  auto join = load_or_create_token(opts.data_dir / "join.token", created);
  if (!join) {
    spdlog::error("{}", join.error().message);
    return kExitFailed;
  }
  auto join_token = net::parse_join_token(*join);
  if (!join_token) {
    spdlog::error("{}: {}", (opts.data_dir / "join.token").string(), join_token.error().message);
    return kExitFailed;
  }
  join_token->ca_pin.clear();
  if (transport.tls) {
    auto tls = setup_tls(opts, host);
    if (!tls) {
      spdlog::error("TLS: {}", tls.error().message);
      return kExitFailed;
    }
    ctx.tls = tls->first;
    join_token->ca_pin = tls->second;
    ctx.ca_pin = tls->second;
  }
  // The file holds what agents are given: the secret, and the CA's fingerprint under TLS.
  if (const auto full = net::format_join_token(*join_token); full != *join) {
    if (auto st = write_file_atomic(opts.data_dir / "join.token", full + "\n", 0600); !st) {
      spdlog::error("{}", st.error().message);
      return kExitFailed;
    }
    created = true;
  }
  if (created)
    spdlog::info("wrote the agent join token to {}", (opts.data_dir / "join.token").string());
  ctx.admin_token = *admin;
  ctx.join_token = join_token->secret;

  if (auto st = ctx.blobs.open(); !st) {
    spdlog::error("{}", st.error().message);
    return kExitFailed;
  }
  ctx.db = std::make_unique<store::DbExecutor>(
      store::make_sqlite_store((opts.data_dir / "slipway.db").string()),
      store::DbExecutor::Limits{opts.db_queue_limit, opts.db_queue_limit / 2});
  if (opts.test_db_delay.count() > 0) {
    spdlog::warn("test hook: the database thread sleeps {} before each job",
                 format_duration(opts.test_db_delay));
    ctx.db->TEST_set_job_delay(opts.test_db_delay);
  }
  ctx.node_writes = std::make_unique<store::LatestWrites<inventory::Node>>(
      *ctx.db, [](store::Store& s, const inventory::Node& node) {
        if (auto st = s.upsert_node(node); !st) {
          spdlog::error("cannot record node {}: {}", node.name, st.error().message);
        }
      });

  // Load state: nodes (all lost until their agents reconnect), the next deploy id, and fail the
  // deploys a previous process was running when it died.
  Status load_status;
  std::vector<inventory::Node> nodes;
  engine::DeployId max_id = 0;
  engine::RunId max_run_id = 0;
  engine::PlanId max_plan_id = 0;
  std::vector<engine::DeployId> interrupted;
  std::vector<engine::RunId> interrupted_runs;
  std::vector<engine::DesiredRecord> desired;
  std::map<std::string, inventory::Quarantine> quarantines;
  std::vector<engine::PlanId> interrupted_plans;
  std::vector<store::TokenRecord> tokens;
  std::vector<std::string> revoked;
  std::vector<store::JoinTokenRecord> join_tokens;
  std::vector<store::NodeCredential> credentials;
  std::vector<store::EnvRecord> envs;
  ctx.db->run_sync([&](store::Store& s) {
    if (auto st = s.open(); !st) {
      load_status = st;
      return;
    }
    // The keys kept outside the database: secrets (sealed values) and the audit chain's HMAC.
    if (auto st = load_secrets_key(ctx, s); !st) {
      load_status = st;
      return;
    }
    if (auto st = open_audit_log(s, opts.data_dir); !st) {
      load_status = st;
      return;
    }
    auto ln = s.load_nodes();
    if (!ln) {
      load_status = ln.error();
      return;
    }
    nodes = std::move(*ln);
    auto id = s.max_deploy_id();
    if (id) max_id = *id;
    auto failed = s.fail_running_deploys(
        "the server stopped while the deploy was running (it was restarted)", now_ms());
    if (failed) interrupted = *failed;
    if (auto rid = s.max_run_id()) max_run_id = *rid;
    auto failed_runs = s.fail_running_runs(
        "the server stopped while the command ran (it was restarted)", now_ms());
    if (failed_runs) interrupted_runs = *failed_runs;
    auto d = s.load_desired();
    auto q = s.active_quarantines();
    if (!d || !q) {
      load_status = d ? q.error() : d.error();
      return;
    }
    desired = std::move(*d);
    quarantines = std::move(*q);
    if (auto pid = s.max_plan_id()) max_plan_id = *pid;
    auto failed_plans = s.fail_running_plans(
        "the server stopped while the plan was running (it was restarted)", now_ms());
    if (failed_plans) interrupted_plans = *failed_plans;
    auto t = s.list_tokens();
    if (!t) {
      load_status = t.error();
      return;
    }
    tokens = std::move(*t);
    auto jt = s.list_join_tokens();
    auto nc = s.list_node_credentials();
    auto ev = s.list_environments();
    if (!jt || !nc || !ev) {
      load_status = !jt ? jt.error() : !nc ? nc.error() : ev.error();
      return;
    }
    join_tokens = std::move(*jt);
    credentials = std::move(*nc);
    envs = std::move(*ev);
    for (const auto& c : credentials) {
      if (c.revoked_at != 0) revoked.push_back(c.node);
    }
  });
  if (!load_status) {
    spdlog::error("cannot open the database or its keys: {}", load_status.error().message);
    return kExitFailed;
  }
  for (auto id : interrupted) {
    spdlog::warn("deploy #{} was running when the server stopped; marked failed", id);
  }
  for (auto id : interrupted_runs) {
    spdlog::warn("run r{} was running when the server stopped; marked failed", id);
  }
  for (auto id : interrupted_plans) {
    spdlog::warn("plan p{} was running when the server stopped; marked failed", id);
  }
  ctx.inventory.load(std::move(nodes));
  ctx.tokens.load(std::move(tokens));
  ctx.enrollment.load(std::move(join_tokens), credentials, envs);
  for (auto& [name, q] : quarantines)
    ctx.inventory.set_quarantine(name, std::move(q));

  ctx.gateway = std::make_unique<AgentGateway>(ctx);
  ctx.gateway->load_revoked(revoked);
  ctx.gateway->load_pending(credentials);
  ctx.watchers = std::make_unique<Watchers>(ctx);
  ctx.convergence = std::make_unique<Convergence>(ctx, *ctx.watchers);
  ctx.convergence->load(desired);
  ctx.journal = std::make_unique<StoreJournal>(*ctx.db, ioc);
  engine::EngineOptions eo;
  eo.node_timeout = opts.node_timeout;
  ctx.events = std::make_unique<ServerEvents>(ctx);
  ctx.engine = std::make_unique<engine::Engine>(SystemClock::instance(), *ctx.gateway, *ctx.journal,
                                                *ctx.events, eo, ctx.gateway.get());
  ctx.gateway->add_exec_handler(engine::Engine::kHookPrefix, *ctx.engine->exec_handler());
  ctx.engine->set_next_id(max_id + 1);
  ctx.run_journal = std::make_unique<StoreRunJournal>(*ctx.db);
  ctx.runs =
      std::make_unique<engine::RunManager>(SystemClock::instance(), *ctx.gateway, *ctx.run_journal);
  ctx.runs->set_next_id(max_run_id + 1);
  ctx.gateway->add_exec_handler(engine::RunManager::kActionPrefix, ctx.runs->exec_handler());
  ctx.plan_driver = make_plan_driver(ctx);
  ctx.plans = std::make_unique<engine::PlanManager>(SystemClock::instance(), *ctx.plan_driver);
  ctx.plans->set_next_id(max_plan_id + 1);

  ctx.router.add(
      "GET", "/healthz", Access::public_, "health", [](Request&) -> asio::awaitable<Response> {
        co_return Response::json(200, json::object{{"status", "ok"}, {"version", SLIPWAY_VERSION}});
      });
  register_artifact_routes(ctx);
  register_inventory_routes(ctx);
  register_deploy_routes(ctx);
  register_freeze_routes(ctx);
  register_run_routes(ctx);
  register_lb_routes(ctx);
  register_plan_routes(ctx);
  register_config_routes(ctx);
  register_metrics_routes(ctx);
  register_token_routes(ctx);
  register_secret_key_routes(ctx);
  register_enrollment_routes(ctx);
  if (auto st = start_notifications(ctx); !st) {
    spdlog::error("cannot start notifications: {}", st.error().message);
    return kExitFailed;
  }
  register_notify_routes(ctx);

  auto acceptor = bind_listener(ctx, opts.listen);
  if (!acceptor) {
    spdlog::error("{}", acceptor.error().message);
    return kExitFailed;
  }
  if (auto st = write_file_atomic(opts.data_dir / "server.url", ctx.url + "\n", 0644); !st) {
    spdlog::error("{}", st.error().message);
    return kExitFailed;
  }
  spdlog::info("slipway server {} listening on {} (data in {}, {} known node(s))", SLIPWAY_VERSION,
               ctx.url, opts.data_dir.string(), ctx.inventory.size());
  if (std::error_code ec;
      std::filesystem::is_regular_file(ctx.opts.console_dir / "index.html", ec)) {
    spdlog::info("web console: {}/ (files in {})", ctx.url, ctx.opts.console_dir.string());
  } else {
    spdlog::warn("the web console is not served: no index.html in {}",
                 ctx.opts.console_dir.empty()
                     ? std::string("a console directory next to the executable")
                     : ctx.opts.console_dir.string());
  }

  asio::co_spawn(ioc, accept_loop(ctx, *acceptor), asio::detached);
  asio::co_spawn(ioc, housekeeping(ctx), asio::detached);

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    boost::system::error_code ignored;
    (*acceptor)->close(ignored);
    ctx.gateway->close_all();
    ioc.stop();
  });
  ioc.run();
  stop_server(ctx, ioc);
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace slipway::server
