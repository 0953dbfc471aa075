// A node of the inventory: a machine with an agent, as the server knows it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace slipway::inventory {

// revoked: `slipway nodes revoke`; its agent is cut off for good and never targeted.
enum class NodeState { alive, lost, revoked };
std::string_view node_state_name(NodeState s);

// One app as a node last reported it.
struct NodeApp {
  std::string version;  // current release; empty when none
  bool healthy = false;
  bool running = false;
  int port = 0;
  std::vector<std::string> releases;
  std::string last_healthy;
  TimeMs updated_at = 0;
};

// Why a node is left out of deploys, rollbacks, runs and convergence until someone releases it
// (`slipway nodes release NAME`): its convergence failed, or an app failed its health check
// while serving.
struct Quarantine {
  std::string reason;
  std::string app;     // the app that failed ("" when none in particular)
  int64_t deploy = 0;  // the convergence deploy that failed (0 when none)
  TimeMs since = 0;
};

struct Node {
  std::string name;
  std::string env;
  std::vector<std::string> roles;
  std::string zone;
  std::map<std::string, std::string> tags;
  std::string address;
  std::string agent_version;
  TimeMs first_seen = 0;
  TimeMs last_seen = 0;
  NodeState state = NodeState::lost;
  std::map<std::string, NodeApp> apps;
  std::optional<Quarantine> quarantine;  // kept when the agent registers again

  bool quarantined() const { return quarantine.has_value(); }
  bool has_role(std::string_view role) const;
};

}  // namespace slipway::inventory
