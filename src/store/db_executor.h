// Runs every database operation on one dedicated thread, in the order they were posted, so that
// the server's I/O thread never waits for SQLite. Work that arrives while the thread is busy is
// run in one transaction (up to a few hundred operations), which is what keeps a 10,000-node
// rollout from turning into 10,000 separate commits.
//
// Thread-safety: post() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace slipway::store {

class DbExecutor {
 public:
  explicit DbExecutor(std::unique_ptr<Store> store);
  ~DbExecutor();  // runs what is queued, then stops
  DbExecutor(const DbExecutor&) = delete;
  DbExecutor& operator=(const DbExecutor&) = delete;

  // Queues `fn` to run on the database thread. Each function handles its own errors.
  void post(std::function<void(Store&)> fn);
  // Runs `fn` and waits for it (startup and shutdown only: never from an I/O thread).
  void run_sync(const std::function<void(Store&)>& fn);
  // Waits until everything posted so far has run.
  void drain();

 private:
  void loop();

  std::unique_ptr<Store> store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void(Store&)>> queue_;
  bool stopping_ = false;
  bool busy_ = false;
  std::thread thread_;
};

}  // namespace slipway::store
