// The server's in-memory picture of every node it has ever seen, kept in step with the agents'
// hello and heartbeat messages. Persistence is the caller's job (the server writes what changed
// to the store); this class is plain data and logic.
//
// Thread-safety: none; the server uses it from its I/O thread only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "inventory/node.h"
#include "inventory/selector.h"

namespace slipway::inventory {

class Inventory {
 public:
  // Replaces the contents with nodes loaded from the store; every node starts lost until its
  // agent connects again.
  void load(std::vector<Node> nodes);

  // An agent said hello: creates or updates the node (identity fields, apps) and marks it alive.
  // A quarantine is the server's own record: the agent's report never lifts it.
  Node& register_node(Node reported, TimeMs now);
  void touch(const std::string& name, TimeMs now);
  void mark_lost(const std::string& name, TimeMs now);
  // A revoked node stays revoked: touch and mark_lost leave it so. False for an unknown node.
  bool mark_revoked(const std::string& name);
  // Replaces what the node reported about its apps (apps it no longer reports are dropped).
  void set_apps(const std::string& name, const std::map<std::string, NodeApp>& apps, TimeMs now);
  void set_app(const std::string& name, const std::string& app, const NodeApp& state, TimeMs now);

  // Quarantines the node (a value) or lifts its quarantine (nullopt); false for an unknown node.
  bool set_quarantine(const std::string& name, std::optional<Quarantine> q);

  // Alive nodes whose last_seen is older than `lost_after`; they are marked lost and returned.
  std::vector<std::string> expire(TimeMs now, Millis lost_after);

  const Node* find(const std::string& name) const;
  // Nodes matching, sorted by name; lost ones only when include_lost.
  std::vector<const Node*> select(const Selector& sel, bool include_lost) const;
  std::vector<const Node*> all() const;
  size_t size() const { return nodes_.size(); }
  size_t alive_count() const;

 private:
  std::map<std::string, Node> nodes_;
};

}  // namespace slipway::inventory
