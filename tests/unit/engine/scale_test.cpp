// Big fleets, answered by instant fake agents. Correctness only: nothing here measures time.
#include <functional>
#include <map>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include "unit/engine/fake_fleet.h"

namespace slipway::engine::testing {
namespace {

using ::testing::HasSubstr;

class ScaleTest : public EngineTest {
 protected:
  static std::vector<Target> BigFleet(int n) {
    std::vector<Target> t;
    t.reserve(n);
    // Given in reverse order, with the zone varying, to check the sort on a big input.
    for (int i = n - 1; i >= 0; --i) {
      char name[32];
      std::snprintf(name, sizeof name, "node-%05d", i);
      t.push_back(Target{name, i % 3 == 0 ? "a" : "b", i % 2 ? "1.0.0" : "0.9.0"});
    }
    return t;
  }
};

TEST_F(ScaleTest, TenThousandNodesInBatchesOfTenPercent) {
  const DeployId id = Start(Request("2.0.0", "10%"), BigFleet(10'000));
  EXPECT_EQ(D(id).batches, 10);

  // Answer wave by wave, checking that a wave is complete before the next one goes out.
  int waves = 0;
  std::set<std::string> actions;
  while (!fleet_.pending().empty()) {
    const auto wave = fleet_.pending();
    EXPECT_EQ(wave.size(), 1'000u);
    EXPECT_EQ(D(id).current_batch, waves);
    ++waves;
    for (const auto& cmd : wave) {
      actions.insert(cmd.action());
      Answer(cmd.node, Ok(cmd));
    }
  }
  EXPECT_EQ(waves, 10);
  EXPECT_EQ(actions.size(), 10'000u);
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::succeeded);
  EXPECT_EQ(d.count(NodeStatus::healthy), 10'000);
  EXPECT_EQ(fleet_.sent().size(), 10'000u);
  for (size_t i = 1; i < d.nodes.size(); ++i)
    ASSERT_LT(d.nodes[i - 1].node, d.nodes[i].node);
  for (const auto& [node, version] : fleet_.current)
    ASSERT_EQ(version, "2.0.0") << node;
  EXPECT_EQ(sink_.of_kind(id, "node.finished").size(), 10'000u);
  EXPECT_EQ(sink_.of_kind(id, "batch.started").size(), 10u);
  EXPECT_EQ(engine().ignored_reports(), 0u);
}

TEST_F(ScaleTest, TenThousandNodesFailingInTheLastWaveAllGoBack) {
  const DeployId id = Start(Request("2.0.0", "10%"), BigFleet(10'000));
  int answered = AnswerAll([&](const SentCommand& cmd) {
    auto r = Ok(cmd);
    // The first node of the last wave fails its health check and goes back by itself.
    if (cmd.node == "node-09000" && cmd.install.version == "2.0.0") {
      r.ok = false;
      r.reason = "health check failed";
      r.version = fleet_.current[cmd.node];
      r.reverted_to = r.version;
    }
    return r;
  });
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::rolled_back);
  EXPECT_THAT(d.reason, HasSubstr("node-09000"));
  EXPECT_EQ(d.count(NodeStatus::reverted), 9'999);
  EXPECT_EQ(d.count(NodeStatus::failed), 1);
  EXPECT_EQ(answered, 10'000 + 9'999);
  // Every node is back where it was, each on its own previous version.
  for (int i = 0; i < 10'000; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "node-%05d", i);
    ASSERT_EQ(fleet_.current[name], i % 2 ? "1.0.0" : "0.9.0") << name;
  }
  int revert_waves = 0;
  for (const auto& e : sink_.of_kind(id, "batch.started"))
    revert_waves += e.status == "reverting";
  EXPECT_EQ(revert_waves, 10);  // 9,999 nodes, 1,000 at a time
}

// Runs `f` on a thread with a small stack, so that a recursion as deep as the fleet is big shows up
// as a crash here rather than on a server with a big fleet.
void RunWithSmallStack(std::function<void()> f) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 1 << 20), 0);  // 1 MiB
  pthread_t thread;
  auto body = [](void* p) -> void* {
    (*static_cast<std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, &f), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

constexpr int kDeepFleet = 10'000;  // one wave per node

TEST_F(ScaleTest, ManyWavesOfUnreachableNodesInARowDoNotRecurse) {
  // Every node is unreachable and failures are allowed: each wave ends as soon as it starts, so
  // the whole deploy runs inside start(), wave after wave.
  const int n = kDeepFleet;
  std::vector<Target> t;
  for (int i = 0; i < n; ++i) {
    t.push_back(Target{"node-" + std::to_string(i), "a", "1.0.0"});
    fleet_.disconnect(t.back().node);
  }
  RunWithSmallStack([&] {
    auto r = engine().start(Request("2.0.0", "1", n), t);
    ASSERT_TRUE(r);
    const Deploy* d = engine().find(*r);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->state, DeployState::failed);
    EXPECT_EQ(d->count(NodeStatus::failed), n);
    EXPECT_EQ(d->batches, n);
  });
}

TEST_F(ScaleTest, ManyRevertWavesToUnreachableNodesInARowDoNotRecurse) {
  // One node at a time, all healthy but the last; by then the whole fleet has dropped off, so
  // every revert wave fails as soon as it starts.
  const int n = kDeepFleet;
  std::vector<Target> t;
  for (int i = 0; i < n; ++i)
    t.push_back(Target{"node-" + std::to_string(i), "a", "1.0.0"});
  const DeployId id = Start(Request("2.0.0", "1"), t);
  const std::string last = D(id).nodes.back().node;
  for (;;) {
    const auto wave = fleet_.pending();
    ASSERT_EQ(wave.size(), 1u);
    if (wave[0].node == last) break;
    Answer(wave[0].node, Ok(wave[0]));
  }
  ASSERT_EQ(D(id).count(NodeStatus::healthy), n - 1);
  for (const auto& target : t)
    fleet_.disconnect(target.node);
  RunWithSmallStack([&] { FailAndSelfRevert(last); });
  const Deploy& d = D(id);
  EXPECT_EQ(d.state, DeployState::failed);
  EXPECT_EQ(d.count(NodeStatus::revert_failed), n - 1);
  EXPECT_THAT(d.reason, HasSubstr("rolling back failed on " + std::to_string(n - 1)));
}

}  // namespace
}  // namespace slipway::engine::testing
