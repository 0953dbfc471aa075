// The four delivery metrics from deploy records (engine/delivery_metrics.h).
#include "engine/delivery_metrics.h"

#include <gtest/gtest.h>

namespace slipway::engine {
namespace {

constexpr TimeMs kDay = 24LL * 3600 * 1000;
constexpr TimeMs kHour = 3600LL * 1000;
// 2026-12-02T12:00:00Z
constexpr TimeMs kNow = 1'796'212'800'000;

DeliveryRecord change(DeployState state, TimeMs started, TimeMs finished, TimeMs pushed = 0,
                      const std::string& app = "web", const std::string& env = "production") {
  DeliveryRecord r;
  r.kind = DeployKind::deploy;
  r.state = state;
  r.app = app;
  r.env = env;
  r.version = "1.0.0";
  r.started_at = started;
  r.finished_at = finished;
  r.pushed_at = pushed;
  return r;
}

TEST(DeliveryMetrics, AnEmptyHistoryHasNoRatesAndAZeroFrequency) {
  const auto m = delivery_metrics({}, kNow, 7);
  EXPECT_EQ(m.days, 7);
  EXPECT_EQ(m.series.size(), 7u);
  EXPECT_EQ(m.series.back().day, "2026-12-02");
  EXPECT_EQ(m.series.front().day, "2026-11-26");
  EXPECT_EQ(m.deploys, 0);
  EXPECT_DOUBLE_EQ(m.deploys_per_day, 0);
  EXPECT_FALSE(m.change_failure_rate);
  EXPECT_FALSE(m.lead_time_s);
  EXPECT_FALSE(m.restore_s);
  EXPECT_EQ(m.to - m.from, 7 * kDay);
}

TEST(DeliveryMetrics, FrequencyLeadTimeAndFailureRate) {
  std::vector<DeliveryRecord> r;
  // Three successes today: pushed 1h, 2h and 6h before they finished.
  r.push_back(change(DeployState::succeeded, kNow - 2 * kHour, kNow - kHour, kNow - 2 * kHour));
  r.push_back(change(DeployState::succeeded, kNow - 3 * kHour, kNow - 3 * kHour + 60'000,
                     kNow - 5 * kHour + 60'000));
  r.push_back(
      change(DeployState::succeeded, kNow - 10 * kHour, kNow - 9 * kHour, kNow - 15 * kHour));
  // One failure yesterday, rolled back by itself after 10 minutes.
  r.push_back(change(DeployState::rolled_back, kNow - kDay, kNow - kDay + 600'000));
  // Rollbacks and convergence are not changes; a running deploy has not finished.
  auto rb = change(DeployState::succeeded, kNow - 4 * kHour, kNow - 4 * kHour + 1);
  rb.kind = DeployKind::rollback;
  r.push_back(rb);
  auto cv = rb;
  cv.kind = DeployKind::converge;
  r.push_back(cv);
  r.push_back(change(DeployState::running, kNow - 60'000, 0));
  // Outside the window.
  r.push_back(change(DeployState::failed, kNow - 40 * kDay, kNow - 40 * kDay + 1));

  const auto m = delivery_metrics(r, kNow, 2);
  EXPECT_EQ(m.deploys, 3);
  EXPECT_EQ(m.failures, 1);
  EXPECT_DOUBLE_EQ(m.deploys_per_day, 1.5);
  ASSERT_TRUE(m.change_failure_rate);
  EXPECT_DOUBLE_EQ(*m.change_failure_rate, 0.25);
  ASSERT_TRUE(m.lead_time_s);
  EXPECT_DOUBLE_EQ(*m.lead_time_s, 2 * 3600.0);  // the median of 1h, 2h, 6h
  ASSERT_TRUE(m.restore_s);
  EXPECT_DOUBLE_EQ(*m.restore_s, 600.0);
  ASSERT_EQ(m.series.size(), 2u);
  EXPECT_EQ(m.series[0].failures, 1);
  EXPECT_EQ(m.series[0].deploys, 0);
  EXPECT_EQ(m.series[1].deploys, 3);
  EXPECT_FALSE(m.series[0].lead_time_s);
  ASSERT_TRUE(m.series[1].lead_time_s);
  EXPECT_DOUBLE_EQ(*m.series[1].lead_time_s, 2 * 3600.0);
}

TEST(DeliveryMetrics, AFailureIsRestoredByTheNextSuccessOfTheSameAppAndEnvOnly) {
  std::vector<DeliveryRecord> r;
  // web/production fails at -5h (started -6h) and stays failed.
  r.push_back(change(DeployState::failed, kNow - 6 * kHour, kNow - 5 * kHour));
  // A success of another app, and of web in another env, restore nothing.
  r.push_back(change(DeployState::succeeded, kNow - 4 * kHour, kNow - 4 * kHour + 1, 0, "api"));
  r.push_back(
      change(DeployState::succeeded, kNow - 4 * kHour, kNow - 4 * kHour + 1, 0, "web", "staging"));
  // A rollback of web in production at -2h restores it: 4 hours after the failed change began.
  auto rb = change(DeployState::succeeded, kNow - 3 * kHour, kNow - 2 * kHour);
  rb.kind = DeployKind::rollback;
  r.push_back(rb);
  // A second failure nothing has restored yet.
  r.push_back(change(DeployState::failed, kNow - kHour, kNow - kHour + 1, 0, "api"));

  const auto m = delivery_metrics(r, kNow, 1);
  EXPECT_EQ(m.failures, 2);
  EXPECT_EQ(m.unrestored, 1);
  ASSERT_TRUE(m.restore_s);
  EXPECT_DOUBLE_EQ(*m.restore_s, 4 * 3600.0);
}

TEST(DeliveryMetrics, APushTimeUnknownOrAfterTheDeployGivesNoLeadTime) {
  std::vector<DeliveryRecord> r;
  r.push_back(change(DeployState::succeeded, kNow - kHour, kNow - kHour + 1, 0));
  r.push_back(change(DeployState::succeeded, kNow - kHour, kNow - kHour + 1, kNow));
  const auto m = delivery_metrics(r, kNow, 1);
  EXPECT_EQ(m.deploys, 2);
  EXPECT_FALSE(m.lead_time_s);
}

}  // namespace
}  // namespace slipway::engine
