// slipway.yaml, the app manifest that every artifact holds at its root.
//
//   start: ./bin/server --port ${SLIPWAY_PORT}   # a process the agent supervises
//   # or restart: systemctl restart billing      # a command, where something else supervises
//   stop: ./bin/stop                             # optional, with restart:
//   port: 8080                                   # optional: a fixed port (else the agent picks)
//   env: { LOG_LEVEL: info }                     # optional: environment for hooks and the app
//   stop_timeout: 10s                            # SIGTERM, then SIGKILL after this long
//   hooks:                                       # each runs in the release directory, /bin/sh -c
//     after_install: ./bin/migrate --check
//     before_start: ...
//     after_start: ...
//     before_stop: ...
//   hook_timeout: 5m
//   drain: ./bin/lb-out $SLIPWAY_TARGET_NODE     # optional: out of the load balancer before the
//   undrain:                                     # update, back in once healthy; a command, or:
//     command: echo "set server web/$SLIPWAY_TARGET_NODE state ready" | socat stdio unix:/run/lb
//     on: role=lb                                # run on these nodes instead of the node itself
//     timeout: 30s
//   health:
//     http: http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health   # 2xx is healthy
//     # or tcp: ${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}
//     # or command: ./bin/check
//     timeout: 30s       # give up on the node after this
//     healthy_for: 2s    # must stay healthy this long
//     interval: 500ms    # time between probes
//
// Variables ${SLIPWAY_ADDRESS}, ${SLIPWAY_PORT}, ${SLIPWAY_APP}, ${SLIPWAY_VERSION},
// ${SLIPWAY_ENV}, ${SLIPWAY_NODE} and ${SLIPWAY_RELEASE_DIR} are expanded by the agent; the
// manifest parser leaves them in place.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"

namespace slipway::artifacts {

enum class HealthKind { none, http, tcp, command };

struct HealthCheck {
  HealthKind kind = HealthKind::none;
  std::string target;  // URL, host:port or command, variables not yet expanded
  Millis timeout{30'000};
  Millis healthy_for{2'000};
  Millis interval{500};
};

// A load-balancer command (drain or undrain), run by the agent of the node being updated, or of
// the nodes `on` selects (a selector, checked by the server), with /bin/sh -c.
struct LbCommand {
  std::string command;
  std::string on;
  Millis timeout{30'000};
};

struct Manifest {
  std::string start;    // either start ...
  std::string restart;  // ... or restart is set, never both
  std::string stop;
  std::optional<int> port;
  std::map<std::string, std::string> env;
  Millis stop_timeout{10'000};
  std::map<std::string, std::string> hooks;  // hook name -> command
  Millis hook_timeout{300'000};
  HealthCheck health;
  std::optional<LbCommand> drain;
  std::optional<LbCommand> undrain;
};

// The hooks a manifest may name, in the order the agent runs them.
inline constexpr std::string_view kHookNames[] = {"after_install", "before_stop", "before_start",
                                                  "after_start"};

// Parses and validates a manifest. Errors are invalid_argument and read
// "slipway.yaml line L: <reason>" (line numbers from 1).
Result<Manifest> parse_manifest(std::string_view yaml_text);

// The manifest as the server stores it and sends it to agents.
json::value manifest_to_json(const Manifest& m);
Result<Manifest> manifest_from_json(const json::value& v);

std::string_view health_kind_name(HealthKind kind);  // "none", "http", "tcp", "command"

}  // namespace slipway::artifacts
