#include "engine/engine.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/strings.h"

namespace slipway::engine {

struct Engine::Run {
  Deploy d;
  DeployRequest req;
  std::vector<std::vector<size_t>> waves;  // forward waves, indices into d.nodes
  size_t wave = 0;
  int inflight = 0;
  bool stopping = false;  // abort requested
  bool rollback_on_stop = true;
  std::string first_failure;
  std::vector<bool> sent;      // the forward install reached the node's connection
  std::vector<bool> reported;  // the node answered it
  std::vector<size_t> revert_queue;
  size_t revert_pos = 0;
  int64_t seq = 0;
};

Engine::Engine(const Clock& clock, NodeTransport& transport, DeployJournal& journal,
               EventSink& sink, EngineOptions opts)
    : clock_(clock), transport_(transport), journal_(journal), sink_(sink), opts_(opts) {}

Engine::~Engine() = default;

Result<DeployId> Engine::start(DeployRequest req, std::vector<Target> targets) {
  forget_finished();
  if (targets.empty()) {
    return err(Errc::failed_precondition,
               fmt::format("no alive node matches env={}{}{}: nothing to deploy to", req.env,
                           req.selector.empty() ? "" : " ", req.selector));
  }
  if (const Deploy* other = running_for(req.app, req.env)) {
    return err(Errc::conflict,
               fmt::format("deploy #{} of {} {} to {} is still running (started by {} at {}); "
                           "wait for it or abort it first",
                           other->id, other->app, other->version, other->env, other->actor,
                           format_time_short(other->created_at)));
  }
  if (req.max_failures < 0) return err(Errc::invalid_argument, "max failures must be 0 or more");

  auto run = std::make_unique<Run>();
  Deploy& d = run->d;
  d.id = next_id_++;
  d.kind = req.kind;
  d.app = req.app;
  d.version = req.artifact.version;
  d.env = req.env;
  d.selector = req.selector;
  d.strategy = "rolling";
  d.batch = req.batch;
  d.max_failures = req.max_failures;
  d.actor = req.actor;
  d.forced_freeze = req.forced_freeze;
  d.created_at = clock_.now();

  // Stable, so that of duplicate targets the first one given is kept.
  std::stable_sort(targets.begin(), targets.end(),
                   [](const Target& a, const Target& b) { return a.node < b.node; });
  targets.erase(std::unique(targets.begin(), targets.end(),
                            [](const Target& a, const Target& b) { return a.node == b.node; }),
                targets.end());
  const int total = static_cast<int>(targets.size());
  const int per_wave = req.batch.resolve(total);
  for (int i = 0; i < total; ++i) {
    NodeProgress n;
    n.node = targets[i].node;
    n.zone = targets[i].zone;
    n.from_version = targets[i].from_version;
    n.batch = i / per_wave;
    if (static_cast<size_t>(n.batch) >= run->waves.size()) run->waves.emplace_back();
    run->waves[n.batch].push_back(static_cast<size_t>(i));
    d.nodes.push_back(std::move(n));
  }
  d.recount();
  d.batches = static_cast<int>(run->waves.size());
  run->sent.assign(d.nodes.size(), false);
  run->reported.assign(d.nodes.size(), false);
  run->req = std::move(req);

  Run& r = *run;
  const DeployId id = d.id;
  runs_.emplace(id, std::move(run));
  journal_.save_deploy(r.d);
  emit(r, "deploy.started", "", "", "running",
       fmt::format("{} {} {} to {} node(s) in {}{}, {} at a time ({} batch{})",
                   r.d.kind == DeployKind::rollback ? "rolling back" : "deploying", r.d.app,
                   r.d.version, total, r.d.env,
                   r.d.selector.empty() ? "" : " (" + r.d.selector + ")", per_wave, r.d.batches,
                   r.d.batches == 1 ? "" : "es"));
  start_wave(r);
  advance(r);
  return id;
}

std::string Engine::new_action(Run& run, size_t idx) {
  std::string action = fmt::format("d{}.a{}", run.d.id, next_action_++);
  actions_[action] = ActionRef{run.d.id, idx};
  run.d.nodes[idx].action = action;
  return action;
}

// Sends the current wave; the caller then calls advance() (which ends the wave at once when no
// node of it could be reached).
void Engine::start_wave(Run& run) {
  Deploy& d = run.d;
  d.current_batch = static_cast<int>(run.wave);
  const auto& wave = run.waves[run.wave];
  std::vector<std::string> names;
  for (size_t idx : wave)
    names.push_back(d.nodes[idx].node);
  emit(run, "batch.started", "", "", "running",
       fmt::format("batch {}/{}: {}", run.wave + 1, run.waves.size(), join(names, ", ")));
  for (size_t idx : wave)
    dispatch_forward(run, idx);
}

void Engine::dispatch_forward(Run& run, size_t idx) {
  NodeProgress& n = run.d.nodes[idx];
  run.d.set_status(n, NodeStatus::running);
  n.started_at = clock_.now();
  n.step = "";
  protocol::InstallCommand cmd;
  cmd.action = new_action(run, idx);
  cmd.deploy = run.d.id;
  cmd.app = run.d.app;
  cmd.version = run.req.artifact.version;
  cmd.sha256 = run.req.artifact.sha256;
  cmd.size = run.req.artifact.size;
  cmd.url = "/api/v1/blobs/" + cmd.sha256;
  cmd.env = run.req.env_vars;
  cmd.keep_releases = run.req.keep_releases;
  ++run.inflight;
  journal_.save_node(run.d.id, n);
  if (!transport_.send_install(n.node, cmd)) {
    finish_node(run, idx, false, "the node is not connected");
    return;
  }
  run.sent[idx] = true;
}

void Engine::dispatch_revert(Run& run, size_t idx) {
  NodeProgress& n = run.d.nodes[idx];
  run.d.set_status(n, NodeStatus::reverting);
  n.started_at = clock_.now();
  n.step = "";
  ++run.inflight;
  const std::string action = new_action(run, idx);
  journal_.save_node(run.d.id, n);
  bool sent = false;
  if (n.from_version.empty()) {
    protocol::DeactivateCommand cmd{action, run.d.id, run.d.app};
    sent = transport_.send_deactivate(n.node, cmd);
  } else {
    auto it = run.req.previous.find(n.from_version);
    if (it == run.req.previous.end()) {
      finish_node(
          run, idx, false,
          fmt::format("version {} is no longer in the artifact repository", n.from_version));
      return;
    }
    protocol::InstallCommand cmd;
    cmd.action = action;
    cmd.deploy = run.d.id;
    cmd.app = run.d.app;
    cmd.version = it->second.version;
    cmd.sha256 = it->second.sha256;
    cmd.size = it->second.size;
    cmd.url = "/api/v1/blobs/" + cmd.sha256;
    cmd.env = run.req.env_vars;
    cmd.keep_releases = run.req.keep_releases;
    sent = transport_.send_install(n.node, cmd);
  }
  if (!sent) finish_node(run, idx, false, "the node is not connected");
}

void Engine::finish_node(Run& run, size_t idx, bool ok, const std::string& reason) {
  NodeProgress& n = run.d.nodes[idx];
  actions_.erase(n.action);
  n.action.clear();
  n.finished_at = clock_.now();
  --run.inflight;
  if (n.status == NodeStatus::running) {
    run.d.set_status(n, ok ? NodeStatus::healthy : NodeStatus::failed);
  } else if (n.status == NodeStatus::reverting) {
    run.d.set_status(n, ok ? NodeStatus::reverted : NodeStatus::revert_failed);
  }
  // A failed node that was then sent back successfully keeps why it failed in the first place.
  if (!ok) {
    n.reason = reason;
  } else if (n.status != NodeStatus::reverted) {
    n.reason.clear();
  }
  if (!ok && run.first_failure.empty()) run.first_failure = n.node + ": " + reason;
  journal_.save_node(run.d.id, n);
  std::string message = ok ? "" : n.reason;
  if (!n.reverted_to.empty() && !ok) message += "; went back to " + n.reverted_to + " by itself";
  emit(run, "node.finished", n.node, "", std::string(node_status_name(n.status)), message,
       n.finished_at - n.started_at);
}

void Engine::advance(Run& run) {
  // A loop, not recursion: a wave whose nodes all fail at dispatch (not connected) is over as soon
  // as it starts, and thousands of such waves in a row must not exhaust the stack.
  Deploy& d = run.d;
  for (;;) {
    if (is_terminal(d.state) || run.inflight > 0) return;
    if (d.phase == Phase::forward) {
      const int failed = d.count(NodeStatus::failed);
      const bool too_many = failed > d.max_failures;
      if (run.stopping || too_many) {
        for (auto& n : d.nodes) {
          if (n.status == NodeStatus::pending) {
            d.set_status(n, NodeStatus::skipped);
            journal_.save_node(d.id, n);
          }
        }
        if (run.stopping) {
          d.reason = "aborted by " + d.aborted_by;
        } else {
          d.reason = fmt::format("{} node(s) failed (max failures {}): {}", failed, d.max_failures,
                                 run.first_failure);
        }
        if (!run.rollback_on_stop) {
          finish(run, DeployState::failed, d.reason + "; not rolled back");
          return;
        }
        begin_revert(run);  // now in the revert phase
        continue;
      }
      if (run.wave + 1 < run.waves.size()) {
        ++run.wave;
        start_wave(run);
        continue;
      }
      if (failed == 0) {
        finish(run, DeployState::succeeded, "");
      } else {
        finish(run, DeployState::failed,
               fmt::format("{} node(s) failed, within max failures {}; not rolled back: {}", failed,
                           d.max_failures, run.first_failure));
      }
      return;
    }
    // Revert phase: the next wave of nodes to send back, or the end.
    if (run.revert_pos < run.revert_queue.size()) {
      const int per_wave = d.batch.resolve(static_cast<int>(d.nodes.size()));
      const size_t end = std::min(run.revert_queue.size(), run.revert_pos + per_wave);
      std::vector<size_t> wave(run.revert_queue.begin() + static_cast<long>(run.revert_pos),
                               run.revert_queue.begin() + static_cast<long>(end));
      run.revert_pos = end;
      std::vector<std::string> names;
      for (size_t idx : wave)
        names.push_back(d.nodes[idx].node);
      emit(run, "batch.started", "", "", "reverting", "rolling back: " + join(names, ", "));
      for (size_t idx : wave)
        dispatch_revert(run, idx);
      continue;
    }
    const int revert_failed = d.count(NodeStatus::revert_failed);
    // A failed node that did not get back to its previous version by itself is still changed.
    int stuck = 0;
    for (const auto& n : d.nodes) {
      if (n.status == NodeStatus::failed && !n.version_now.empty() &&
          n.version_now != n.from_version) {
        ++stuck;
      }
    }
    // A node that got the new version's command but never answered (it disconnected or timed
    // out) may be running it: the deploy is rolled back as far as anyone can tell, but say so.
    int unconfirmed = 0;
    for (size_t i = 0; i < d.nodes.size(); ++i) {
      if (d.nodes[i].status == NodeStatus::failed && run.sent[i] && !run.reported[i]) ++unconfirmed;
    }
    if (revert_failed == 0 && stuck == 0) {
      finish(run, DeployState::rolled_back,
             d.reason + "; rolled back" +
                 (unconfirmed == 0
                      ? std::string()
                      : fmt::format(" ({} node(s) stopped answering during the deploy and could "
                                    "not be confirmed)",
                                    unconfirmed)));
    } else {
      finish(run, DeployState::failed,
             fmt::format("{}; rolling back failed on {} node(s)", d.reason, revert_failed + stuck));
    }
    return;
  }
}

void Engine::begin_revert(Run& run) {
  Deploy& d = run.d;
  d.phase = Phase::revert;
  run.revert_queue.clear();
  for (size_t i = 0; i < d.nodes.size(); ++i) {
    const auto& n = d.nodes[i];
    const bool changed_ok = n.status == NodeStatus::healthy && n.from_version != d.version;
    // A failed node whose agent could not go back by itself and reported another version.
    const bool changed_failed =
        n.status == NodeStatus::failed && !n.version_now.empty() && n.version_now != n.from_version;
    if (changed_ok || changed_failed) run.revert_queue.push_back(i);
  }
  std::vector<std::string> names;
  for (size_t idx : run.revert_queue)
    names.push_back(d.nodes[idx].node);
  emit(run, "revert.started", "", "", "reverting",
       run.revert_queue.empty()
           ? d.reason + "; no node needs to go back (the failed ones went back by themselves)"
           : d.reason + "; sending back " + join(names, ", "));
  journal_.save_deploy(d);
}

void Engine::finish(Run& run, DeployState state, const std::string& reason) {
  Deploy& d = run.d;
  d.state = state;
  d.reason = reason;
  d.finished_at = clock_.now();
  journal_.save_deploy(d);
  emit(run, "deploy.finished", "", "", std::string(deploy_state_name(state)),
       state == DeployState::succeeded
           ? fmt::format("{} node(s) healthy on {} {} in {}", d.count(NodeStatus::healthy), d.app,
                         d.version, format_duration(d.duration(d.finished_at)))
           : reason);
}

void Engine::emit(Run& run, std::string kind, const std::string& node, std::string step,
                  std::string status, std::string message, int64_t duration_ms) {
  DeployEvent e;
  e.deploy = run.d.id;
  e.seq = ++run.seq;
  e.at = clock_.now();
  e.kind = std::move(kind);
  e.node = node;
  e.step = std::move(step);
  e.status = std::move(status);
  e.message = std::move(message);
  e.duration_ms = duration_ms;
  sink_.on_event(e, run.d);
}

Engine::Run* Engine::run_for_action(const std::string& node, const std::string& action,
                                    size_t* idx) {
  auto it = actions_.find(action);
  if (it == actions_.end()) return nullptr;
  auto rit = runs_.find(it->second.deploy);
  if (rit == runs_.end()) return nullptr;
  Run& run = *rit->second;
  if (it->second.node_index >= run.d.nodes.size()) return nullptr;
  // Only the node the command was sent to may report on it.
  if (run.d.nodes[it->second.node_index].node != node) return nullptr;
  *idx = it->second.node_index;
  return &run;
}

void Engine::on_step(const std::string& node, const protocol::StepEvent& e) {
  size_t idx = 0;
  Run* run = run_for_action(node, e.action, &idx);
  if (!run) {
    ++ignored_reports_;
    return;
  }
  NodeProgress& n = run->d.nodes[idx];
  n.step = e.step;
  std::string status(protocol::step_status_name(e.status));
  // The history keeps each step once, with its outcome (which carries when it started and how
  // long it took); `started` is only news for the watchers. That halves the writes of a deploy.
  if (e.status != protocol::StepStatus::started) {
    journal_.save_step(
        StepRecord{run->d.id, node, e.step, status, e.output, e.started_at, e.duration_ms});
  }
  emit(*run, "node.step", node, e.step, std::move(status), tail_bytes(e.output, 2048),
       e.duration_ms);
}

void Engine::on_result(const std::string& node, const protocol::InstallResult& r) {
  size_t idx = 0;
  Run* run = run_for_action(node, r.action, &idx);
  if (!run) {
    ++ignored_reports_;
    return;
  }
  NodeProgress& n = run->d.nodes[idx];
  if (n.status == NodeStatus::running) run->reported[idx] = true;
  n.version_now = r.version;
  n.downloaded = n.downloaded || r.downloaded;
  if (n.status == NodeStatus::running) n.reverted_to = r.reverted_to;
  bool ok = r.ok;
  std::string reason = r.reason;
  if (ok && n.status == NodeStatus::running && r.version != run->d.version) {
    ok = false;
    reason = fmt::format("the node reported version '{}' instead of {}", r.version, run->d.version);
  }
  // Going back is checked the same way: the node must be on the version it ran before (nothing,
  // after a deactivate), whatever it says about success.
  if (ok && n.status == NodeStatus::reverting && r.version != n.from_version) {
    ok = false;
    reason = n.from_version.empty()
                 ? fmt::format("the node still reports version '{}' after deactivating", r.version)
                 : fmt::format("the node reported version '{}' instead of {} when sent back",
                               r.version, n.from_version);
  }
  if (!ok && reason.empty()) reason = "the agent reported a failure without a reason";
  finish_node(*run, idx, ok, reason);
  advance(*run);
}

void Engine::on_node_lost(const std::string& node) {
  for (auto& [id, run] : runs_) {
    if (is_terminal(run->d.state)) continue;
    for (size_t i = 0; i < run->d.nodes.size(); ++i) {
      auto& n = run->d.nodes[i];
      if (n.node == node &&
          (n.status == NodeStatus::running || n.status == NodeStatus::reverting)) {
        finish_node(*run, i, false, "the node disconnected during the deploy");
        advance(*run);
      }
    }
  }
}

void Engine::tick() {
  const TimeMs now = clock_.now();
  for (auto& [id, run] : runs_) {
    if (is_terminal(run->d.state)) continue;
    for (size_t i = 0; i < run->d.nodes.size(); ++i) {
      auto& n = run->d.nodes[i];
      if ((n.status == NodeStatus::running || n.status == NodeStatus::reverting) &&
          now - n.started_at > opts_.node_timeout.count()) {
        finish_node(
            *run, i, false,
            fmt::format("no result from the node within {}", format_duration(opts_.node_timeout)));
        advance(*run);
      }
    }
  }
  forget_finished();
}

Status Engine::abort(DeployId id, const std::string& actor, bool rollback) {
  auto it = runs_.find(id);
  if (it == runs_.end() || is_terminal(it->second->d.state)) {
    return err(Errc::failed_precondition, fmt::format("deploy #{} is not running", id));
  }
  Run& run = *it->second;
  if (run.stopping || run.d.phase == Phase::revert) {
    return err(Errc::failed_precondition, fmt::format("deploy #{} is already stopping", id));
  }
  run.stopping = true;
  run.rollback_on_stop = rollback;
  run.d.aborted_by = actor;
  emit(run, "deploy.aborting", "", "", "running",
       fmt::format("aborted by {}; {}", actor,
                   rollback ? "waiting for the nodes in flight, then rolling back"
                            : "waiting for the nodes in flight; no rollback"));
  advance(run);
  return {};
}

const Deploy* Engine::find(DeployId id) const {
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : &it->second->d;
}

const Deploy* Engine::running_for(const std::string& app, const std::string& env) const {
  for (const auto& [id, run] : runs_) {
    if (!is_terminal(run->d.state) && run->d.app == app && run->d.env == env) return &run->d;
  }
  return nullptr;
}

std::vector<const Deploy*> Engine::running() const {
  std::vector<const Deploy*> out;
  for (const auto& [id, run] : runs_) {
    if (!is_terminal(run->d.state)) out.push_back(&run->d);
  }
  return out;
}

void Engine::forget_finished() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (is_terminal(it->second->d.state)) {
      it = runs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace slipway::engine
