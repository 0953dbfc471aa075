// Health checks of an app on its node: HTTP (2xx), TCP connect, or a command (exit 0).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "agent/process.h"
#include "artifacts/manifest.h"

namespace slipway::agent {

struct ProbeResult {
  bool healthy = false;
  std::string detail;  // "HTTP 200", "HTTP 500: <body start>", "connection refused", ...
};

// One probe. `check.target` must already have its variables expanded; `ctx` gives the working
// directory and environment for a command check. Each probe is bounded by `probe_timeout`.
ProbeResult probe_once(const artifacts::HealthCheck& check, const ProcessSpec& ctx,
                       Millis probe_timeout);

struct HealthOutcome {
  bool healthy = false;
  std::string detail;  // the last probe's detail, or why waiting stopped
  Millis waited{0};
  int probes = 0;
};

// Probes every check.interval until the app has been healthy without a break for
// check.healthy_for (healthy; the window opens when the first healthy probe answers, so a
// non-zero healthy_for needs at least two healthy probes), or check.timeout has passed (unhealthy),
// or `alive()` returns false (unhealthy: the process exited), or `cancelled` becomes true. A
// HealthKind::none check is healthy at once.
HealthOutcome wait_healthy(const artifacts::HealthCheck& check, const ProcessSpec& ctx,
                           const std::function<bool()>& alive,
                           const std::atomic<bool>* cancelled = nullptr);

}  // namespace slipway::agent
