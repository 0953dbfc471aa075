// The four delivery metrics of DevOps research (DORA), computed from the deploy history of apps
// in environments: deploy frequency, lead time for changes (push to deployed), change failure
// rate and time to restore. Plain logic over records; the server loads them.
//
// A change is a deploy of kind `deploy` that has finished (rollbacks and convergence are not
// changes). It succeeded, or it failed: state failed or rolled_back.
//   - deploy frequency: successful changes per day over the window;
//   - lead time: from the push of the version to the end of the successful change (median);
//   - change failure rate: failed changes over finished changes;
//   - time to restore: from the start of a failed change to the end of what restored service:
//     its own automatic rollback (state rolled_back), else the next successful deploy or rollback
//     of the same app in the same environment (median). A failure nothing has restored yet is
//     counted in `unrestored`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/deploy.h"

namespace slipway::engine {

struct DeliveryRecord {
  DeployKind kind = DeployKind::deploy;
  DeployState state = DeployState::running;
  std::string app;
  std::string env;
  std::string version;
  TimeMs started_at = 0;
  TimeMs finished_at = 0;
  TimeMs pushed_at = 0;  // when the version was pushed; 0 when unknown
};

struct DeliveryDay {
  std::string day;  // YYYY-MM-DD (UTC)
  int deploys = 0;  // successful changes that finished that day
  int failures = 0;
  std::optional<double> lead_time_s;  // medians, of the changes (failures) that finished that day
  std::optional<double> restore_s;
};

struct DeliveryMetrics {
  int days = 0;
  TimeMs from = 0;  // the window: [from, to)
  TimeMs to = 0;
  int deploys = 0;  // successful changes
  int failures = 0;
  int unrestored = 0;
  double deploys_per_day = 0;
  std::optional<double> lead_time_s;
  std::optional<double> change_failure_rate;  // 0..1; none when nothing finished
  std::optional<double> restore_s;
  std::vector<DeliveryDay> series;  // one per day of the window, oldest first
};

// The start of the window of `days` UTC days that ends with the day of `now`: the records to load
// are those of deploys started since.
TimeMs delivery_window_start(TimeMs now, int days);

// The metrics of `records` (any order; those outside the window are ignored, except as what
// restored a failure in it) for the `days` UTC days that end with the day of `now`.
DeliveryMetrics delivery_metrics(std::vector<DeliveryRecord> records, TimeMs now, int days);

}  // namespace slipway::engine
