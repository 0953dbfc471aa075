// A finished deploy of app "web" to "staging", as the engine would leave it, for the tests of
// desired state (engine) and of its records (store).
#pragma once

#include <string>
#include <vector>

#include "engine/deploy.h"

namespace slipway::engine::testing {

inline Deploy finished_deploy(DeployId id, std::string version, std::string selector,
                              std::vector<std::string> nodes = {},
                              DeployState state = DeployState::succeeded,
                              DeployKind kind = DeployKind::deploy) {
  Deploy d;
  d.id = id;
  d.kind = kind;
  d.app = "web";
  d.version = std::move(version);
  d.env = "staging";
  d.selector = std::move(selector);
  d.state = state;
  d.actor = "ann@host";
  d.created_at = 100 * id;
  d.finished_at = 100 * id + 50;
  for (auto& n : nodes) {
    NodeProgress p;
    p.node = std::move(n);
    p.status = state == DeployState::succeeded ? NodeStatus::healthy : NodeStatus::reverted;
    d.nodes.push_back(std::move(p));
  }
  d.recount();
  return d;
}

}  // namespace slipway::engine::testing
