// BatchSize: what `--batch` accepts and how many nodes a wave gets.
#include <string>

#include <gtest/gtest.h>

#include "engine/deploy.h"

namespace slipway::engine {
namespace {

TEST(BatchSizeTest, ParsesCountsAndPercentages) {
  auto three = BatchSize::parse("3");
  ASSERT_TRUE(three) << three.error().message;
  EXPECT_EQ(three->value, 3);
  EXPECT_FALSE(three->percent);
  EXPECT_EQ(three->to_string(), "3");

  auto quarter = BatchSize::parse("25%");
  ASSERT_TRUE(quarter) << quarter.error().message;
  EXPECT_EQ(quarter->value, 25);
  EXPECT_TRUE(quarter->percent);
  EXPECT_EQ(quarter->to_string(), "25%");

  auto all = BatchSize::parse("100%");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->value, 100);
  auto one = BatchSize::parse("1");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->value, 1);
  auto one_pct = BatchSize::parse("1%");
  ASSERT_TRUE(one_pct);
  EXPECT_TRUE(one_pct->percent);
  auto big = BatchSize::parse("100000");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->value, 100000);
}

TEST(BatchSizeTest, RefusesWhatIsNotAPositiveCountOrAPercentageUpTo100) {
  for (const char* bad : {"0",          "0%",
                          "101%",       "1000%",
                          "abc",        "",
                          "%",          "%%",
                          "3%%",        "-1",
                          "-5%",        "+3",
                          " 3",         "3 ",
                          "3.5",        "2.5%",
                          "1e3",        "0x10",
                          "25 %",       "%25",
                          "9999999999", "99999999999999999999"}) {
    auto b = BatchSize::parse(bad);
    EXPECT_FALSE(b) << "'" << bad << "' was accepted as " << b->to_string();
    if (!b) {
      EXPECT_EQ(b.error().code, Errc::invalid_argument) << bad;
      EXPECT_NE(b.error().message.find("batch size"), std::string::npos) << b.error().message;
    }
  }
}

TEST(BatchSizeTest, ErrorMessageQuotesOnlyABoundedPartOfTheInput) {
  const std::string huge(10'000, 'x');
  auto b = BatchSize::parse(huge);
  ASSERT_FALSE(b);
  EXPECT_LT(b.error().message.size(), 300u);
}

TEST(BatchSizeTest, ResolvesACountClampedToTheFleet) {
  const BatchSize three = *BatchSize::parse("3");
  EXPECT_EQ(three.resolve(10), 3);
  EXPECT_EQ(three.resolve(3), 3);
  EXPECT_EQ(three.resolve(2), 2);  // never more than there are nodes
  EXPECT_EQ(three.resolve(1), 1);
  EXPECT_EQ(three.resolve(0), 0);
  EXPECT_EQ(three.resolve(-4), 0);
}

TEST(BatchSizeTest, ResolvesAPercentageRoundingDownButAtLeastOne) {
  const BatchSize quarter = *BatchSize::parse("25%");
  EXPECT_EQ(quarter.resolve(100), 25);
  EXPECT_EQ(quarter.resolve(10), 2);  // 2.5 -> 2
  EXPECT_EQ(quarter.resolve(7), 1);   // 1.75 -> 1
  EXPECT_EQ(quarter.resolve(3), 1);   // 0.75 -> at least 1
  EXPECT_EQ(quarter.resolve(1), 1);
  EXPECT_EQ(quarter.resolve(0), 0);

  const BatchSize all = *BatchSize::parse("100%");
  EXPECT_EQ(all.resolve(1), 1);
  EXPECT_EQ(all.resolve(5), 5);
  EXPECT_EQ(all.resolve(10'000), 10'000);

  const BatchSize tiny = *BatchSize::parse("1%");
  EXPECT_EQ(tiny.resolve(50), 1);
  EXPECT_EQ(tiny.resolve(199), 1);
  EXPECT_EQ(tiny.resolve(200), 2);

  const BatchSize ten = *BatchSize::parse("10%");
  EXPECT_EQ(ten.resolve(10'000), 1'000);
  EXPECT_EQ(ten.resolve(19), 1);

  // No overflow on big fleets.
  const BatchSize most = *BatchSize::parse("99%");
  EXPECT_EQ(most.resolve(100'000'000), 99'000'000);
}

TEST(BatchSizeTest, DefaultIsAQuarter) {
  BatchSize b;
  EXPECT_EQ(b.to_string(), "25%");
  EXPECT_EQ(b.resolve(8), 2);
}

TEST(BatchSizeTest, ToStringRoundTrips) {
  for (const char* text : {"1", "7", "250", "1%", "33%", "100%"}) {
    auto b = BatchSize::parse(text);
    ASSERT_TRUE(b) << text;
    EXPECT_EQ(b->to_string(), text);
    auto again = BatchSize::parse(b->to_string());
    ASSERT_TRUE(again);
    EXPECT_EQ(again->value, b->value);
    EXPECT_EQ(again->percent, b->percent);
  }
}

TEST(DeployNamesTest, StatesKindsAndNodeStatusesRoundTrip) {
  for (auto s : {DeployState::running, DeployState::succeeded, DeployState::failed,
                 DeployState::rolled_back}) {
    EXPECT_EQ(deploy_state_from_name(deploy_state_name(s)), s);
  }
  EXPECT_EQ(deploy_state_name(DeployState::rolled_back), "rolled_back");
  EXPECT_FALSE(deploy_state_from_name("done"));
  EXPECT_EQ(deploy_kind_from_name("rollback"), DeployKind::rollback);
  EXPECT_FALSE(deploy_kind_from_name(""));
  for (auto s : {NodeStatus::pending, NodeStatus::running, NodeStatus::healthy, NodeStatus::failed,
                 NodeStatus::skipped, NodeStatus::reverting, NodeStatus::reverted,
                 NodeStatus::revert_failed}) {
    EXPECT_EQ(node_status_from_name(node_status_name(s)), s);
  }
  EXPECT_FALSE(node_status_from_name("ok"));
  EXPECT_FALSE(is_terminal(DeployState::running));
  EXPECT_TRUE(is_terminal(DeployState::succeeded));
  EXPECT_TRUE(is_terminal(DeployState::failed));
  EXPECT_TRUE(is_terminal(DeployState::rolled_back));
}

TEST(DeployJsonTest, DeployRoundTripsThroughJson) {
  Deploy d;
  d.id = 42;
  d.kind = DeployKind::rollback;
  d.app = "web";
  d.version = "1.0.0";
  d.env = "prod";
  d.selector = "role=api";
  d.batch = *BatchSize::parse("2");
  d.max_failures = 1;
  d.state = DeployState::rolled_back;
  d.phase = Phase::revert;
  d.reason = "why";
  d.actor = "alice";
  d.created_at = 1'700'000'000'000;
  d.finished_at = 1'700'000'005'000;
  d.batches = 2;
  d.current_batch = 1;
  NodeProgress n;
  n.node = "n1";
  n.zone = "a";
  n.batch = 1;
  n.from_version = "0.9.0";
  n.status = NodeStatus::reverted;
  n.reason = "health";
  n.version_now = "0.9.0";
  n.downloaded = true;
  d.nodes.push_back(n);

  auto back = deploy_from_json(to_json(d));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, 42);
  EXPECT_EQ(back->kind, DeployKind::rollback);
  EXPECT_EQ(back->state, DeployState::rolled_back);
  EXPECT_EQ(back->phase, Phase::revert);
  EXPECT_EQ(back->batch.to_string(), "2");
  EXPECT_EQ(back->created_at, d.created_at);
  EXPECT_EQ(back->finished_at, d.finished_at);
  ASSERT_EQ(back->nodes.size(), 1u);
  EXPECT_EQ(back->nodes[0].status, NodeStatus::reverted);
  EXPECT_EQ(back->nodes[0].from_version, "0.9.0");
  EXPECT_TRUE(back->nodes[0].downloaded);
}

}  // namespace
}  // namespace slipway::engine
