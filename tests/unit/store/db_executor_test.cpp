// The database thread (store/db_executor.h): order, run_sync, drain, batching into transactions.
#include "store/db_executor.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace slipway::store {
namespace {

class DbExecutorTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open_store() {
    auto s = make_sqlite_store((dir_.path() / "slipway.db").string());
    auto st = s->open();
    EXPECT_TRUE(st) << (st ? "" : st.error().message);
    return s;
  }

  testing::TempDir dir_;
};

TEST_F(DbExecutorTest, RunsPostedWorkInOrderOnOneThread) {
  DbExecutor db(open_store());
  std::vector<int> order;  // touched by the database thread only until drain()
  std::thread::id worker;
  bool one_thread = true;
  for (int i = 0; i < 1000; ++i) {
    db.post([&, i](Store&) {
      if (i == 0) worker = std::this_thread::get_id();
      one_thread = one_thread && std::this_thread::get_id() == worker;
      order.push_back(i);
    });
  }
  db.drain();
  ASSERT_EQ(order.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(order[static_cast<size_t>(i)], i);
  EXPECT_TRUE(one_thread);
  EXPECT_NE(worker, std::this_thread::get_id());
}

TEST_F(DbExecutorTest, RunSyncWaitsAndSeesEarlierPosts) {
  DbExecutor db(open_store());
  db.post([](Store& s) { ASSERT_TRUE(s.set_meta("k", "posted")); });
  std::optional<std::string> seen;
  db.run_sync([&](Store& s) { seen = s.get_meta("k").value(); });
  EXPECT_EQ(seen, std::optional<std::string>("posted"));
}

TEST_F(DbExecutorTest, DrainWithNothingQueuedReturns) {
  DbExecutor db(open_store());
  db.drain();
  db.drain();
}

TEST_F(DbExecutorTest, ManyPostsAreBatchedAndEveryRowLands) {
  constexpr int kRows = 5000;
  {
    DbExecutor db(open_store());
    // Hold the database thread so that the posts queue up behind it and run as batches.
    std::atomic<bool> release{false};
    db.post([&](Store&) {
      while (!release.load())
        std::this_thread::yield();
    });
    for (int i = 0; i < kRows; ++i) {
      db.post([i](Store& s) {
        ASSERT_TRUE(s.set_meta("row-" + std::to_string(i), std::to_string(i * 2)));
      });
    }
    release = true;
    db.drain();
    int found = 0;
    db.run_sync([&](Store& s) {
      for (int i = 0; i < kRows; ++i) {
        auto v = s.get_meta("row-" + std::to_string(i)).value();
        if (v && *v == std::to_string(i * 2)) ++found;
      }
    });
    EXPECT_EQ(found, kRows);
  }
  // And they were committed: a fresh connection sees all of them.
  auto s = open_store();
  int found = 0;
  for (int i = 0; i < kRows; ++i) {
    if (s->get_meta("row-" + std::to_string(i)).value()) ++found;
  }
  EXPECT_EQ(found, kRows);
}

TEST_F(DbExecutorTest, AFailingOperationDoesNotLoseTheRestOfItsBatch) {
  {
    DbExecutor db(open_store());
    std::atomic<bool> release{false};
    db.post([&](Store&) {
      while (!release.load())
        std::this_thread::yield();
    });
    db.post([](Store& s) { ASSERT_TRUE(s.set_meta("before", "1")); });
    db.post([](Store&) { throw std::runtime_error("a bug in one operation"); });
    db.post([](Store& s) {
      ArtifactRecord a{"billing", "1.0.0", std::string(64, 'a'), 1, "{}", "admin", 1};
      ASSERT_TRUE(s.insert_artifact(a));
      EXPECT_FALSE(s.insert_artifact(a));  // a conflict, handled by its caller
    });
    db.post([](Store& s) { ASSERT_TRUE(s.set_meta("after", "1")); });
    release = true;
  }  // the destructor runs what is queued
  auto s = open_store();
  EXPECT_TRUE(s->get_meta("before").value());
  EXPECT_TRUE(s->get_meta("after").value());
  EXPECT_TRUE(s->get_artifact("billing", "1.0.0").value());
}

TEST_F(DbExecutorTest, PostsFromManyThreadsAllLandAndKeepTheirOwnOrder) {
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::vector<int>> seen(kThreads);
  {
    DbExecutor db(open_store());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          db.post([&, t, i](Store& s) {
            seen[static_cast<size_t>(t)].push_back(i);
            (void)s.set_meta("t" + std::to_string(t) + "-" + std::to_string(i), "x");
          });
        }
      });
    }
    for (auto& th : threads)
      th.join();
    db.drain();
  }
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[static_cast<size_t>(t)].size(), static_cast<size_t>(kEach));
    for (int i = 0; i < kEach; ++i)
      ASSERT_EQ(seen[static_cast<size_t>(t)][static_cast<size_t>(i)], i);
  }
  auto s = open_store();
  EXPECT_TRUE(s->get_meta("t3-499").value());
}

TEST_F(DbExecutorTest, DestructorRunsWhatIsQueued) {
  {
    DbExecutor db(open_store());
    for (int i = 0; i < 100; ++i)
      db.post([i](Store& s) { (void)s.set_meta("q" + std::to_string(i), "x"); });
  }
  auto s = open_store();
  EXPECT_TRUE(s->get_meta("q0").value());
  EXPECT_TRUE(s->get_meta("q99").value());
}

}  // namespace
}  // namespace slipway::store
