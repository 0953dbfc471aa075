#include "server/convergence.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "server/context.h"
#include "server/notify_events.h"

namespace slipway::server {

namespace {

std::string version_or_none(const std::string& v) {
  return v.empty() ? "nothing" : v;
}

}  // namespace

Convergence::Convergence(ServerContext& ctx, engine::EventSink& next) : ctx_(ctx), next_(next) {}

void Convergence::load(const std::vector<engine::DesiredRecord>& records) {
  desired_.load(records);
}

void Convergence::on_event(const engine::DeployEvent& e, const engine::Deploy& d) {
  next_.on_event(e, d);
  if (e.kind != "deploy.finished") return;
  if (d.kind == engine::DeployKind::converge) {
    if (d.state == engine::DeployState::succeeded) return;
    for (const auto& n : d.nodes) {
      const std::string why = n.reason.empty() ? d.reason : n.reason;
      quarantine(n.node,
                 inventory::Quarantine{fmt::format("convergence to {} {} failed (deploy #{}): {}",
                                                   d.app, d.version, d.id, why),
                                       d.app, d.id, now_ms()});
    }
    return;
  }
  auto records = engine::desired_records_of(d);
  if (records.empty()) return;
  desired_.apply(records);
  ctx_.db->post([records = std::move(records)](store::Store& s) {
    if (auto st = s.save_desired(records); !st) {
      spdlog::error("cannot record the desired release: {}", st.error().message);
    }
  });
}

void Convergence::check(const std::string& node) {
  if (const auto* n = ctx_.inventory.find(node)) consider(*n);
}

void Convergence::tick() {
  for (const auto* n : ctx_.inventory.all())
    consider(*n);
}

void Convergence::consider(const inventory::Node& n) {
  if (n.state != inventory::NodeState::alive || n.quarantined()) return;
  for (const auto& lag : desired_.lagging(n)) {
    if (ctx_.engine->running_for(lag.app, n.env)) continue;  // the next round
    auto key = std::make_pair(n.env, lag.app);
    if (!starting_.insert(key).second) continue;
    asio::co_spawn(ctx_.ioc, converge(n.name, n.env, lag.app), asio::detached);
  }
}

asio::awaitable<void> Convergence::converge(std::string node, std::string env, std::string app) {
  auto job = [app](store::Store& s) { return s.list_artifacts(app); };
  auto artifacts = co_await ctx_.db_call(job);
  auto job2 = [env, app, key = &*ctx_.secret_key](store::Store& s) {
    return resolve_config(s, *key, env, app);
  };
  auto config = co_await ctx_.db_call(job2);
  starting_.erase(std::make_pair(env, app));
  // Things may have changed while the database answered: look again.
  const auto* n = ctx_.inventory.find(node);
  if (!n || n->state != inventory::NodeState::alive || n->quarantined() || n->env != env) co_return;
  const auto want = desired_.for_node(*n, app);
  const auto current = n->apps.find(app);
  const std::string running = current == n->apps.end() ? "" : current->second.version;
  if (!want || want->version == running || ctx_.engine->running_for(app, env)) co_return;
  if (!artifacts) {
    spdlog::error("cannot converge node {}: {}", node, artifacts.error().message);
    co_return;
  }
  if (!config) {
    spdlog::error("cannot converge node {}: {}", node, config.error().message);
    co_return;
  }
  engine::DeployRequest r;
  r.kind = engine::DeployKind::converge;
  // A convergence deploy sends the config as it is now, as any deploy does.
  r.env_vars = std::move(config->vars);
  r.config_version = config->version;
  r.app = app;
  r.env = env;
  r.selector = inventory::Selector().add(inventory::eq_term("name", node)).to_string();
  bool found = false;
  for (const auto& a : *artifacts) {
    const engine::ArtifactRef ref{a.version, a.sha256, a.size};
    if (a.version == want->version) {
      r.artifact = ref;
      found = true;
    }
    if (a.version == running) r.previous[a.version] = ref;
  }
  if (!found) {
    quarantine(node, inventory::Quarantine{
                         fmt::format("cannot converge: {} {} (desired since deploy #{}) is no "
                                     "longer in the artifact repository",
                                     app, want->version, want->deploy),
                         app, 0, now_ms()});
    co_return;
  }
  r.batch = engine::BatchSize{1, false};
  r.actor = kActor;
  r.keep_releases = ctx_.opts.keep_releases;
  engine::Target t{node, n->zone, running};
  t.in_service = current != n->apps.end() && current->second.healthy;
  auto id = ctx_.engine->start(std::move(r), {t});
  if (!id) {
    spdlog::warn("cannot converge node {} to {} {}: {}", node, app, want->version,
                 id.error().message);
    co_return;
  }
  spdlog::info(
      "node {} runs {} of {} instead of {} (desired since deploy #{} by {}): converging it with "
      "deploy #{}",
      node, version_or_none(running), app, want->version, want->deploy, want->actor, *id);
  notify_drift(ctx_, node, app, running, want->version);
}

void Convergence::on_app_unhealthy(const std::string& node, const std::string& app,
                                   const std::string& version) {
  const auto* n = ctx_.inventory.find(node);
  if (!n || n->quarantined()) return;
  // A deploy that targets the node deals with it (the node fails that deploy).
  if (const auto* d = ctx_.engine->running_for(app, n->env)) {
    for (const auto& p : d->nodes) {
      if (p.node == node) return;
    }
  }
  const auto want = desired_.for_node(*n, app);
  if (!want || want->version != version) return;
  quarantine(node, inventory::Quarantine{
                       fmt::format("{} {} failed its health check while serving", app, version),
                       app, 0, now_ms()});
}

void Convergence::quarantine(const std::string& node, inventory::Quarantine q) {
  const auto* n = ctx_.inventory.find(node);
  if (!n || n->quarantined()) return;
  spdlog::warn(
      "node {} quarantined: {}; it is left out of deploys until `slipway nodes release {}`", node,
      q.reason, node);
  announce(node, "quarantined: " + q.reason);
  notify_node_quarantined(ctx_, node, q.app, q.reason);
  ctx_.db->post([node, q](store::Store& s) {
    if (auto st = s.quarantine_node(node, q); !st) {
      spdlog::error("cannot record the quarantine of node {}: {}", node, st.error().message);
    }
  });
  ctx_.inventory.set_quarantine(node, std::move(q));
}

Status Convergence::release(const std::string& node, const std::string& actor) {
  const auto* n = ctx_.inventory.find(node);
  if (!n) return err(Errc::not_found, fmt::format("no node named {}", node));
  if (!n->quarantined()) {
    return err(Errc::failed_precondition, fmt::format("node {} is not quarantined", node));
  }
  const std::string reason = n->quarantine->reason;
  ctx_.inventory.set_quarantine(node, std::nullopt);
  const TimeMs at = now_ms();
  ctx_.db->post([node, actor, at](store::Store& s) {
    if (auto r = s.release_node(node, actor, at); !r) {
      spdlog::error("cannot record the release of node {}: {}", node, r.error().message);
    }
  });
  spdlog::info("node {} released from quarantine by {} (it was quarantined: {})", node, actor,
               reason);
  announce(node, "released by " + actor);
  check(node);
  return {};
}

void Convergence::announce(const std::string& node, const std::string& what) {
  // The quarantine's notification goes out from quarantine() (server/notify_events.h).
  spdlog::debug("node {}: {}", node, what);
}

}  // namespace slipway::server
