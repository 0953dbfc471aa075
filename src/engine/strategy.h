// Rollout strategies: how the targets of a deploy are ordered into groups and waves.
//
//   rolling  one group; waves of --batch nodes, each wave after the previous one is done
//   canary   the canary nodes first (one wave), then a gate (wait for `promote`, or a timer while
//            the canaries stay healthy), then the rest in waves of --batch
//   zones    one group per zone, in the given order (sorted otherwise), rolling inside each zone;
//            the rollout stops at the first zone that fails
//   all      every targeted node at once
//
// With --max-unavailable, a group is not split into waves: its nodes are updated as a sliding
// window, those already out of service first, never taking more in-service nodes out than the
// limit allows (Kubernetes' meaning: nodes already unhealthy count). --batch then caps how many are
// in flight at once.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/deploy.h"

namespace slipway::engine {

enum class Strategy { rolling, canary, zones, all };
std::string_view strategy_name(Strategy s);
Result<Strategy> parse_strategy(std::string_view text);

// --canary N | N% | tag:KEY=VALUE
struct CanarySpec {
  bool by_tag = false;
  BatchSize count{1, false};
  std::string key;
  std::string value;
  static Result<CanarySpec> parse(std::string_view text);
  std::string to_string() const;
};

// What the deploy does once a group is done.
enum class Gate {
  none,
  promote,  // waits for `slipway promote ID`
  wait,     // waits a duration, promoted by itself if the group's nodes stay healthy
};

struct PlanGroup {
  std::string name;  // "canary", "zone a", "" (the whole rollout)
  Gate gate = Gate::none;
};

struct PlanWave {
  size_t group = 0;
  std::vector<size_t> nodes;  // indices into the sorted targets
  int max_inflight = 0;       // how many may be in flight at once (the wave's size normally)
};

struct Plan {
  std::vector<PlanGroup> groups;
  std::vector<PlanWave> waves;
};

struct PlanTarget {
  std::string zone;
  bool canary = false;
  bool in_service = true;
};

struct PlanOptions {
  Strategy strategy = Strategy::rolling;
  BatchSize batch;
  std::optional<BatchSize> max_unavailable;
  Gate canary_gate = Gate::none;
  std::vector<std::string> zone_order;  // zones: the order given; empty = sorted
};

// Splits `targets` (already in their final order) into groups and waves. Errors:
// invalid_argument for a canary strategy without canaries, or zones missing from zone_order.
Result<Plan> make_plan(const PlanOptions& opts, const std::vector<PlanTarget>& targets);

}  // namespace slipway::engine
