#include "engine/desired.h"

namespace slipway::engine {

std::vector<DesiredRecord> desired_records_of(const Deploy& d) {
  std::vector<DesiredRecord> out;
  if (d.state != DeployState::succeeded || d.kind == DeployKind::converge) return out;
  DesiredRecord base;
  base.env = d.env;
  base.app = d.app;
  base.version = d.version;
  base.deploy = d.id;
  base.actor = d.actor;
  base.set_at = d.finished_at;
  out.reserve(d.nodes.size() + 1);
  DesiredRecord scope = base;
  scope.selector = d.selector;
  out.push_back(std::move(scope));
  for (const auto& n : d.nodes) {
    DesiredRecord r = base;
    r.node = n.node;
    out.push_back(std::move(r));
  }
  return out;
}

void DesiredState::load(const std::vector<DesiredRecord>& records) {
  scopes_.clear();
  nodes_.clear();
  apply(records);
}

void DesiredState::apply(const std::vector<DesiredRecord>& records) {
  for (const auto& r : records) {
    if (r.is_scope()) {
      Scope s{r, std::nullopt};
      if (auto sel = inventory::Selector::parse(r.selector)) s.selector = std::move(*sel);
      scopes_[r.env].insert_or_assign(std::make_pair(r.app, r.selector), std::move(s));
    } else {
      nodes_[r.node].insert_or_assign(r.app, r);
    }
  }
}

std::map<std::string, DesiredRecord> DesiredState::for_node(const inventory::Node& n) const {
  std::map<std::string, DesiredRecord> out;
  auto take = [&out](const DesiredRecord& r) {
    auto [it, inserted] = out.try_emplace(r.app, r);
    if (!inserted && r.deploy > it->second.deploy) it->second = r;
  };
  if (auto it = nodes_.find(n.name); it != nodes_.end()) {
    for (const auto& [app, r] : it->second) {
      if (r.env == n.env) take(r);
    }
  }
  if (auto it = scopes_.find(n.env); it != scopes_.end()) {
    for (const auto& [key, s] : it->second) {
      if (s.selector && s.selector->matches(n)) take(s.record);
    }
  }
  return out;
}

std::optional<DesiredRecord> DesiredState::for_node(const inventory::Node& n,
                                                    const std::string& app) const {
  auto all = for_node(n);
  auto it = all.find(app);
  if (it == all.end()) return std::nullopt;
  return std::move(it->second);
}

std::vector<Lag> DesiredState::lagging(const inventory::Node& n) const {
  std::vector<Lag> out;
  for (auto& [app, r] : for_node(n)) {
    auto it = n.apps.find(app);
    const std::string running = it == n.apps.end() ? "" : it->second.version;
    if (running != r.version) out.push_back(Lag{app, running, std::move(r)});
  }
  return out;
}

size_t DesiredState::size() const {
  size_t n = 0;
  for (const auto& [env, m] : scopes_)
    n += m.size();
  for (const auto& [node, m] : nodes_)
    n += m.size();
  return n;
}

}  // namespace slipway::engine
