// Notification hooks (/api/v1/notify): add, list, test and remove hooks (admin; a viewer may list
// them, never their secrets), read the delivery log; and what tells the notifier what happened
// (server/notify_events.h).
#include <algorithm>
#include <cstdlib>

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/names.h"
#include "common/strings.h"
#include "server/context.h"
#include "server/notifier.h"
#include "server/notify_events.h"

namespace slipway::server {

namespace {

using notify::Hook;
using notify::HookKind;
using notify::Notification;

constexpr size_t kMaxHooks = 100;
constexpr size_t kMinSecret = 16;
constexpr size_t kMaxSecret = 256;
constexpr int kMaxLimit = 1000;

// Where a hook's credential is sealed: bound to its name.
// POST /api/v1/notify/hooks {name, kind, target, events, env?, app?, secret?}.
struct AddRequest {
  Hook hook;
  bool secret_given = false;
};

Result<AddRequest> parse_add(const std::string& body) {
  auto v = parse_json(body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, "notification hook");
  AddRequest a;
  Hook& h = a.hook;
  h.name = r.str("name");
  const std::string kind = r.str("kind");
  h.target = r.str("target");
  const auto events = r.str_list("events");
  h.env = r.str_or("env", "");
  h.app = r.str_or("app", "");
  const auto secret = r.opt_str("secret");
  if (auto st = r.finish(); !st) return st.error();
  if (auto st = validate_name(NameKind::token, h.name); !st) return st.error();
  const auto k = notify::hook_kind_from_name(kind);
  if (!k) {
    return err(Errc::invalid_argument,
               fmt::format("kind '{}' must be webhook, slack or email", excerpt(kind)));
  }
  h.kind = *k;
  if (auto st = notify::validate_target(h.kind, h.target); !st) return st.error();
  if (events.empty()) {
    return err(Errc::invalid_argument,
               "events: name at least one of deploy.started, deploy.succeeded, deploy.failed, "
               "deploy.rolled_back, node.lost, node.quarantined, drift");
  }
  if (events.size() > notify::kEvents.size() * 2) {
    return err(Errc::invalid_argument, "events: too many entries");
  }
  for (const auto& e : events) {
    if (!notify::is_event_name(e)) {
      return err(Errc::invalid_argument,
                 fmt::format("events: '{}' is not one of deploy.started, deploy.succeeded, "
                             "deploy.failed, deploy.rolled_back, node.lost, node.quarantined, "
                             "drift",
                             excerpt(e)));
    }
    h.events.insert(e);
  }
  if (!h.env.empty()) {
    if (auto st = validate_name(NameKind::env, h.env); !st) return st.error();
  }
  if (!h.app.empty()) {
    if (auto st = validate_name(NameKind::app, h.app); !st) return st.error();
  }
  if (secret) {
    if (h.kind != HookKind::webhook) {
      return err(Errc::invalid_argument, "only a webhook has a signing secret");
    }
    const bool printable = std::all_of(secret->begin(), secret->end(), [](char c) {
      return static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
    });
    if (secret->size() < kMinSecret || secret->size() > kMaxSecret || !printable) {
      return err(Errc::invalid_argument,
                 fmt::format("the secret must be {} to {} printable characters with no spaces",
                             kMinSecret, kMaxSecret));
    }
    h.secret = *secret;
    a.secret_given = true;
  }
  return a;
}

json::array names_json(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

json::object hook_json(const store::NotifyHookRecord& h) {
  return json::object{{"name", h.name},
                      {"kind", h.kind},
                      {"target", h.target},
                      {"events", names_json(h.events)},
                      {"env", h.env},
                      {"app", h.app},
                      {"created_by", h.created_by},
                      {"created_at", format_time(h.created_at)}};
}

json::object delivery_json(const store::NotifyDeliveryRecord& d) {
  return json::object{{"id", d.id},
                      {"hook", d.hook},
                      {"delivery", d.delivery},
                      {"event", d.event},
                      {"attempt", d.attempt},
                      {"ok", d.ok},
                      {"status_code", d.status_code},
                      {"error", d.error},
                      {"duration_ms", d.duration_ms},
                      {"at", format_time(d.at)}};
}

// The record a hook is stored as: its credential sealed, a Slack URL shown without its path.
store::NotifyHookRecord to_record(const Hook& h, const SecretKey& key, const std::string& actor) {
  store::NotifyHookRecord r;
  r.name = h.name;
  r.kind = std::string(notify::hook_kind_name(h.kind));
  r.events.assign(h.events.begin(), h.events.end());
  r.env = h.env;
  r.app = h.app;
  r.created_by = actor;
  r.created_at = now_ms();
  switch (h.kind) {
    case HookKind::webhook:
      r.target = h.target;
      r.secret = key.seal(h.secret, notify_secret_place(h.name));
      break;
    case HookKind::slack:
      r.target = notify::redact_url(h.target, false);
      r.secret = key.seal(h.target, notify_secret_place(h.name));
      break;
    case HookKind::email:
      r.target = h.target;
      break;
  }
  return r;
}

Result<Hook> from_record(const store::NotifyHookRecord& r, const SecretKey& key) {
  Hook h;
  h.name = r.name;
  const auto kind = notify::hook_kind_from_name(r.kind);
  if (!kind) return err(Errc::internal, fmt::format("hook '{}' has kind '{}'", r.name, r.kind));
  h.kind = *kind;
  h.target = r.target;
  h.events.insert(r.events.begin(), r.events.end());
  h.env = r.env;
  h.app = r.app;
  if (h.kind != HookKind::email) {
    auto secret = key.open(r.secret, notify_secret_place(r.name));
    if (!secret) {
      return err(Errc::failed_precondition,
                 fmt::format("the secret of notification hook '{}' does not open with "
                             "DATA_DIR/secrets.key: {}",
                             r.name, secret.error().message));
    }
    if (h.kind == HookKind::webhook) {
      h.secret = std::move(*secret);
    } else {
      h.target = std::move(*secret);
    }
  }
  return h;
}

// Awaits one test delivery's record (the worker hands it back to the I/O thread). The initiation
// runs when the result is awaited, after this function returned: it holds copies.
asio::awaitable<Result<store::NotifyDeliveryRecord>> run_test(ServerContext& ctx,
                                                              const std::string& name,
                                                              const Notification& n) {
  using R = Result<store::NotifyDeliveryRecord>;
  auto init = [c = &ctx, name, n](auto handler) {
    auto ex = asio::get_associated_executor(handler, c->ioc.get_executor());
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    auto st = c->notifier->test(name, n, [ex, h](const store::NotifyDeliveryRecord& r) {
      asio::post(ex, [h, r]() mutable { std::move (*h)(R(r)); });
    });
    if (!st) asio::post(ex, [h, e = st.error()]() mutable { std::move (*h)(R(e)); });
  };
  return asio::async_initiate<const asio::use_awaitable_t<>, void(R)>(init, asio::use_awaitable);
}

json::object node_json(const inventory::Node& n, const std::string& reason) {
  json::object o{{"name", n.name},
                 {"env", n.env},
                 {"roles", names_json(n.roles)},
                 {"zone", n.zone},
                 {"address", n.address},
                 {"state", n.state == inventory::NodeState::alive ? "alive" : "lost"}};
  if (!reason.empty()) o["reason"] = reason;
  return o;
}

std::vector<std::string> node_apps(const inventory::Node& n) {
  std::vector<std::string> out;
  for (const auto& a : n.apps)
    out.push_back(a.first);
  return out;
}

}  // namespace

std::string notify_secret_place(const std::string& name) {
  return "notify/" + name;
}

Status start_notifications(ServerContext& ctx) {
  std::vector<store::NotifyHookRecord> records;
  Status loaded;
  ctx.db->run_sync([&](store::Store& s) {
    auto r = s.list_notify_hooks();
    if (!r) {
      loaded = r.error();
      return;
    }
    records = std::move(*r);
  });
  if (!loaded) return loaded;
  notify::Options o;
  o.retry_base = ctx.opts.notify_retry_base;
  o.smtp_relay = ctx.opts.smtp_relay;
  if (!ctx.opts.smtp_from.empty()) o.smtp_from = ctx.opts.smtp_from;
  o.smtp_resolve = ctx.opts.smtp_resolve;
  o.smtp_ca_file = ctx.opts.smtp_ca_cert;
  if (!o.smtp_relay.empty()) {
    spdlog::info("e-mail through {} ({})", notify::redact_url(o.smtp_relay, false),
                 notify::smtp_relay_is_loopback(o.smtp_relay)
                     ? "a loopback relay: STARTTLS when offered"
                     : "TLS required: smtps:// or STARTTLS");
  }
  if (const char* pw = std::getenv("SLIPWAY_SMTP_PASSWORD")) o.smtp_password = pw;
  o.user_agent = std::string("slipway/") + SLIPWAY_VERSION;
  store::DbExecutor* db = ctx.db.get();
  ctx.notifier =
      std::make_unique<notify::Notifier>(o, [db](const store::NotifyDeliveryRecord& rec) {
        db->post([rec](store::Store& s) {
          if (auto st = s.append_notify_delivery(rec); !st) {
            spdlog::error("cannot record a notification delivery: {}", st.error().message);
          }
        });
      });
  for (const auto& r : records) {
    auto h = from_record(r, *ctx.secret_key);
    if (!h) {
      spdlog::error("{}", h.error().message);
      continue;
    }
    ctx.notifier->set_hook(std::move(*h));
  }
  return {};
}

void register_notify_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  ctx.router.add(
      "POST", "/api/v1/notify/hooks", Access::admin, "notify.add",
      [c](Request& req) -> asio::awaitable<Response> {
        auto a = parse_add(req.body);
        if (!a) co_return Response::error(a.error());
        Hook& h = a->hook;
        req.audit_target = fmt::format("name={} kind={}", h.name, notify::hook_kind_name(h.kind));
        if (h.kind == HookKind::email && c->opts.smtp_relay.empty()) {
          co_return Response::error(
              err(Errc::failed_precondition,
                  "this server has no SMTP relay: start it with --smtp-relay smtp://HOST:PORT "
                  "(and --smtp-from ADDRESS) to send e-mail"));
        }
        if (h.kind == HookKind::webhook && !a->secret_given) h.secret = "whsec_" + random_hex(24);
        // Sealed on the database thread, where a key rotation replaces the key.
        auto job = [c, h, actor = req.actor](store::Store& s) -> Result<store::NotifyHookRecord> {
          store::NotifyHookRecord rec = to_record(h, *c->secret_key, actor);
          auto existing = s.list_notify_hooks();
          if (!existing) return existing.error();
          if (existing->size() >= kMaxHooks) {
            return err(Errc::failed_precondition,
                       fmt::format("there are {} notification hooks already (the most a "
                                   "server keeps): remove one first",
                                   kMaxHooks));
          }
          auto id = s.insert_notify_hook(rec);
          if (!id) return id.error();
          rec.id = *id;
          return rec;
        };
        auto rec = co_await c->db_call(job);
        if (!rec) co_return Response::error(rec.error());
        c->notifier->set_hook(h);
        spdlog::info("notification hook '{}' ({} to {}) added by {}", h.name,
                     notify::hook_kind_name(h.kind), rec->target, req.actor);
        json::object body = hook_json(*rec);
        // The only time the signing secret is shown (and not at all when the caller gave it).
        if (h.kind == HookKind::webhook && !a->secret_given) body["secret"] = h.secret;
        co_return Response::json(201, body);
      });

  ctx.router.add("GET", "/api/v1/notify/hooks", Access::viewer, "notify.list",
                 [c](Request& req) -> asio::awaitable<Response> {
                   auto job = [](store::Store& s) { return s.list_notify_hooks(); };
                   auto list = co_await c->db_call(job);
                   if (!list) co_return Response::error(list.error());
                   json::array out;
                   for (const auto& h : *list) {
                     if (in_scope(req.principal, h.env, h.app)) out.push_back(hook_json(h));
                   }
                   const auto counts = c->notifier->counters();
                   co_return Response::json(
                       200, json::object{{"hooks", std::move(out)},
                                         {"queue", json::object{{"queued", counts.queued},
                                                                {"delivered", counts.delivered},
                                                                {"failed", counts.failed},
                                                                {"dropped", counts.dropped}}}});
                 });

  ctx.router.add(
      "DELETE", "/api/v1/notify/hooks/{name}", Access::admin, "notify.remove",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string name = req.param("name");
        if (auto st = validate_name(NameKind::token, name); !st)
          co_return Response::error(st.error());
        req.audit_target = "name=" + name;
        auto job = [name](store::Store& s) { return s.delete_notify_hook(name); };
        auto removed = co_await c->db_call(job);
        if (!removed) co_return Response::error(removed.error());
        if (!*removed) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("there is no notification hook named '{}'", name)));
        }
        c->notifier->remove_hook(name);
        spdlog::info("notification hook '{}' removed by {}", name, req.actor);
        co_return Response::json(200, json::object{{"name", name}, {"removed", true}});
      });

  ctx.router.add("POST", "/api/v1/notify/hooks/{name}/test", Access::admin, "notify.test",
                 [c](Request& req) -> asio::awaitable<Response> {
                   const std::string name = req.param("name");
                   if (auto st = validate_name(NameKind::token, name); !st)
                     co_return Response::error(st.error());
                   if (auto st = expect_empty_body(req, "test request"); !st)
                     co_return Response::error(st.error());
                   req.audit_target = "name=" + name;
                   Notification n;
                   n.event = "test";
                   n.at = now_ms();
                   n.text =
                       fmt::format("A test notification from the Slipway server at {}, sent by {}",
                                   c->url, req.actor);
                   auto rec = co_await run_test(*c, name, n);
                   if (!rec) co_return Response::error(rec.error());
                   co_return Response::json(200, delivery_json(*rec));
                 });

  ctx.router.add(
      "GET", "/api/v1/notify/deliveries", Access::viewer, "notify.log",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string hook = req.query_or("hook");
        if (!hook.empty()) {
          if (auto st = validate_name(NameKind::token, hook); !st)
            co_return Response::error(st.error());
        }
        int limit = 50;
        if (const std::string l = req.query_or("limit"); !l.empty()) {
          auto n = parse_path_id(l, "limit");
          if (!n || *n > kMaxLimit) {
            co_return Response::error(err(
                Errc::invalid_argument,
                fmt::format("limit '{}' must be a number from 1 to {}", excerpt(l), kMaxLimit)));
          }
          limit = static_cast<int>(*n);
        }
        auto job =
            [hook, limit](
                store::Store& s) -> Result<std::pair<std::vector<store::NotifyHookRecord>,
                                                     std::vector<store::NotifyDeliveryRecord>>> {
          auto hooks = s.list_notify_hooks();
          if (!hooks) return hooks.error();
          auto log = s.list_notify_deliveries(hook, limit);
          if (!log) return log.error();
          return std::make_pair(std::move(*hooks), std::move(*log));
        };
        auto got = co_await c->db_call(job);
        if (!got) co_return Response::error(got.error());
        const auto& hooks = got->first;
        const bool unscoped = req.principal.envs.empty() && req.principal.apps.empty();
        json::array out;
        for (const auto& d : got->second) {
          // A scoped token sees the attempts of the hooks in its scope only.
          const auto h = std::find_if(hooks.begin(), hooks.end(),
                                      [&d](const auto& x) { return x.name == d.hook; });
          const bool visible =
              unscoped || (h != hooks.end() && in_scope(req.principal, h->env, h->app));
          if (visible) out.push_back(delivery_json(d));
        }
        co_return Response::json(200, json::object{{"deliveries", std::move(out)}});
      });
}

// ---- events ----

void notify_deploy_event(ServerContext& ctx, const engine::DeployEvent& e,
                         const engine::Deploy& d) {
  if (!ctx.notifier || d.kind == engine::DeployKind::converge) return;
  std::string event;
  if (e.kind == "deploy.started") {
    event = "deploy.started";
  } else if (e.kind == "deploy.finished") {
    switch (d.state) {
      case engine::DeployState::succeeded:
        event = "deploy.succeeded";
        break;
      case engine::DeployState::failed:
        event = "deploy.failed";
        break;
      case engine::DeployState::rolled_back:
        event = "deploy.rolled_back";
        break;
      default:
        return;
    }
  } else {
    return;
  }
  const int total = static_cast<int>(d.nodes.size());
  const int healthy = d.count(engine::NodeStatus::healthy);
  const int failed = d.failures();
  Notification n;
  n.event = event;
  n.at = e.at > 0 ? e.at : now_ms();
  n.env = d.env;
  n.app = d.app;
  n.deploy = json::object{{"id", d.id},
                          {"kind", engine::deploy_kind_name(d.kind)},
                          {"version", d.version},
                          {"state", engine::deploy_state_name(d.state)},
                          {"reason", d.reason},
                          {"actor", d.actor},
                          {"node_count", total},
                          {"healthy_count", healthy},
                          {"failed_count", failed},
                          {"url", fmt::format("{}/#/deploys/{}", ctx.url, d.id)},
                          {"api_url", fmt::format("{}/api/v1/deploys/{}", ctx.url, d.id)}};
  const std::string what =
      fmt::format("{} {} to {}: {} #{}", d.app, d.version, d.env,
                  d.kind == engine::DeployKind::rollback ? "rollback" : "deploy", d.id);
  if (event == "deploy.started") {
    n.text = fmt::format("{} started by {} ({} node(s), {})", what, d.actor, total, d.strategy);
  } else if (event == "deploy.succeeded") {
    n.text = fmt::format("{} succeeded: {}/{} node(s) healthy", what, healthy, total);
  } else if (event == "deploy.failed") {
    n.text = fmt::format("{} failed: {} ({} of {} node(s) failed)", what, d.reason, failed, total);
  } else {
    n.text = fmt::format("{} was rolled back: {}", what, d.reason);
  }
  ctx.notifier->publish(n);
}

namespace {

// A notification about a node: its event, environment, apps and description.
Notification node_note(const std::string& event, const inventory::Node& nd, const std::string& app,
                       const std::string& reason) {
  Notification n;
  n.event = event;
  n.at = now_ms();
  n.env = nd.env;
  n.app = app;
  n.apps = node_apps(nd);
  n.node = node_json(nd, reason);
  return n;
}

}  // namespace

void notify_node_lost(ServerContext& ctx, const std::string& node, const std::string& why) {
  const auto* nd = ctx.inventory.find(node);
  if (!ctx.notifier || !nd) return;
  Notification n = node_note("node.lost", *nd, "", why);
  n.text = fmt::format("node {} ({}) lost: {}", node, nd->env, why);
  ctx.notifier->publish(n);
}

void notify_node_quarantined(ServerContext& ctx, const std::string& node, const std::string& app,
                             const std::string& reason) {
  const auto* nd = ctx.inventory.find(node);
  if (!ctx.notifier || !nd) return;
  Notification n = node_note("node.quarantined", *nd, app, reason);
  n.text = fmt::format("node {} ({}) quarantined: {}; `slipway nodes release {}` lifts it", node,
                       nd->env, reason, node);
  ctx.notifier->publish(n);
}

void notify_drift(ServerContext& ctx, const std::string& node, const std::string& app,
                  const std::string& running, const std::string& desired) {
  const auto* nd = ctx.inventory.find(node);
  if (!ctx.notifier || !nd) return;
  Notification n = node_note("drift", *nd, app, "");
  (*n.node)["running"] = running;
  (*n.node)["desired"] = desired;
  n.text =
      fmt::format("node {} ({}) runs {} of {} instead of {} (its desired release): converging it",
                  node, nd->env, running.empty() ? "nothing" : running, app, desired);
  ctx.notifier->publish(n);
}

}  // namespace slipway::server
