// Writes of whole records of which only the newest matters (a node's record, which every agent
// heartbeat with app state replaces): at most one write per key waits for the database. A record
// saved while an earlier one of its key still waits replaces it, and one job in the database
// queue carries every waiting record, so what waits is bounded by the number of keys, whatever
// the rate of saves or the speed of the disk.
//
// Order: the records of a key are written in the order they were saved (a replaced one never
// is); a saved record is written before any job posted to the executor after save() returned.
// Thread-safety: save() and the counters from any thread; `write` runs on the database thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "store/db_executor.h"

namespace slipway::store {

template <class Value>
class LatestWrites {
 public:
  using Write = std::function<void(Store&, const Value&)>;

  // `db` must outlive the calls to save(); the jobs keep what they need alive themselves.
  LatestWrites(DbExecutor& db, Write write) : db_(db), state_(std::make_shared<State>()) {
    state_->write = std::move(write);
  }

  void save(const std::string& key, Value v) {
    bool post = false;
    {
      std::lock_guard lock(state_->mu);
      auto [it, inserted] = state_->pending.insert_or_assign(key, std::move(v));
      if (!inserted) ++state_->replaced;
      post = !state_->posted;
      state_->posted = true;
    }
    if (!post) return;  // the job already queued will write it
    db_.post([state = state_](Store& s) {
      std::map<std::string, Value> take;
      {
        std::lock_guard lock(state->mu);
        take.swap(state->pending);
        state->posted = false;  // a save from now on needs a job of its own
      }
      for (const auto& [key, value] : take)
        state->write(s, value);
    });
  }

  // Keys whose record waits to be written.
  size_t pending() const {
    std::lock_guard lock(state_->mu);
    return state_->pending.size();
  }
  // Saves that replaced a waiting record (which was then never written).
  uint64_t replaced() const {
    std::lock_guard lock(state_->mu);
    return state_->replaced;
  }

 private:
  struct State {
    std::mutex mu;
    std::map<std::string, Value> pending;  // GUARDED_BY(mu)
    bool posted = false;                   // GUARDED_BY(mu): a job that takes `pending` is queued
    uint64_t replaced = 0;                 // GUARDED_BY(mu)
    Write write;
  };
  DbExecutor& db_;
  std::shared_ptr<State> state_;
};

}  // namespace slipway::store
