#include "inventory/inventory.h"

namespace slipway::inventory {

void Inventory::load(std::vector<Node> nodes) {
  nodes_.clear();
  for (auto& n : nodes) {
    n.state = NodeState::lost;
    auto name = n.name;
    nodes_.emplace(std::move(name), std::move(n));
  }
}

Node& Inventory::register_node(Node reported, TimeMs now) {
  auto [it, inserted] = nodes_.try_emplace(reported.name);
  Node& n = it->second;
  const TimeMs first_seen = inserted ? now : n.first_seen;
  auto quarantine = std::move(n.quarantine);
  n = std::move(reported);
  n.first_seen = first_seen;
  n.quarantine = std::move(quarantine);
  n.last_seen = now;
  n.state = NodeState::alive;
  return n;
}

void Inventory::touch(const std::string& name, TimeMs now) {
  if (auto it = nodes_.find(name); it != nodes_.end() && it->second.state != NodeState::revoked) {
    it->second.last_seen = now;
    it->second.state = NodeState::alive;
  }
}

void Inventory::mark_lost(const std::string& name, TimeMs now) {
  if (auto it = nodes_.find(name); it != nodes_.end() && it->second.state != NodeState::revoked)
    it->second.state = NodeState::lost;
}

bool Inventory::mark_revoked(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return false;
  it->second.state = NodeState::revoked;
  return true;
}

void Inventory::set_apps(const std::string& name, const std::map<std::string, NodeApp>& apps,
                         TimeMs now) {
  if (auto it = nodes_.find(name); it != nodes_.end()) {
    it->second.apps = apps;
    for (auto& [app, s] : it->second.apps)
      s.updated_at = now;
  }
}

void Inventory::set_app(const std::string& name, const std::string& app, const NodeApp& state,
                        TimeMs now) {
  if (auto it = nodes_.find(name); it != nodes_.end()) {
    auto& s = it->second.apps[app];
    s = state;
    s.updated_at = now;
    if (s.version.empty() && s.releases.empty()) it->second.apps.erase(app);
  }
}

bool Inventory::set_quarantine(const std::string& name, std::optional<Quarantine> q) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return false;
  it->second.quarantine = std::move(q);
  return true;
}

std::vector<std::string> Inventory::expire(TimeMs now, Millis lost_after) {
  std::vector<std::string> lost;
  for (auto& [name, n] : nodes_) {
    if (n.state == NodeState::alive && now - n.last_seen > lost_after.count()) {
      n.state = NodeState::lost;
      lost.push_back(name);
    }
  }
  return lost;
}

const Node* Inventory::find(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<const Node*> Inventory::select(const Selector& sel, bool include_lost) const {
  std::vector<const Node*> out;
  for (const auto& [name, n] : nodes_) {
    if (!include_lost && n.state != NodeState::alive) continue;
    if (sel.matches(n)) out.push_back(&n);
  }
  return out;
}

std::vector<const Node*> Inventory::all() const {
  std::vector<const Node*> out;
  out.reserve(nodes_.size());
  for (const auto& [name, n] : nodes_)
    out.push_back(&n);
  return out;
}

size_t Inventory::alive_count() const {
  size_t c = 0;
  for (const auto& [name, n] : nodes_)
    c += n.state == NodeState::alive ? 1 : 0;
  return c;
}

}  // namespace slipway::inventory
