// The in-memory inventory (inventory/inventory.h): registration, liveness, apps, selection.
#include "inventory/inventory.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway::inventory {
namespace {

Node reported(std::string name, std::string env = "staging",
              std::vector<std::string> roles = {"api"}, std::string zone = "a") {
  Node n;
  n.name = std::move(name);
  n.env = std::move(env);
  n.roles = std::move(roles);
  n.zone = std::move(zone);
  n.address = "127.0.0.11";
  n.agent_version = "0.1.0";
  return n;
}

std::vector<std::string> names(const std::vector<const Node*>& nodes) {
  std::vector<std::string> out;
  for (const auto* n : nodes)
    out.push_back(n->name);
  return out;
}

Selector sel(std::string_view text) {
  return Selector::parse(text).value();
}

using Names = std::vector<std::string>;

TEST(Inventory, RegisterCreatesAnAliveNode) {
  Inventory inv;
  EXPECT_EQ(inv.size(), 0u);
  EXPECT_EQ(inv.find("web-1"), nullptr);
  Node& n = inv.register_node(reported("web-1"), 1'000);
  EXPECT_EQ(n.name, "web-1");
  EXPECT_EQ(n.state, NodeState::alive);
  EXPECT_EQ(n.first_seen, 1'000);
  EXPECT_EQ(n.last_seen, 1'000);
  EXPECT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv.alive_count(), 1u);
  ASSERT_NE(inv.find("web-1"), nullptr);
  EXPECT_EQ(inv.find("web-1")->env, "staging");
}

TEST(Inventory, RegisterAgainUpdatesIdentityButKeepsFirstSeen) {
  Inventory inv;
  inv.register_node(reported("web-1", "staging", {"api"}, "a"), 1'000);
  inv.mark_lost("web-1", 2'000);
  auto again = reported("web-1", "production", {"api", "worker"}, "b");
  again.tags = {{"canary", "true"}};
  again.first_seen = 99;  // what an agent says about first_seen does not matter
  Node& n = inv.register_node(again, 5'000);
  EXPECT_EQ(n.env, "production");
  EXPECT_EQ(n.roles, (std::vector<std::string>{"api", "worker"}));
  EXPECT_EQ(n.zone, "b");
  EXPECT_EQ(n.tags.at("canary"), "true");
  EXPECT_EQ(n.first_seen, 1'000);
  EXPECT_EQ(n.last_seen, 5'000);
  EXPECT_EQ(n.state, NodeState::alive);
  EXPECT_EQ(inv.size(), 1u);
}

TEST(Inventory, TouchRefreshesAndRevives) {
  Inventory inv;
  inv.register_node(reported("web-1"), 1'000);
  inv.touch("web-1", 3'000);
  EXPECT_EQ(inv.find("web-1")->last_seen, 3'000);
  inv.mark_lost("web-1", 4'000);
  EXPECT_EQ(inv.find("web-1")->state, NodeState::lost);
  EXPECT_EQ(inv.alive_count(), 0u);
  inv.touch("web-1", 5'000);
  EXPECT_EQ(inv.find("web-1")->state, NodeState::alive);
  // Unknown names are ignored, never created.
  inv.touch("ghost", 1);
  inv.mark_lost("ghost", 1);
  inv.set_apps("ghost", {}, 1);
  inv.set_app("ghost", "billing", NodeApp{}, 1);
  EXPECT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv.find("ghost"), nullptr);
}

TEST(Inventory, ExpireMarksSilentNodesLostOnce) {
  Inventory inv;
  inv.register_node(reported("a"), 1'000);
  inv.register_node(reported("b"), 1'000);
  inv.register_node(reported("c"), 1'000);
  inv.touch("b", 20'000);
  inv.mark_lost("c", 2'000);
  // Exactly at the limit: still alive.
  EXPECT_TRUE(inv.expire(16'000, Millis(15'000)).empty());
  EXPECT_EQ(inv.expire(16'001, Millis(15'000)), Names{"a"});
  EXPECT_EQ(inv.find("a")->state, NodeState::lost);
  EXPECT_EQ(inv.find("b")->state, NodeState::alive);
  // Already lost nodes are not reported again.
  EXPECT_TRUE(inv.expire(16'002, Millis(15'000)).empty());
  EXPECT_EQ(inv.expire(100'000, Millis(15'000)), Names{"b"});
  EXPECT_EQ(inv.alive_count(), 0u);
  EXPECT_EQ(inv.size(), 3u);  // lost nodes are kept, not forgotten
}

TEST(Inventory, SelectWithAndWithoutLostNodes) {
  Inventory inv;
  inv.register_node(reported("web-2", "staging", {"api"}, "b"), 1);
  inv.register_node(reported("web-1", "staging", {"api"}, "a"), 1);
  inv.register_node(reported("work-1", "staging", {"worker"}, "a"), 1);
  inv.register_node(reported("prod-1", "production", {"api"}, "a"), 1);
  inv.mark_lost("web-2", 2);
  // Sorted by name; lost ones only on request.
  EXPECT_EQ(names(inv.select(sel("env=staging"), false)), (Names{"web-1", "work-1"}));
  EXPECT_EQ(names(inv.select(sel("env=staging"), true)), (Names{"web-1", "web-2", "work-1"}));
  EXPECT_EQ(names(inv.select(sel("env=staging role=api"), true)), (Names{"web-1", "web-2"}));
  EXPECT_EQ(names(inv.select(sel("zone=a"), false)), (Names{"prod-1", "web-1", "work-1"}));
  EXPECT_EQ(names(inv.select(Selector(), false)), (Names{"prod-1", "web-1", "work-1"}));
  EXPECT_TRUE(inv.select(sel("env=nowhere"), true).empty());
  EXPECT_EQ(names(inv.all()), (Names{"prod-1", "web-1", "web-2", "work-1"}));
}

TEST(Inventory, SetAppsReplacesAndStamps) {
  Inventory inv;
  inv.register_node(reported("web-1"), 1);
  NodeApp billing;
  billing.version = "1.0.0";
  billing.healthy = true;
  billing.port = 8080;
  billing.releases = {"0.9.0", "1.0.0"};
  NodeApp search;
  search.version = "2.0.0";
  inv.set_apps("web-1", {{"billing", billing}, {"search", search}}, 100);
  const Node* n = inv.find("web-1");
  ASSERT_EQ(n->apps.size(), 2u);
  EXPECT_EQ(n->apps.at("billing").version, "1.0.0");
  EXPECT_TRUE(n->apps.at("billing").healthy);
  EXPECT_EQ(n->apps.at("billing").releases, (std::vector<std::string>{"0.9.0", "1.0.0"}));
  EXPECT_EQ(n->apps.at("billing").updated_at, 100);
  EXPECT_EQ(n->apps.at("search").updated_at, 100);
  // Apps the node no longer reports are dropped.
  inv.set_apps("web-1", {{"search", search}}, 200);
  ASSERT_EQ(n->apps.size(), 1u);
  EXPECT_EQ(n->apps.count("billing"), 0u);
  EXPECT_EQ(n->apps.at("search").updated_at, 200);
  inv.set_apps("web-1", {}, 300);
  EXPECT_TRUE(n->apps.empty());
}

TEST(Inventory, SetAppUpdatesOneAppAndDropsAnEmptyOne) {
  Inventory inv;
  inv.register_node(reported("web-1"), 1);
  NodeApp a;
  a.version = "1.0.0";
  inv.set_app("web-1", "billing", a, 10);
  NodeApp b;
  b.version = "3.0.0";
  inv.set_app("web-1", "search", b, 11);
  const Node* n = inv.find("web-1");
  ASSERT_EQ(n->apps.size(), 2u);
  EXPECT_EQ(n->apps.at("billing").updated_at, 10);
  a.version = "1.1.0";
  inv.set_app("web-1", "billing", a, 20);
  EXPECT_EQ(n->apps.at("billing").version, "1.1.0");
  EXPECT_EQ(n->apps.at("billing").updated_at, 20);
  // Nothing current and nothing on disk: the app is gone from the node.
  inv.set_app("web-1", "billing", NodeApp{}, 30);
  EXPECT_EQ(n->apps.count("billing"), 0u);
  // Releases on disk but none current: still listed.
  NodeApp kept;
  kept.releases = {"1.0.0"};
  inv.set_app("web-1", "billing", kept, 40);
  EXPECT_EQ(n->apps.count("billing"), 1u);
}

TEST(Inventory, RegisterKeepsReportedApps) {
  Inventory inv;
  auto r = reported("web-1");
  NodeApp a;
  a.version = "1.0.0";
  r.apps["billing"] = a;
  inv.register_node(r, 1);
  EXPECT_EQ(inv.find("web-1")->apps.at("billing").version, "1.0.0");
}

TEST(Inventory, LoadMarksEverythingLostAndReplacesContents) {
  Inventory inv;
  inv.register_node(reported("old"), 1);
  std::vector<Node> stored;
  for (const char* name : {"b", "a", "c"}) {
    Node n = reported(name);
    n.state = NodeState::alive;  // whatever the store says, nobody is connected yet
    n.first_seen = 10;
    n.last_seen = 20;
    stored.push_back(n);
  }
  inv.load(stored);
  EXPECT_EQ(inv.size(), 3u);
  EXPECT_EQ(inv.find("old"), nullptr);
  EXPECT_EQ(inv.alive_count(), 0u);
  for (const auto* n : inv.all()) {
    EXPECT_EQ(n->state, NodeState::lost) << n->name;
    EXPECT_EQ(n->first_seen, 10);
    EXPECT_EQ(n->last_seen, 20);
  }
  EXPECT_TRUE(inv.select(sel("env=staging"), false).empty());
  EXPECT_EQ(names(inv.select(sel("env=staging"), true)), (Names{"a", "b", "c"}));
  // An agent that connects again comes back alive with its history.
  inv.register_node(reported("b"), 500);
  EXPECT_EQ(inv.find("b")->state, NodeState::alive);
  EXPECT_EQ(inv.find("b")->first_seen, 10);
  EXPECT_EQ(inv.alive_count(), 1u);
}

TEST(Inventory, AQuarantineOutlivesTheAgentRegisteringAgainUntilLifted) {
  Inventory inv;
  inv.register_node(reported("web-1"), 1'000);
  EXPECT_FALSE(inv.find("web-1")->quarantined());
  EXPECT_TRUE(inv.set_quarantine("web-1", Quarantine{"health failed", "web", 0, 1'500}));
  EXPECT_FALSE(inv.set_quarantine("nope", Quarantine{}));
  inv.mark_lost("web-1", 2'000);
  // The agent comes back: what it reports never lifts the server's quarantine.
  inv.register_node(reported("web-1"), 3'000);
  const Node* n = inv.find("web-1");
  ASSERT_TRUE(n->quarantined());
  EXPECT_EQ(n->quarantine->reason, "health failed");
  EXPECT_EQ(n->quarantine->app, "web");
  EXPECT_EQ(n->quarantine->since, 1'500);
  EXPECT_EQ(n->state, NodeState::alive);
  EXPECT_TRUE(inv.set_quarantine("web-1", std::nullopt));
  EXPECT_FALSE(inv.find("web-1")->quarantined());
}

}  // namespace
}  // namespace slipway::inventory
