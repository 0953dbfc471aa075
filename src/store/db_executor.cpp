#include "store/db_executor.h"

#include <future>
#include <vector>

#include <spdlog/spdlog.h>

namespace slipway::store {

namespace {
constexpr size_t kMaxBatch = 512;
}

DbExecutor::DbExecutor(std::unique_ptr<Store> store)
    : store_(std::move(store)), thread_([this] { loop(); }) {}

DbExecutor::~DbExecutor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DbExecutor::post(std::function<void(Store&)> fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
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
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void DbExecutor::loop() {
  std::vector<std::function<void(Store&)>> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      busy_ = false;
      idle_cv_.notify_all();
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      busy_ = true;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // One transaction per batch, also for a single job: a job may write many rows (a deploy of
    // 10,000 nodes, a flush of the deploy journal), and SQLite commits each statement outside a
    // transaction on its own.
    const bool tx = static_cast<bool>(store_->begin());
    for (auto& fn : batch) {
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
