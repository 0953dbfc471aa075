// slipway notify add|list|test|remove|log: notification hooks (webhooks, Slack, e-mail) and their
// delivery log. The subcommands are defined here (cmd_notify.cpp) and added to the CLI by cli.cpp.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace slipway::cli {

struct ClientFlags;

// Adds `notify` to `app`. `client_flags` adds --server, --token, --ca-cert and -o to a subcommand;
// the chosen subcommand sets `action`.
void add_notify_commands(CLI::App& app, ClientFlags& cf, std::function<int()>& action,
                         const std::function<void(CLI::App*, ClientFlags&)>& client_flags);

}  // namespace slipway::cli
