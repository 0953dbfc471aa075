// Enrollment commands (admin): slipway join-token create|list|revoke, slipway env
// list|protect|unprotect, slipway nodes move|approve. Defined in cmd_enroll.cpp and added to the
// CLI by cli.cpp.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace slipway::cli {

struct ClientFlags;

// Adds `join-token` and `env` to `app`, and `move` and `approve` to its `nodes` subcommand.
// `client_flags` adds --server, --token, --ca-cert and -o to a subcommand; the chosen subcommand
// sets `action`.
void add_enrollment_commands(CLI::App& app, CLI::App& nodes, ClientFlags& cf,
                             std::function<int()>& action,
                             const std::function<void(CLI::App*, ClientFlags&)>& client_flags);

}  // namespace slipway::cli
