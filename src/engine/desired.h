// Desired state: what each node should run, and which nodes lag behind it.
//
// A deploy or a rollback that ends succeeded sets the desired release of its app twice over:
//   - a node record for every node it targeted, and
//   - a scope record for its environment plus its selector, which also covers the nodes it could
//     not target: those that were lost while it ran, and machines that join later.
// The desired release of (node, app) is that of the newest record (highest deploy id) covering
// it: its own node record in its current environment, or a scope record of its environment whose
// selector matches it now. So a node that was down during a deploy of its whole environment wants
// that deploy's version, a new api node wants the newest release deployed to role=api (or to the
// whole environment, if that came later), and a worker is not touched by a deploy to role=api.
//
// Failed and rolled-back deploys set nothing (the previous desired release stands); neither does
// a convergence (a deploy of kind converge), which only brings a node to what is desired already.
//
// A node lags for an app when it runs another version of it than the desired one, or none: the
// server converges it by itself (server/convergence.h), and `status` shows it as drift.
//
// Plain logic, no I/O; not thread-safe (the server uses it from its I/O thread).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "engine/deploy.h"
#include "inventory/node.h"
#include "inventory/selector.h"

namespace slipway::engine {

struct DesiredRecord {
  std::string env;
  std::string app;
  std::string node;      // a node record; "" for a scope record
  std::string selector;  // a scope record: the terms beyond env (canonical), "" = the whole env
  std::string version;
  DeployId deploy = 0;  // the deploy that set it
  std::string actor;    // who started that deploy
  TimeMs set_at = 0;

  bool is_scope() const { return node.empty(); }
};

// The records a finished deploy sets: none unless it succeeded, none for a convergence.
std::vector<DesiredRecord> desired_records_of(const Deploy& d);

// An app a node runs another version of than its desired one (or none).
struct Lag {
  std::string app;
  std::string running;  // "" when the node does not run the app
  DesiredRecord desired;
};

class DesiredState {
 public:
  // Replaces everything (the records the store holds).
  void load(const std::vector<DesiredRecord>& records);
  // Adds records, each replacing the one with the same key (env, app, node, selector).
  void apply(const std::vector<DesiredRecord>& records);

  // app -> the record that says what the node should run.
  std::map<std::string, DesiredRecord> for_node(const inventory::Node& n) const;
  std::optional<DesiredRecord> for_node(const inventory::Node& n, const std::string& app) const;
  // The node's apps whose running version differs from the desired one, by app name.
  std::vector<Lag> lagging(const inventory::Node& n) const;

  size_t size() const;

 private:
  struct Scope {
    DesiredRecord record;
    std::optional<inventory::Selector> selector;  // nullopt: stored text that no longer parses
  };
  // env -> (app, selector) -> scope record
  std::map<std::string, std::map<std::pair<std::string, std::string>, Scope>> scopes_;
  // node -> app -> node record
  std::map<std::string, std::map<std::string, DesiredRecord>> nodes_;
};

}  // namespace slipway::engine
