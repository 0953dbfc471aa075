// Runs every database operation on one dedicated thread, in the order they were posted, so that
// the server's I/O thread never waits for SQLite. Work that arrives while the thread is busy is
// run in one transaction (up to a few hundred operations), which is what keeps a 10,000-node
// rollout from turning into 10,000 separate commits.
//
// The queue is bounded by back-pressure, never by dropping work (a slow disk or a flood of agent
// reports must neither grow the server's memory without limit nor lose a record):
// - post() always queues, whatever the depth. It is for writes that must not be lost (the deploy
//   journal, the audit log, run records) and that come after a producer that waits (an agent
//   report read, a request admitted), or that are coalesced so that at most one of them waits at
//   a time (LatestWrites, the periodic writes).
// - A producer that can wait asks for room first: when_room(ready) calls `ready` at once while
//   fewer than high_water jobs are queued and no earlier producer waits; otherwise `ready` waits,
//   in the order asked, until the database thread has brought the queue down to low_water, and
//   is then called on the database thread (the gap between the marks lets waiting producers go
//   on together rather than one per finished job). The server's db_call waits so before it
//   queues its job; the agent gateway before it reads an agent's next message, so that TCP
//   pushes back on agents; the listener before it takes a request that changes something.
// - Every producer let through counts as one job against the room, so at most
//   high_water - depth of them go on at once. The mark is soft by what each of them adds beyond
//   its one job: the depth stays below high_water plus a few jobs per producer let through,
//   bounded by the number of producers, never by time.
//
// Thread-safety: every member may be called from any thread; run_sync() and drain() never from the
// database thread itself (a job or a `ready`), which they would wait for.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "store/store.h"

namespace slipway::store {

// The marks of the database queue (a namespace-scope type: GCC does not take a nested type's
// default member initializers in a default argument of its enclosing class).
struct DbQueueLimits {
  // Producers that can wait do so from this many queued jobs on...
  size_t high_water = 1024;
  // ...until the queue is down to this many. REQUIRES: low_water < high_water.
  size_t low_water = 512;
};

class DbExecutor {
 public:
  using Job = std::function<void(Store&)>;
  using Limits = DbQueueLimits;

  // The queue as it is now, and since the start.
  struct QueueStats {
    size_t depth = 0;    // jobs queued and not yet started
    size_t peak = 0;     // the largest depth seen
    size_t waiting = 0;  // producers waiting for room now
    uint64_t waits = 0;  // producers that had to wait, since the start
    size_t high_water = 0;
  };

  explicit DbExecutor(std::unique_ptr<Store> store, Limits limits = {});
  ~DbExecutor();  // runs what is queued (and lets every waiting producer on), then stops
  DbExecutor(const DbExecutor&) = delete;
  DbExecutor& operator=(const DbExecutor&) = delete;

  // Queues `fn` to run on the database thread, never waiting and above the mark too. Each
  // function handles its own errors.
  void post(Job fn);
  // Calls `ready` once a producer may queue a job: at once (on the caller's thread) when there is
  // room and no earlier producer waits, else later on the database thread, in the order asked.
  // `ready` must be quick and must not wait for the database (no run_sync, no drain); it may
  // post().
  void when_room(std::function<void()> ready);
  // Whether a producer asking now would go on at once (a hint: the answer may change at once).
  bool has_room() const;
  QueueStats stats() const;

  // Runs `fn` and waits for it (startup and shutdown only: never from an I/O thread).
  void run_sync(const std::function<void(Store&)>& fn);
  // Waits until everything posted so far has run and no producer waits for room.
  void drain();

  // Test hook: the database thread sleeps this long before each job, as on a slow disk.
  void TEST_set_job_delay(std::chrono::milliseconds delay) { job_delay_us_ = delay.count() * 1000; }

 private:
  void loop();
  // Moves the first waiting producers, as many as there is room for, into `go`. REQUIRES: mu_.
  void let_through(std::vector<std::function<void()>>& go);

  std::unique_ptr<Store> store_;
  const Limits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Job> queue_;                      // GUARDED_BY(mu_)
  std::deque<std::function<void()>> waiting_;  // GUARDED_BY(mu_)
  size_t peak_ = 0;                            // GUARDED_BY(mu_)
  uint64_t waits_ = 0;                         // GUARDED_BY(mu_)
  bool stopping_ = false;                      // GUARDED_BY(mu_)
  bool busy_ = false;                          // GUARDED_BY(mu_)
  std::atomic<int64_t> job_delay_us_{0};
  std::thread thread_;
};

}  // namespace slipway::store
