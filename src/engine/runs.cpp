#include "engine/runs.h"

#include <algorithm>

#include <fmt/format.h>

#include "protocol/agent_protocol.h"

namespace slipway::engine {

RunManager::RunManager(const Clock& clock, ExecTransport& transport, RunJournal& journal,
                       Millis grace)
    : clock_(clock), journal_(journal), calls_(clock, transport, kActionPrefix, grace) {}

RunManager::~RunManager() = default;

Result<RunId> RunManager::start(RunRequest req, std::vector<RunTarget> targets) {
  if (auto st = protocol::validate_exec_argv(req.argv); !st) return st.error();
  if (req.timeout.count() < 1 || req.timeout.count() > protocol::kExecMaxTimeoutMs) {
    return err(Errc::invalid_argument, "the timeout must be 1 ms to 24 h");
  }
  if (targets.empty()) return err(Errc::failed_precondition, "no node to run the command on");
  std::sort(targets.begin(), targets.end(),
            [](const RunTarget& a, const RunTarget& b) { return a.node < b.node; });

  auto run = std::make_unique<Run>();
  run->id = next_id_++;
  run->env = std::move(req.env);
  run->selector = std::move(req.selector);
  run->argv = std::move(req.argv);
  run->batch = req.batch;
  run->timeout = req.timeout;
  run->actor = std::move(req.actor);
  run->claimed_user = std::move(req.claimed_user);
  run->created_at = clock_.now();
  const int total = static_cast<int>(targets.size());
  const int size = run->batch.resolve(total);
  run->batches = (total + size - 1) / size;
  for (int i = 0; i < total; ++i) {
    RunNode n;
    n.node = std::move(targets[static_cast<size_t>(i)].node);
    n.zone = std::move(targets[static_cast<size_t>(i)].zone);
    n.batch = i / size;
    run->nodes.push_back(std::move(n));
  }
  const RunId id = run->id;
  journal_.save_run(*run, true);
  Run& r = *run;
  runs_[id] = std::move(run);
  dispatch_wave(r);
  advance(id);
  return id;
}

const Run* RunManager::find(RunId id) const {
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second.get();
}

void RunManager::dispatch_wave(Run& run) {
  const RunId id = run.id;
  // The nodes are in wave order: a wave is one contiguous range of them.
  const int wave = run.current_batch;
  const auto first = std::partition_point(run.nodes.begin(), run.nodes.end(),
                                          [wave](const RunNode& n) { return n.batch < wave; });
  const auto last = std::partition_point(first, run.nodes.end(),
                                         [wave](const RunNode& n) { return n.batch == wave; });
  open_in_wave_[id] = static_cast<int>(last - first);
  protocol::ExecCommand cmd;
  cmd.argv = run.argv;
  cmd.env = {{"SLIPWAY_RUN", std::to_string(id)}};
  cmd.timeout_ms = run.timeout.count();
  const std::string tag = std::to_string(id);
  const auto begin = static_cast<size_t>(first - run.nodes.begin());
  const auto end = static_cast<size_t>(last - run.nodes.begin());
  for (size_t i = begin; i < end; ++i) {
    RunNode& n = run.nodes[i];
    n.status = RunNodeStatus::running;
    n.started_at = clock_.now();
    auto cb = [this, id, i](const ExecCalls::Outcome& o) { on_outcome(id, i, o); };
    if (calls_.call(n.node, cmd, tag, cb).empty()) {
      n.reason = "not connected";
      finish_node(run, i);
    }
  }
}

void RunManager::on_outcome(RunId id, size_t idx, const ExecCalls::Outcome& o) {
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  Run& run = *it->second;
  RunNode& n = run.nodes.at(idx);
  if (o.failure.empty()) {
    n.exit_code = o.result.exit_code;
    n.signal = o.result.signal;
    n.timed_out = o.result.timed_out;
    n.output = o.result.output;
    if (o.result.started_at > 0) n.started_at = o.result.started_at;
    n.duration_ms = o.result.duration_ms;
    if (n.timed_out) {
      n.reason = "timed out after " + format_duration(run.timeout);
    } else if (n.signal != 0) {
      n.reason = fmt::format("killed by signal {}", n.signal);
    } else if (n.exit_code != 0) {
      n.reason = fmt::format("exit code {}", n.exit_code);
    }
  } else {
    n.reason = o.failure;
    n.duration_ms = clock_.now() - n.started_at;
  }
  finish_node(run, idx);
  advance(id);
}

void RunManager::finish_node(Run& run, size_t idx) {
  RunNode& n = run.nodes[idx];
  const bool ok = n.reason.empty() && n.exit_code == 0 && !n.timed_out && n.signal == 0;
  n.status = ok ? RunNodeStatus::ok : RunNodeStatus::failed;
  n.seq = ++run.finished_nodes;
  --open_in_wave_[run.id];
  journal_.save_run_node(run.id, n);
}

void RunManager::advance(RunId id) {
  for (;;) {
    auto it = runs_.find(id);
    if (it == runs_.end()) return;
    Run& run = *it->second;
    if (open_in_wave_[id] > 0) return;
    if (run.current_batch + 1 < run.batches) {
      ++run.current_batch;
      journal_.save_run(run, false);
      dispatch_wave(run);
      continue;  // a wave whose nodes all failed at once is done already
    }
    run.state = run.count(RunNodeStatus::ok) == static_cast<int>(run.nodes.size())
                    ? RunState::succeeded
                    : RunState::failed;
    run.finished_at = clock_.now();
    journal_.save_run(run, false);
    open_in_wave_.erase(id);
    runs_.erase(it);
    return;
  }
}

}  // namespace slipway::engine
