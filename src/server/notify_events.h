// Where the server's parts tell the notifier (server/notifier.h) what happened: deploys (from the
// engine's events), lost nodes (the agent gateway), quarantines and drift (convergence). Each call
// builds the notification on the I/O thread and queues it; none blocks. A no-op until
// start_notifications has run. In api_notify.cpp, with the /api/v1/notify routes.
#pragma once

#include <string>

#include "common/error.h"
#include "engine/deploy.h"

namespace slipway::server {

class ServerContext;

// Loads the hooks (opening their secrets) and starts the notifier's workers. At start only.
Status start_notifications(ServerContext& ctx);
void register_notify_routes(ServerContext& ctx);

// deploy.started, and deploy.succeeded / deploy.failed / deploy.rolled_back from deploy.finished,
// of deploys and rollbacks (convergence deploys are told as drift instead).
void notify_deploy_event(ServerContext& ctx, const engine::DeployEvent& e, const engine::Deploy& d);
void notify_node_lost(ServerContext& ctx, const std::string& node, const std::string& why);
void notify_node_quarantined(ServerContext& ctx, const std::string& node, const std::string& app,
                             const std::string& reason);
// The node runs `running` ("" = nothing) of `app` instead of `desired`.
void notify_drift(ServerContext& ctx, const std::string& node, const std::string& app,
                  const std::string& running, const std::string& desired);

}  // namespace slipway::server
