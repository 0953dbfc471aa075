#include "engine/delivery_metrics.h"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

namespace slipway::engine {

namespace {

constexpr TimeMs kDayMs = 24LL * 3600 * 1000;

std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string day_name(TimeMs t) {
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

bool is_failure(DeployState s) {
  return s == DeployState::failed || s == DeployState::rolled_back;
}

}  // namespace

TimeMs delivery_window_start(TimeMs now, int days) {
  return (now / kDayMs + 1 - std::max(days, 1)) * kDayMs;
}

DeliveryMetrics delivery_metrics(std::vector<DeliveryRecord> records, TimeMs now, int days) {
  DeliveryMetrics m;
  m.days = std::max(days, 1);
  m.from = delivery_window_start(now, m.days);
  m.to = m.from + m.days * kDayMs;  // the end of today (UTC)
  std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
    return a.finished_at != b.finished_at ? a.finished_at < b.finished_at
                                          : a.started_at < b.started_at;
  });
  std::vector<std::vector<double>> lead_by_day(static_cast<size_t>(m.days));
  std::vector<std::vector<double>> restore_by_day(static_cast<size_t>(m.days));
  m.series.resize(static_cast<size_t>(m.days));
  for (int i = 0; i < m.days; ++i)
    m.series[static_cast<size_t>(i)].day = day_name(m.from + i * kDayMs);
  std::vector<double> leads;
  std::vector<double> restores;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const bool finished = r.state == DeployState::succeeded || is_failure(r.state);
    if (r.kind != DeployKind::deploy || !finished || r.finished_at <= 0) continue;
    if (r.finished_at < m.from || r.finished_at >= m.to) continue;
    const size_t d = static_cast<size_t>((r.finished_at - m.from) / kDayMs);
    auto& day = m.series[d];
    if (r.state == DeployState::succeeded) {
      ++m.deploys;
      ++day.deploys;
      if (r.pushed_at > 0 && r.pushed_at <= r.finished_at) {
        const double s = static_cast<double>(r.finished_at - r.pushed_at) / 1000.0;
        leads.push_back(s);
        lead_by_day[d].push_back(s);
      }
      continue;
    }
    ++m.failures;
    ++day.failures;
    TimeMs restored_at = 0;
    if (r.state == DeployState::rolled_back) {
      restored_at = r.finished_at;
    } else {
      for (size_t j = i + 1; j < records.size() && !restored_at; ++j) {
        const auto& n = records[j];
        if (n.app == r.app && n.env == r.env && n.state == DeployState::succeeded &&
            (n.kind == DeployKind::deploy || n.kind == DeployKind::rollback)) {
          restored_at = n.finished_at;
        }
      }
    }
    if (!restored_at) {
      ++m.unrestored;
      continue;
    }
    const double s =
        static_cast<double>(restored_at - std::min(r.started_at, restored_at)) / 1000.0;
    restores.push_back(s);
    restore_by_day[d].push_back(s);
  }
  for (size_t d = 0; d < m.series.size(); ++d) {
    m.series[d].lead_time_s = median(lead_by_day[d]);
    m.series[d].restore_s = median(restore_by_day[d]);
  }
  m.deploys_per_day = static_cast<double>(m.deploys) / m.days;
  m.lead_time_s = median(leads);
  m.restore_s = median(restores);
  if (m.deploys + m.failures > 0) {
    m.change_failure_rate = static_cast<double>(m.failures) / (m.deploys + m.failures);
  }
  return m;
}

}  // namespace slipway::engine
