// Coalesced writes (store/latest_writes.h), as the server saves nodes: while the database thread
// is held, any number of saves of a node leave one write waiting, with the newest state.
#include "store/latest_writes.h"

#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace slipway::store {
namespace {

inventory::Node node(const std::string& name, const std::string& web_version) {
  inventory::Node n;
  n.name = name;
  n.env = "staging";
  n.roles = {"api"};
  n.agent_version = "1.0.0";
  n.first_seen = 1;
  n.last_seen = 2;
  n.apps["web"].version = web_version;
  n.apps["web"].healthy = true;
  return n;
}

class LatestWritesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = make_sqlite_store((dir_.path() / "slipway.db").string());
    ASSERT_TRUE(s->open());
    db_ = std::make_unique<DbExecutor>(std::move(s));
    // As the server's save_node writes, and a record of each write (the database thread's own
    // until drain()).
    writes_ = std::make_unique<LatestWrites<inventory::Node>>(
        *db_, [this](Store& s, const inventory::Node& n) {
          written_.emplace_back(n.name, n.apps.at("web").version);
          ASSERT_TRUE(s.upsert_node(n));
        });
  }

  // Holds the database thread until the returned promise is set.
  std::shared_ptr<std::promise<void>> hold() {
    auto release = std::make_shared<std::promise<void>>();
    auto started = std::make_shared<std::promise<void>>();
    auto running = started->get_future();
    db_->post([started, gate = release->get_future().share()](Store&) {
      started->set_value();
      gate.wait();
    });
    running.wait();
    return release;
  }

  std::string stored_version(const std::string& name) {
    std::string v;
    db_->run_sync([&](Store& s) {
      auto nodes = s.load_nodes();
      ASSERT_TRUE(nodes);
      for (const auto& n : *nodes) {
        if (n.name == name) v = n.apps.at("web").version;
      }
    });
    return v;
  }

  slipway::testing::TempDir dir_;
  std::unique_ptr<DbExecutor> db_;
  std::unique_ptr<LatestWrites<inventory::Node>> writes_;
  std::vector<std::pair<std::string, std::string>> written_;
};

TEST_F(LatestWritesTest, ManySavesOfANodeWhileTheDatabaseIsHeldMakeOneWriteOfTheNewest) {
  auto release = hold();
  for (int i = 1; i <= 500; ++i)
    writes_->save("node-1", node("node-1", "1.0." + std::to_string(i)));
  writes_->save("node-2", node("node-2", "2.0.0"));
  // One job in the queue for both nodes, one record waiting per node.
  EXPECT_EQ(db_->stats().depth, 1u);
  EXPECT_EQ(writes_->pending(), 2u);
  EXPECT_EQ(writes_->replaced(), 499u);
  release->set_value();
  db_->drain();
  const std::vector<std::pair<std::string, std::string>> want = {{"node-1", "1.0.500"},
                                                                 {"node-2", "2.0.0"}};
  EXPECT_EQ(written_, want);
  EXPECT_EQ(writes_->pending(), 0u);
  EXPECT_EQ(stored_version("node-1"), "1.0.500");
  EXPECT_EQ(stored_version("node-2"), "2.0.0");
}

TEST_F(LatestWritesTest, ASaveAfterTheWriteWasTakenIsWrittenToo) {
  writes_->save("node-1", node("node-1", "1.0.0"));
  db_->drain();
  auto release = hold();
  writes_->save("node-1", node("node-1", "1.1.0"));
  writes_->save("node-1", node("node-1", "1.2.0"));
  release->set_value();
  db_->drain();
  const std::vector<std::pair<std::string, std::string>> want = {{"node-1", "1.0.0"},
                                                                 {"node-1", "1.2.0"}};
  EXPECT_EQ(written_, want);
  EXPECT_EQ(stored_version("node-1"), "1.2.0");
}

TEST_F(LatestWritesTest, ASavedRecordIsWrittenBeforeAJobPostedAfterIt) {
  auto release = hold();
  writes_->save("node-1", node("node-1", "1.0.0"));
  std::string seen;
  db_->post([&seen](Store& s) {
    auto nodes = s.load_nodes();
    if (nodes && !nodes->empty()) seen = nodes->front().apps.at("web").version;
  });
  writes_->save("node-1", node("node-1", "1.0.1"));  // replaces the one waiting, still before
  release->set_value();
  db_->drain();
  EXPECT_EQ(seen, "1.0.1");
}

}  // namespace
}  // namespace slipway::store
