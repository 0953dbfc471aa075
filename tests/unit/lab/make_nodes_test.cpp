// make_nodes: names, addresses, zones and validation of a lab's fleet.
#include <gtest/gtest.h>

#include "lab/lab.h"

namespace slipway::lab {
namespace {

std::vector<std::string> addresses(const std::vector<NodeSpec>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes)
    out.push_back(n.address);
  return out;
}

std::vector<std::string> zones(const std::vector<NodeSpec>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes)
    out.push_back(n.zone);
  return out;
}

TEST(MakeNodes, NamesAddressesAndAttributes) {
  NodePlan plan;
  plan.count = 3;
  plan.env = "staging";
  plan.roles = {"api", "worker"};
  plan.tags = {{"canary", "no"}};
  auto nodes = make_nodes(plan);
  ASSERT_TRUE(nodes) << nodes.error().message;
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].name, "node-1");
  EXPECT_EQ((*nodes)[2].name, "node-3");
  EXPECT_EQ(addresses(*nodes),
            (std::vector<std::string>{"127.0.0.11", "127.0.0.12", "127.0.0.13"}));
  for (const auto& n : *nodes) {
    EXPECT_EQ(n.env, "staging");
    EXPECT_EQ(n.roles, (std::vector<std::string>{"api", "worker"}));
    EXPECT_EQ(n.zone, "");
    EXPECT_EQ(n.tags.at("canary"), "no");
  }
}

TEST(MakeNodes, AddressesCarryAcrossOctets) {
  NodePlan plan;
  plan.count = 3;
  plan.first_address = "127.0.0.254";
  plan.name_prefix = "web";
  auto nodes = make_nodes(plan);
  ASSERT_TRUE(nodes) << nodes.error().message;
  EXPECT_EQ(addresses(*nodes),
            (std::vector<std::string>{"127.0.0.254", "127.0.0.255", "127.0.1.0"}));
  EXPECT_EQ((*nodes)[1].name, "web-2");
}

TEST(MakeNodes, ZonesRoundRobin) {
  NodePlan plan;
  plan.count = 5;
  plan.zones = {"a", "b"};
  auto nodes = make_nodes(plan);
  ASSERT_TRUE(nodes) << nodes.error().message;
  EXPECT_EQ(zones(*nodes), (std::vector<std::string>{"a", "b", "a", "b", "a"}));
}

TEST(MakeNodes, ZonesByCount) {
  // The demo's fleet: two nodes in zone a, three in zone b.
  NodePlan plan;
  plan.count = 5;
  plan.zones = {"a:2", "b:3"};
  auto nodes = make_nodes(plan);
  ASSERT_TRUE(nodes) << nodes.error().message;
  EXPECT_EQ(zones(*nodes), (std::vector<std::string>{"a", "a", "b", "b", "b"}));
  EXPECT_EQ((*nodes)[4].address, "127.0.0.15");
}

TEST(MakeNodes, ZoneCountsMustAddUp) {
  NodePlan plan;
  plan.count = 5;
  plan.zones = {"a:2", "b:2"};
  auto nodes = make_nodes(plan);
  ASSERT_FALSE(nodes);
  EXPECT_EQ(nodes.error().code, Errc::invalid_argument);
  EXPECT_NE(nodes.error().message.find("add up to 4"), std::string::npos) << nodes.error().message;
}

TEST(MakeNodes, ZonesCannotMixCountsAndRoundRobin) {
  NodePlan plan;
  plan.count = 3;
  plan.zones = {"a:2", "b"};
  EXPECT_FALSE(make_nodes(plan));
  plan.zones = {"a:x"};
  EXPECT_FALSE(make_nodes(plan));
  plan.zones = {"a:"};
  EXPECT_FALSE(make_nodes(plan));
  plan.zones = {"../a"};
  EXPECT_FALSE(make_nodes(plan));
}

TEST(MakeNodes, ZeroNodesIsAnEmptyFleet) {
  NodePlan plan;
  plan.count = 0;
  auto nodes = make_nodes(plan);
  ASSERT_TRUE(nodes);
  EXPECT_TRUE(nodes->empty());
}

TEST(MakeNodes, RefusesBadCounts) {
  NodePlan plan;
  plan.count = -1;
  EXPECT_FALSE(make_nodes(plan));
  plan.count = kMaxLabNodes + 1;
  EXPECT_FALSE(make_nodes(plan));
}

TEST(MakeNodes, AddressesMustBeLoopbackAndStayInside) {
  NodePlan plan;
  plan.count = 2;
  for (const char* bad : {"10.0.0.1", "128.0.0.1", "127.0.0", "localhost", "::1", "127.0.0.0",
                          "127.255.255.255", ""}) {
    plan.first_address = bad;
    auto nodes = make_nodes(plan);
    ASSERT_FALSE(nodes) << bad;
    EXPECT_EQ(nodes.error().code, Errc::invalid_argument);
  }
  // The last usable address is 127.255.255.254: two nodes from .253 fit, three do not.
  plan.first_address = "127.255.255.253";
  EXPECT_TRUE(make_nodes(plan));
  plan.count = 3;
  auto nodes = make_nodes(plan);
  ASSERT_FALSE(nodes);
  EXPECT_NE(nodes.error().message.find("127.0.0.0/8"), std::string::npos) << nodes.error().message;
}

TEST(MakeNodes, ValidatesNames) {
  NodePlan plan;
  plan.count = 1;
  plan.env = "bad env";
  EXPECT_FALSE(make_nodes(plan));
  plan.env = "staging";
  plan.roles = {"api", "../etc"};
  EXPECT_FALSE(make_nodes(plan));
  plan.roles = {"api"};
  plan.name_prefix = "-x";
  EXPECT_FALSE(make_nodes(plan));
  plan.name_prefix = "node";
  plan.tags = {{"k", "a/b"}};
  EXPECT_FALSE(make_nodes(plan));
}

}  // namespace
}  // namespace slipway::lab
