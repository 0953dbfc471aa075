#include "engine/strategy.h"

#include <algorithm>
#include <array>
#include <map>

#include <fmt/format.h>

#include "common/names.h"

namespace slipway::engine {

namespace {
constexpr std::array<std::string_view, 4> kStrategies{"rolling", "canary", "zones", "all"};
}  // namespace

std::string_view strategy_name(Strategy s) {
  return kStrategies.at(static_cast<size_t>(s));
}

Result<Strategy> parse_strategy(std::string_view text) {
  for (size_t i = 0; i < kStrategies.size(); ++i) {
    if (kStrategies[i] == text) return static_cast<Strategy>(i);
  }
  return err(
      Errc::invalid_argument,
      fmt::format("unknown strategy '{}': use rolling, canary, zones or all", text.substr(0, 32)));
}

Result<CanarySpec> CanarySpec::parse(std::string_view text) {
  CanarySpec c;
  if (text.starts_with("tag:")) {
    const std::string_view kv = text.substr(4);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == kv.size()) {
      return err(Errc::invalid_argument,
                 fmt::format("canary '{}' is not valid: write tag:KEY=VALUE", text.substr(0, 64)));
    }
    c.by_tag = true;
    c.key = std::string(kv.substr(0, eq));
    c.value = std::string(kv.substr(eq + 1));
    if (auto st = validate_name(NameKind::tag_key, c.key); !st) return st.error();
    if (auto st = validate_name(NameKind::tag_value, c.value); !st) return st.error();
    return c;
  }
  auto n = BatchSize::parse(text);
  if (!n) {
    return err(Errc::invalid_argument,
               fmt::format("canary '{}' is not valid: give a number of nodes (1), a percentage of "
                           "them (10%) or tag:KEY=VALUE",
                           text.substr(0, 32)));
  }
  c.count = *n;
  return c;
}

std::string CanarySpec::to_string() const {
  return by_tag ? fmt::format("tag:{}={}", key, value) : count.to_string();
}

namespace {

// Adds the waves of one group: fixed waves of the batch size, or (with max-unavailable) one
// sliding wave, nodes out of service first.
void add_group_waves(const PlanOptions& opts, const std::vector<PlanTarget>& targets,
                     std::vector<size_t> nodes, size_t group, int batch_base, Plan& plan) {
  if (nodes.empty()) return;
  const int per = opts.batch.resolve(batch_base);
  if (opts.max_unavailable) {
    std::stable_partition(nodes.begin(), nodes.end(),
                          [&](size_t i) { return !targets[i].in_service; });
    PlanWave w;
    w.group = group;
    w.max_inflight = std::max(1, per);
    w.nodes = std::move(nodes);
    plan.waves.push_back(std::move(w));
    return;
  }
  for (size_t start = 0; start < nodes.size(); start += static_cast<size_t>(per)) {
    PlanWave w;
    w.group = group;
    const size_t end = std::min(nodes.size(), start + static_cast<size_t>(per));
    w.nodes.assign(nodes.begin() + static_cast<long>(start),
                   nodes.begin() + static_cast<long>(end));
    w.max_inflight = static_cast<int>(w.nodes.size());
    plan.waves.push_back(std::move(w));
  }
}

}  // namespace

Result<Plan> make_plan(const PlanOptions& opts, const std::vector<PlanTarget>& targets) {
  Plan plan;
  const int total = static_cast<int>(targets.size());
  std::vector<size_t> all(targets.size());
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;

  switch (opts.strategy) {
    case Strategy::rolling:
      plan.groups.push_back(PlanGroup{"", Gate::none});
      add_group_waves(opts, targets, all, 0, total, plan);
      break;
    case Strategy::all: {
      plan.groups.push_back(PlanGroup{"", Gate::none});
      PlanOptions o = opts;
      o.batch = BatchSize{100, true};
      add_group_waves(o, targets, all, 0, total, plan);
      break;
    }
    case Strategy::canary: {
      std::vector<size_t> canaries;
      std::vector<size_t> rest;
      for (size_t i : all)
        (targets[i].canary ? canaries : rest).push_back(i);
      if (canaries.empty()) {
        return err(Errc::invalid_argument, "the canary strategy needs at least one canary node");
      }
      plan.groups.push_back(PlanGroup{"canary", rest.empty() ? Gate::none : opts.canary_gate});
      PlanOptions o = opts;
      o.batch = BatchSize{100, true};  // the canaries go together
      add_group_waves(o, targets, canaries, 0, static_cast<int>(canaries.size()), plan);
      if (!rest.empty()) {
        plan.groups.push_back(PlanGroup{"rest", Gate::none});
        add_group_waves(opts, targets, rest, 1, total, plan);
      }
      break;
    }
    case Strategy::zones: {
      std::map<std::string, std::vector<size_t>> by_zone;
      for (size_t i : all)
        by_zone[targets[i].zone].push_back(i);
      std::vector<std::string> order = opts.zone_order;
      if (order.empty()) {
        for (const auto& [zone, nodes] : by_zone)
          order.push_back(zone);
      } else {
        std::vector<std::string> unlisted;
        for (const auto& [zone, nodes] : by_zone) {
          if (std::find(order.begin(), order.end(), zone) == order.end())
            unlisted.push_back(zone.empty() ? "(no zone)" : zone);
        }
        if (!unlisted.empty()) {
          return err(Errc::invalid_argument,
                     fmt::format("targeted nodes are in zone(s) {} that --zones does not list; "
                                 "list every zone, or narrow the selector",
                                 fmt::join(unlisted, ", ")));
        }
      }
      for (const auto& zone : order) {
        auto it = by_zone.find(zone);
        if (it == by_zone.end()) continue;  // a listed zone with no targets
        const size_t g = plan.groups.size();
        plan.groups.push_back(PlanGroup{"zone " + (zone.empty() ? "(none)" : zone), Gate::none});
        add_group_waves(opts, targets, it->second, g, static_cast<int>(it->second.size()), plan);
      }
      break;
    }
  }
  return plan;
}

}  // namespace slipway::engine
