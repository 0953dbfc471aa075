// The database thread (store/db_executor.h): order, run_sync, drain, batching into transactions,
// and the bound: producers that can wait do so above the mark, and nothing is lost or reordered.
#include "store/db_executor.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
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

// Holds the database thread in a job until release() (a disk that does not answer).
class Latch {
 public:
  // Posts the holding job and returns once the database thread runs it (the queue behind it is
  // then empty).
  void hold(DbExecutor& db) {
    auto started = std::make_shared<std::promise<void>>();
    auto running = started->get_future();
    db.post([started, gate = gate_](Store&) {
      started->set_value();
      gate.wait();
    });
    running.wait();
  }
  void release() { released_.set_value(); }

 private:
  std::promise<void> released_;
  std::shared_future<void> gate_ = released_.get_future().share();
};

// Polls until `pred` holds; false after a deadline far beyond any normal run (a hang, reported as a
// failure rather than left to the test timeout). Not a timing assertion.
bool eventually(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Blocks the calling thread until the executor lets it on (the threaded form of db_call's wait).
void wait_for_room(DbExecutor& db) {
  auto go = std::make_shared<std::promise<void>>();
  auto ready = go->get_future();
  db.when_room([go] { go->set_value(); });
  ready.wait();
}

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

// What each producer's jobs recorded: all of them, in the order that producer posted them.
void ExpectEveryJobInOrder(const std::vector<std::vector<int>>& seen, int each) {
  for (size_t t = 0; t < seen.size(); ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(each)) << "producer " << t;
    for (int i = 0; i < each; ++i)
      ASSERT_EQ(seen[t][static_cast<size_t>(i)], i) << "producer " << t;
  }
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
  ExpectEveryJobInOrder(seen, kEach);
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

// --- The bound ----------------------------------------------------------------------------------

TEST_F(DbExecutorTest, AProducerWaitsAtTheMarkAndLosesNothing) {
  constexpr int kJobs = 200;
  std::vector<int> ran;  // the database thread's until drain()
  std::atomic<int> produced{0};
  DbExecutor db(open_store(), {.high_water = 8, .low_water = 4});
  Latch latch;
  latch.hold(db);
  std::thread producer([&] {
    for (int i = 0; i < kJobs; ++i) {
      wait_for_room(db);
      db.post([&ran, i](Store& s) {
        ran.push_back(i);
        (void)s.set_meta("job-" + std::to_string(i), "x");
      });
      ++produced;
    }
  });
  // The producer stops at the mark: eight jobs queued behind the held one, and it waits.
  ASSERT_TRUE(eventually([&] { return db.stats().waiting == 1; }));
  EXPECT_EQ(produced.load(), 8);
  EXPECT_EQ(db.stats().depth, 8u);
  EXPECT_FALSE(db.has_room());
  latch.release();
  producer.join();
  db.drain();
  ASSERT_EQ(ran.size(), static_cast<size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i)
    ASSERT_EQ(ran[static_cast<size_t>(i)], i);
  const auto st = db.stats();
  EXPECT_LE(st.peak, 8u);
  EXPECT_GE(st.waits, 1u);
  EXPECT_EQ(st.depth, 0u);
  EXPECT_EQ(st.waiting, 0u);
  int found = 0;
  db.run_sync([&](Store& s) {
    for (int i = 0; i < kJobs; ++i)
      found += s.get_meta("job-" + std::to_string(i)).value() ? 1 : 0;
  });
  EXPECT_EQ(found, kJobs);
}

TEST_F(DbExecutorTest, ManyProducersStayNearTheMarkAndKeepTheirOwnOrder) {
  constexpr int kThreads = 4;
  constexpr int kEach = 300;
  constexpr size_t kHigh = 16;
  std::vector<std::vector<int>> seen(kThreads);
  DbExecutor db(open_store(), {.high_water = kHigh, .low_water = kHigh / 2});
  Latch latch;
  latch.hold(db);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        wait_for_room(db);
        db.post([&seen, t, i](Store&) { seen[static_cast<size_t>(t)].push_back(i); });
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return db.stats().waiting == kThreads; }));
  EXPECT_EQ(db.stats().depth, kHigh);
  latch.release();
  for (auto& th : threads)
    th.join();
  db.drain();
  ExpectEveryJobInOrder(seen, kEach);
  // Each producer let through counts as one job: past the mark by at most one job per producer
  // (those let through whose job is not queued yet when the next are).
  EXPECT_LE(db.stats().peak, kHigh + kThreads);
}

TEST_F(DbExecutorTest, WaitingProducersGoOnInTheOrderTheyAsked) {
  std::vector<std::string> ran;
  DbExecutor db(open_store(), {.high_water = 4, .low_water = 2});
  Latch latch;
  latch.hold(db);
  for (int i = 0; i < 4; ++i)
    db.post([&ran, i](Store&) { ran.push_back("job" + std::to_string(i)); });
  // As db_call does: the job is queued from `ready`, at once or once there is room.
  for (int i = 0; i < 10; ++i) {
    db.when_room([&db, &ran, i] {
      db.post([&ran, i](Store&) { ran.push_back("waiter" + std::to_string(i)); });
    });
  }
  EXPECT_EQ(db.stats().waiting, 10u);
  EXPECT_EQ(db.stats().depth, 4u);
  latch.release();
  db.drain();
  std::vector<std::string> want;
  for (int i = 0; i < 4; ++i)
    want.push_back("job" + std::to_string(i));
  for (int i = 0; i < 10; ++i)
    want.push_back("waiter" + std::to_string(i));
  EXPECT_EQ(ran, want);
  EXPECT_LE(db.stats().peak, 4u);
}

TEST_F(DbExecutorTest, PostNeverWaitsAndGoesPastTheMark) {
  std::atomic<int> ran{0};
  bool waiter_went_on = false;
  DbExecutor db(open_store(), {.high_water = 4, .low_water = 2});
  Latch latch;
  latch.hold(db);
  for (int i = 0; i < 50; ++i)
    db.post([&ran](Store&) { ++ran; });  // writes that must not be lost: queued all the same
  EXPECT_EQ(db.stats().depth, 50u);
  EXPECT_FALSE(db.has_room());
  db.when_room([&] { waiter_went_on = true; });
  EXPECT_EQ(db.stats().waiting, 1u);
  latch.release();
  db.drain();
  EXPECT_EQ(ran.load(), 50);
  EXPECT_TRUE(waiter_went_on);
}

TEST_F(DbExecutorTest, ProducersThatQueueNothingDoNotStallTheOthers) {
  // Producers let through may queue nothing (an agent that went away): the ones behind them
  // must still go on, although no job is left to finish.
  std::atomic<int> went_on{0};
  DbExecutor db(open_store(), {.high_water = 2, .low_water = 1});
  Latch latch;
  latch.hold(db);
  db.post([](Store&) {});
  db.post([](Store&) {});
  for (int i = 0; i < 25; ++i)
    db.when_room([&went_on] { ++went_on; });
  latch.release();
  db.drain();
  EXPECT_EQ(went_on.load(), 25);
  EXPECT_TRUE(db.has_room());
}

TEST_F(DbExecutorTest, TheDestructorLetsWaitingProducersOnAndRunsTheirJobs) {
  {
    DbExecutor db(open_store(), {.high_water = 2, .low_water = 1});
    Latch latch;
    latch.hold(db);
    for (int i = 0; i < 2; ++i)
      db.post([i](Store& s) { (void)s.set_meta("first-" + std::to_string(i), "x"); });
    for (int i = 0; i < 6; ++i) {
      db.when_room([&db, i] {
        db.post([i](Store& s) { (void)s.set_meta("waiter-" + std::to_string(i), "x"); });
      });
    }
    latch.release();
  }
  auto s = open_store();
  EXPECT_TRUE(s->get_meta("first-1").value());
  for (int i = 0; i < 6; ++i)
    EXPECT_TRUE(s->get_meta("waiter-" + std::to_string(i)).value()) << i;
}

}  // namespace
}  // namespace slipway::store
