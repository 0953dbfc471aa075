// Starting a deploy or a rollback, as the deploy routes do it and as each stage of a deploy plan
// (and each of its rollbacks) does it: parse and check a request, then pick the version and the
// nodes, apply the freeze check and hand the deploy to the engine. Internal to the server.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"
#include "engine/deploy.h"
#include "engine/strategy.h"
#include "inventory/selector.h"

namespace slipway::server {

class ServerContext;

struct DeployParams {
  engine::DeployKind kind = engine::DeployKind::deploy;
  std::string app;
  std::string version;  // "" = newest (deploy) or previous successful (rollback)
  std::string env;
  inventory::Selector extra;  // beyond env
  std::optional<engine::BatchSize> batch;
  int max_failures = 0;
  engine::Strategy strategy = engine::Strategy::rolling;
  engine::CanarySpec canary;
  engine::Gate canary_gate = engine::Gate::none;
  Millis canary_wait{0};
  std::vector<std::string> zones;
  std::optional<engine::BatchSize> max_unavailable;
  Millis healthy_deadline{0};
  Millis progress_deadline{0};
  bool force = false;  // deploy through a freeze (recorded)
  // Only these nodes (of those the selector matches); empty = every one. Not part of the HTTP
  // request: a plan's rollback of a stage uses it to take back exactly the nodes it changed.
  std::vector<std::string> only_nodes;
  // The user the client named (X-Slipway-User), recorded beside the actor; not part of the body.
  std::string claimed_user;
};

// A deploy (or rollback) request body, checked strictly; errors start with `context` ("deploy
// request", "stage 2 (api)").
Result<DeployParams> parse_deploy_params(const json::value& body, engine::DeployKind kind,
                                         const std::string& context);

// A duration field of a request: "30s", "5m", ... (absent = 0); more than 0 and at most 30 days.
Result<Millis> duration_field(JsonReader& r, std::string_view key);

struct StartedDeploy {
  engine::DeployId id = 0;
  std::vector<std::string> lost;         // matching nodes left out because they are lost
  std::vector<std::string> quarantined;  // matching nodes left out because they are quarantined
};

// Picks the version and the targets, checks freezes (deploys only; `force` goes through) and
// starts the deploy in the engine. Returns as soon as the engine has it (no suspension after
// Engine::start), so the caller can look the deploy up before anything else runs.
boost::asio::awaitable<Result<StartedDeploy>> launch_deploy(ServerContext& ctx, DeployParams p,
                                                            std::string actor);

}  // namespace slipway::server
