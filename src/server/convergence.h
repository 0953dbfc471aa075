// Desired state on the server (engine/desired.h for the rules): records what successful deploys
// set, brings lagging nodes to their desired release by themselves, and quarantines the nodes
// that cannot get there or whose app fails its health check while serving.
//
// Convergence: when a node says hello, when it is released, and about once a second for every
// alive node, each app the node runs another version of than the desired one (or not at all) gets
// a deploy of kind `converge` to that node only, started by "slipway (convergence)" through the
// engine like any other (journaled, shown in the history, reverted when it fails). None starts
// while a deploy of that app to that environment runs (the next round tries again). A freeze does
// not stop a convergence: it brings a node to a release that was deployed already, it changes
// nothing that was not approved.
//
// Quarantine: a node whose convergence fails (in any way: its health check, a hook, a lost
// connection, an abort), or whose app stops being healthy on its desired version outside a
// deploy that targets it, is quarantined: left out of deploys, rollbacks, runs and convergence,
// shown in `nodes` and `status`, until `slipway nodes release NAME`, which converges it again.
// Quarantines are kept in the store (a log: why, when, who lifted them).
//
// It is the engine's EventSink: it passes every event on to the next sink (the watchers) and
// reads deploy.finished. Thread-safety: none; the server's I/O thread only.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "engine/desired.h"
#include "engine/interfaces.h"
#include "inventory/node.h"

namespace slipway::server {

class ServerContext;

class Convergence final : public engine::EventSink {
 public:
  // Who starts convergence deploys (their actor) and quarantines nodes.
  static constexpr const char* kActor = "slipway (convergence)";

  Convergence(ServerContext& ctx, engine::EventSink& next);

  // At start: the desired state the store holds.
  void load(const std::vector<engine::DesiredRecord>& records);
  const engine::DesiredState& desired() const { return desired_; }

  void on_event(const engine::DeployEvent& e, const engine::Deploy& d) override;

  // Converges what the node lags behind in (it said hello, or was released).
  void check(const std::string& node);
  // Retries every alive node; call it about once a second.
  void tick();
  // A heartbeat says the node's app, healthy before, no longer is.
  void on_app_unhealthy(const std::string& node, const std::string& app,
                        const std::string& version);
  // Lifts the node's quarantine (`actor` is recorded) and converges it. not_found for an unknown
  // node, failed_precondition when it is not quarantined.
  Status release(const std::string& node, const std::string& actor);

 private:
  void consider(const inventory::Node& n);
  boost::asio::awaitable<void> converge(std::string node, std::string env, std::string app);
  void quarantine(const std::string& node, inventory::Quarantine q);
  // Logs every quarantine and release (quarantines are also notified: notify_events.h).
  void announce(const std::string& node, const std::string& what);

  ServerContext& ctx_;
  engine::EventSink& next_;
  engine::DesiredState desired_;
  // (env, app) whose convergence is being started (reading its artifacts): one at a time.
  std::set<std::pair<std::string, std::string>> starting_;
};

}  // namespace slipway::server
