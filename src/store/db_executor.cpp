#include "store/db_executor.h"

#include <algorithm>
#include <future>
#include <vector>

#include <spdlog/spdlog.h>

namespace slipway::store {

namespace {
constexpr size_t kMaxBatch = 512;
}

DbExecutor::DbExecutor(std::unique_ptr<Store> store, Limits limits)
    : store_(std::move(store)), limits_(limits), thread_([this] { loop(); }) {}

DbExecutor::~DbExecutor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DbExecutor::post(Job fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
    peak_ = std::max(peak_, queue_.size());
  }
  cv_.notify_one();
}

void DbExecutor::when_room(std::function<void()> ready) {
  {
    std::lock_guard lock(mu_);
    if (!waiting_.empty() || queue_.size() >= limits_.high_water) {
      // The database thread is busy (the queue is not empty), so it will come to let_through.
      waiting_.push_back(std::move(ready));
      ++waits_;
      return;
    }
  }
  ready();
}

bool DbExecutor::has_room() const {
  std::lock_guard lock(mu_);
  return waiting_.empty() && queue_.size() < limits_.high_water;
}

DbExecutor::QueueStats DbExecutor::stats() const {
  std::lock_guard lock(mu_);
  return QueueStats{queue_.size(), peak_, waiting_.size(), waits_, limits_.high_water};
}

void DbExecutor::run_sync(const std::function<void(Store&)>& fn) {
  std::promise<void> done;
  post([&](Store& s) {
    fn(s);
    done.set_value();
  });
  done.get_future().wait();
}

void DbExecutor::drain() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && waiting_.empty() && !busy_; });
}

void DbExecutor::let_through(std::vector<std::function<void()>>& go) {
  size_t room = queue_.size() < limits_.high_water ? limits_.high_water - queue_.size() : 0;
  while (room > 0 && !waiting_.empty()) {
    go.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    --room;
  }
}

void DbExecutor::loop() {
  std::vector<Job> batch;
  std::vector<std::function<void()>> go;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      busy_ = false;
      if (queue_.empty() && waiting_.empty()) idle_cv_.notify_all();
      // Waiting producers wake this thread too: those let through last time may have queued
      // nothing (an agent that went away), and the next must not wait for a job that never comes.
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty() || !waiting_.empty(); });
      if (queue_.empty() && waiting_.empty()) return;  // stopping, and nothing left
      busy_ = true;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (queue_.size() <= limits_.low_water) let_through(go);
    }
    // The producers go on while this batch runs, so that the next one is ready when it ends.
    for (auto& ready : go) {
      try {
        ready();
      } catch (const std::exception& e) {
        spdlog::error("resuming a producer waiting for the database failed: {}", e.what());
      }
    }
    go.clear();
    if (batch.empty()) continue;
    // One transaction per batch, also for a single job: a job may write many rows (a deploy of
    // 10,000 nodes, a flush of the deploy journal), and SQLite commits each statement outside a
    // transaction on its own.
    const bool tx = static_cast<bool>(store_->begin());
    for (auto& fn : batch) {
      if (const auto us = job_delay_us_.load(std::memory_order_relaxed); us > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(us));
      try {
        fn(*store_);
      } catch (const std::exception& e) {
        spdlog::error("database operation failed: {}", e.what());
      }
    }
    if (tx) {
      if (auto st = store_->commit(); !st) {
        spdlog::error("database commit failed: {}", st.error().message);
        (void)store_->rollback();
      }
    }
    batch.clear();
  }
}

}  // namespace slipway::store
