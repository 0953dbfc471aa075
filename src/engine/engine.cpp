#include "engine/engine.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/strings.h"

namespace slipway::engine {

struct Engine::Run {
  Deploy d;
  DeployRequest req;
  Plan plan;
  size_t wave = 0;
  size_t next = 0;  // the next node of the wave to start
  int inflight = 0;
  bool stopping = false;  // aborted, or failed by a deadline
  bool rollback_on_stop = true;
  std::string stop_reason;
  std::string first_failure;
  std::vector<uint64_t> gen;  // per node: bumped when it finishes, so late hook results are dropped
  std::vector<bool> sent;     // the forward install reached the node's connection
  std::vector<bool> reported;      // the node answered it
  std::vector<bool> in_service;    // the app ran healthy on the node when the deploy began
  int max_unavailable = 0;         // 0 = no limit
  int out_of_service_pending = 0;  // targets out of service before the deploy, not started yet
  Millis healthy_deadline{0};
  bool paused = false;
  std::string paused_by;
  Gate gate = Gate::none;         // the gate holding the deploy now
  std::vector<bool> gate_passed;  // per plan group
  TimeMs progress_since = 0;
  std::vector<size_t> revert_queue;
  size_t revert_pos = 0;
  int64_t seq = 0;
};

Engine::Engine(const Clock& clock, NodeTransport& transport, DeployJournal& journal,
               EventSink& sink, EngineOptions opts, ExecTransport* exec)
    : clock_(clock), transport_(transport), journal_(journal), sink_(sink), opts_(opts) {
  if (exec) exec_.emplace(clock, *exec, kHookPrefix);
}

Engine::~Engine() = default;

namespace {
std::string gate_name(Gate g) {
  return g == Gate::promote ? "promote" : g == Gate::wait ? "wait" : "";
}
}  // namespace

Result<std::unique_ptr<Engine::Run>> Engine::prepare(DeployRequest req,
                                                     std::vector<Target> targets) const {
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
  if ((req.drain || req.undrain) && !exec_)
    return err(Errc::failed_precondition, "drain and undrain commands cannot be sent here");
  if (req.canary_gate == Gate::wait && req.canary_wait.count() <= 0)
    return err(Errc::invalid_argument, "a canary wait must be longer than 0");

  // Stable, so that of duplicate targets the first one given is kept.
  std::stable_sort(targets.begin(), targets.end(),
                   [](const Target& a, const Target& b) { return a.node < b.node; });
  targets.erase(std::unique(targets.begin(), targets.end(),
                            [](const Target& a, const Target& b) { return a.node == b.node; }),
                targets.end());
  PlanOptions po;
  po.strategy = req.strategy;
  po.batch = req.batch;
  po.max_unavailable = req.max_unavailable;
  po.canary_gate = req.canary_gate;
  po.zone_order = req.zone_order;
  std::vector<PlanTarget> pts;
  pts.reserve(targets.size());
  for (const auto& t : targets)
    pts.push_back(PlanTarget{t.zone, t.canary, t.in_service});
  auto plan = make_plan(po, pts);
  if (!plan) return plan.error();

  auto run = std::make_unique<Run>();
  Deploy& d = run->d;
  d.kind = req.kind;
  d.app = req.app;
  d.version = req.artifact.version;
  d.env = req.env;
  d.selector = req.selector;
  d.strategy = std::string(strategy_name(req.strategy));
  d.batch = req.strategy == Strategy::all ? BatchSize{100, true} : req.batch;
  d.max_failures = req.max_failures;
  if (req.strategy == Strategy::canary) {
    d.canary = req.canary;
    d.canary_gate = gate_name(req.canary_gate);
    d.canary_wait_ms = req.canary_gate == Gate::wait ? req.canary_wait.count() : 0;
  }
  if (req.max_unavailable) d.max_unavailable = req.max_unavailable->to_string();
  run->healthy_deadline =
      req.healthy_deadline.count() > 0 ? req.healthy_deadline : opts_.node_timeout;
  d.healthy_deadline_ms = run->healthy_deadline.count();
  d.progress_deadline_ms = req.progress_deadline.count();
  d.actor = req.actor;
  d.claimed_user = req.claimed_user;
  d.forced_freeze = req.forced_freeze;
  d.config_version = req.config_version;
  d.created_at = clock_.now();

  const int total = static_cast<int>(targets.size());
  d.nodes.resize(targets.size());
  for (int i = 0; i < total; ++i) {
    NodeProgress& n = d.nodes[i];
    n.node = targets[i].node;
    n.zone = targets[i].zone;
    n.from_version = targets[i].from_version;
    n.canary = req.strategy == Strategy::canary && targets[i].canary;
  }
  std::vector<std::string> zones;
  for (size_t w = 0; w < plan->waves.size(); ++w) {
    for (size_t idx : plan->waves[w].nodes)
      d.nodes[idx].batch = static_cast<int>(w);
  }
  if (req.strategy == Strategy::zones) {
    for (const auto& g : plan->groups)
      zones.push_back(g.name.substr(5));  // "zone X"
    d.zones = join(zones, ",");
  }
  d.recount();
  d.batches = static_cast<int>(plan->waves.size());
  run->plan = std::move(*plan);
  run->gate_passed.assign(run->plan.groups.size(), false);
  run->sent.assign(d.nodes.size(), false);
  run->gen.assign(d.nodes.size(), 0);
  run->reported.assign(d.nodes.size(), false);
  run->in_service.resize(d.nodes.size());
  for (int i = 0; i < total; ++i) {
    run->in_service[i] = targets[i].in_service;
    if (!targets[i].in_service) ++run->out_of_service_pending;
  }
  if (req.max_unavailable) run->max_unavailable = req.max_unavailable->resolve(total);
  run->progress_since = d.created_at;
  run->req = std::move(req);
  return run;
}

std::string Engine::describe(const Run& r) {
  std::string how;
  switch (r.req.strategy) {
    case Strategy::rolling:
      how = fmt::format("{} at a time ({} batch{})", r.plan.waves.front().max_inflight, r.d.batches,
                        r.d.batches == 1 ? "" : "es");
      break;
    case Strategy::all:
      how = "all at once";
      break;
    case Strategy::canary:
      how = fmt::format("canary first ({} node(s)), then {}", r.plan.waves.front().nodes.size(),
                        r.req.canary_gate == Gate::promote ? "waiting for promote"
                        : r.req.canary_gate == Gate::wait
                            ? "a wait of " + format_duration(r.req.canary_wait)
                            : "the rest");
      break;
    case Strategy::zones:
      how = "zone by zone: " + r.d.zones;
      break;
  }
  if (r.max_unavailable > 0) how += fmt::format(", at most {} unavailable", r.max_unavailable);
  return how;
}

Result<Engine::Preview> Engine::preview(DeployRequest req, std::vector<Target> targets) const {
  auto run = prepare(std::move(req), std::move(targets));
  if (!run) return run.error();
  Preview p;
  p.how = describe(**run);
  p.deploy = std::move((*run)->d);
  return p;
}

Result<DeployId> Engine::start(DeployRequest req, std::vector<Target> targets) {
  forget_finished();
  auto prepared = prepare(std::move(req), std::move(targets));
  if (!prepared) return prepared.error();
  auto run = std::move(*prepared);
  run->d.id = next_id_++;
  Run& r = *run;
  const DeployId id = r.d.id;
  const int total = static_cast<int>(r.d.nodes.size());
  runs_.emplace(id, std::move(run));
  journal_.save_deploy(r.d);
  const std::string how = describe(r);
  record(r, r.d.actor, "started",
         fmt::format("{} {} {} to {} node(s) in {}", strategy_name(r.req.strategy), r.d.app,
                     r.d.version, total, r.d.env));
  emit(r, "deploy.started", "", "", "running",
       fmt::format("{} {} {} to {} node(s) in {}{}, {}",
                   r.d.kind == DeployKind::rollback ? "rolling back" : "deploying", r.d.app,
                   r.d.version, total, r.d.env,
                   r.d.selector.empty() ? "" : " (" + r.d.selector + ")", how));
  start_wave(r);
  advance(r);
  return id;
}

void Engine::record(Run& run, const std::string& actor, std::string action, std::string detail) {
  Transition t{clock_.now(), actor, std::move(action), std::move(detail)};
  journal_.save_transition(run.d.id, t);
  run.d.log.push_back(std::move(t));
}

std::string Engine::new_action(Run& run, size_t idx) {
  std::string action = fmt::format("d{}.a{}", run.d.id, next_action_++);
  actions_[action] = ActionRef{run.d.id, idx};
  run.d.nodes[idx].action = action;
  return action;
}

// Announces the current wave; advance() starts its nodes.
void Engine::start_wave(Run& run) {
  Deploy& d = run.d;
  d.current_batch = static_cast<int>(run.wave);
  run.next = 0;
  const auto& wave = run.plan.waves[run.wave];
  std::vector<std::string> names;
  for (size_t idx : wave.nodes)
    names.push_back(d.nodes[idx].node);
  const auto& group = run.plan.groups[wave.group];
  emit(run, "batch.started", "", "", "running",
       fmt::format("batch {}/{}{}: {}", run.wave + 1, run.plan.waves.size(),
                   group.name.empty() ? "" : " (" + group.name + ")", join(names, ", ")));
}

// Whether taking the node out of service keeps the deploy within max-unavailable. A node already
// out of service changes nothing; otherwise count what is out now: nodes in flight, failed ones,
// and targets that were out before the deploy and have not been started yet.
bool Engine::may_take_out(const Run& run, size_t idx) const {
  if (run.max_unavailable <= 0 || !run.in_service[idx]) return true;
  const int out = run.d.count(NodeStatus::running) + run.d.count(NodeStatus::failed) +
                  run.out_of_service_pending;
  return out + 1 <= run.max_unavailable;
}

void Engine::dispatch_forward(Run& run, size_t idx) {
  NodeProgress& n = run.d.nodes[idx];
  if (!run.in_service[idx]) --run.out_of_service_pending;
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
  send_node(run, idx, [this, node = n.node, cmd] { return transport_.send_install(node, cmd); });
}

// Sends a node its command, after draining it when the deploy has a drain hook.
void Engine::send_node(Run& run, size_t idx, std::function<bool()> send) {
  auto go = [this, send = std::move(send)](Run& r, size_t i, const std::string& failure) {
    if (!failure.empty()) {
      finish_node(r, i, false, "draining it failed: " + failure);
    } else if (!send()) {
      finish_node(r, i, false, "the node is not connected");
    } else if (r.d.nodes[i].status == NodeStatus::running) {
      r.sent[i] = true;
    }
  };
  if (run.req.drain) {
    run_hook(run, idx, *run.req.drain, "drain", std::move(go));
  } else {
    go(run, idx, "");
  }
}

void Engine::run_hook(Run& run, size_t idx, const LbHook& hook, const std::string& step,
                      HookDone done) {
  struct State {
    size_t remaining = 0;
    std::string failure;
    std::string output;
    TimeMs started = 0;
  };
  NodeProgress& n = run.d.nodes[idx];
  auto state = std::make_shared<State>();
  state->started = clock_.now();
  const std::vector<std::string> where =
      hook.on_nodes.empty() ? std::vector<std::string>{n.node} : hook.on_nodes;
  state->remaining = where.size();
  n.step = step;
  emit(run, "node.step", n.node, step, "started",
       hook.on.empty() ? "" : fmt::format("on {}", join(where, ", ")));
  const DeployId id = run.d.id;
  const uint64_t gen = run.gen[idx];
  auto complete = [this, id, idx, gen, state, step, done = std::move(done),
                   node = n.node](bool later) {
    auto it = runs_.find(id);
    if (it == runs_.end()) return;
    Run& r = *it->second;
    if (r.gen[idx] != gen || is_terminal(r.d.state)) return;  // the node finished meanwhile
    const bool ok = state->failure.empty();
    const int64_t took = clock_.now() - state->started;
    const std::string status = ok ? "ok" : "failed";
    journal_.save_step(StepRecord{id, node, step, status, state->output, state->started, took});
    emit(r, "node.step", node, step, status,
         tail_bytes(ok ? state->output : state->failure + "\n" + state->output, 2048), took);
    done(r, idx, state->failure);
    if (later) advance(r);
  };
  auto note = [state](const std::string& on, const std::string& failure) {
    if (failure.empty()) return;
    state->failure += (state->failure.empty() ? "" : "; ") + on + ": " + failure;
  };
  protocol::ExecCommand cmd;
  cmd.argv = {"/bin/sh", "-c", hook.command};
  cmd.env = {{"SLIPWAY_TARGET_NODE", n.node},
             {"SLIPWAY_TARGET_ADDRESS",
              run.req.addresses.count(n.node) ? run.req.addresses.at(n.node) : ""},
             {"SLIPWAY_APP", run.d.app},
             {"SLIPWAY_DEPLOY", std::to_string(id)}};
  cmd.timeout_ms = hook.timeout.count();
  for (const auto& on : where) {
    auto cb = [state, on, note, complete](const ExecCalls::Outcome& o) {
      if (!o.failure.empty()) {
        note(on, o.failure);
      } else {
        const auto& r = o.result;
        if (!r.output.empty()) state->output += "[" + on + "] " + r.output;
        if (r.timed_out) {
          note(on, "timed out");
        } else if (r.exit_code != 0) {
          note(on, r.signal ? fmt::format("killed by signal {}", r.signal)
                            : fmt::format("exit code {}", r.exit_code));
        }
      }
      if (--state->remaining == 0) complete(true);
    };
    if (exec_->call(on, cmd, fmt::format("d{}", id), std::move(cb)).empty()) {
      note(on, "the node is not connected");
      --state->remaining;
    }
  }
  if (state->remaining == 0) complete(false);
}

void Engine::dispatch_revert(Run& run, size_t idx) {
  NodeProgress& n = run.d.nodes[idx];
  run.d.set_status(n, NodeStatus::reverting);
  n.started_at = clock_.now();
  n.step = "";
  ++run.inflight;
  const std::string action = new_action(run, idx);
  journal_.save_node(run.d.id, n);
  if (!n.from_version.empty()) {
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
    send_node(run, idx, [this, node = n.node, cmd] { return transport_.send_install(node, cmd); });
    return;
  }
  send_node(run, idx,
            [this, node = n.node, cmd = protocol::DeactivateCommand{action, run.d.id, run.d.app}] {
              return transport_.send_deactivate(node, cmd);
            });
}

void Engine::finish_node(Run& run, size_t idx, bool ok, const std::string& reason) {
  NodeProgress& n = run.d.nodes[idx];
  ++run.gen[idx];
  retire_action(n);
  n.finished_at = clock_.now();
  --run.inflight;
  if (n.status == NodeStatus::running) {
    run.d.set_status(n, ok ? NodeStatus::healthy : NodeStatus::failed);
    if (ok) run.progress_since = n.finished_at;
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
    if (is_terminal(d.state)) return;
    if (d.phase == Phase::forward) {
      const int failed = d.count(NodeStatus::failed);
      const bool too_many = failed > d.max_failures;
      if (run.stopping || too_many) {
        if (run.inflight > 0) return;  // the nodes in flight answer first
        for (auto& n : d.nodes) {
          if (n.status == NodeStatus::pending) {
            d.set_status(n, NodeStatus::skipped);
            journal_.save_node(d.id, n);
          }
        }
        if (run.stopping) {
          d.reason = run.stop_reason;
        } else {
          d.reason = fmt::format("{} node(s) failed (max failures {}): {}", failed, d.max_failures,
                                 run.first_failure);
          if (run.plan.groups.size() > 1) {
            const auto& group = run.plan.groups[run.plan.waves[run.wave].group];
            if (!group.name.empty()) d.reason += " (in " + group.name + ")";
          }
        }
        run.paused = false;
        run.gate = Gate::none;
        d.waiting.clear();
        d.promote_at = 0;
        if (!run.rollback_on_stop) {
          finish(run, DeployState::failed, d.reason + "; not rolled back");
          return;
        }
        begin_revert(run);  // now in the revert phase
        update_state(run);
        continue;
      }
      if (run.paused || run.gate != Gate::none) return;
      // Start what the wave allows.
      const PlanWave& wave = run.plan.waves[run.wave];
      while (run.next < wave.nodes.size() && run.inflight < wave.max_inflight &&
             may_take_out(run, wave.nodes[run.next])) {
        dispatch_forward(run, wave.nodes[run.next++]);
        // A sliding window stops starting nodes at the first failure too many.
        if (run.max_unavailable > 0 && d.count(NodeStatus::failed) > d.max_failures) break;
      }
      if (d.count(NodeStatus::failed) > d.max_failures) continue;
      if (run.inflight > 0) return;
      if (run.next < wave.nodes.size()) {
        // Nothing in flight and the next node may not go: waiting would never end.
        std::vector<std::string> out;
        for (size_t i = 0; i < d.nodes.size(); ++i) {
          if (d.nodes[i].status == NodeStatus::failed ||
              (d.nodes[i].status == NodeStatus::pending && !run.in_service[i]))
            out.push_back(d.nodes[i].node);
        }
        stop(run, "slipway",
             fmt::format("no node can be updated without exceeding max unavailable {}: {} "
                         "targeted node(s) are out of service ({})",
                         run.max_unavailable, out.size(), join(out, ", ")),
             true);
        continue;
      }
      // The wave is done. At the end of a group, its gate.
      const bool last_of_group =
          run.wave + 1 == run.plan.waves.size() || run.plan.waves[run.wave + 1].group != wave.group;
      if (last_of_group && run.wave + 1 < run.plan.waves.size() &&
          run.plan.groups[wave.group].gate != Gate::none && !run.gate_passed[wave.group]) {
        enter_gate(run, wave.group);
        return;
      }
      if (run.wave + 1 < run.plan.waves.size()) {
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
    if (run.inflight > 0) return;
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
  d.waiting.clear();
  d.promote_at = 0;
  record(run, "slipway", std::string(deploy_state_name(state)), reason);
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

void Engine::retire_action(NodeProgress& n) {
  if (n.action.empty()) return;
  actions_.erase(n.action);
  // Remembered (a bounded number of them) so that a report replayed later is named as such.
  if (retired_.emplace(n.action, n.node).second) retired_order_.push_back(n.action);
  while (retired_order_.size() > kRetiredActionsKept) {
    retired_.erase(retired_order_.front());
    retired_order_.pop_front();
  }
  n.action.clear();
}

std::optional<std::string> Engine::report_refusal(const std::string& node,
                                                  const std::string& action,
                                                  const std::string* app) const {
  auto it = actions_.find(action);
  if (it == actions_.end()) {
    auto old = retired_.find(action);
    if (old == retired_.end()) return std::string("no command with this action was sent");
    if (old->second != node) return fmt::format("the action was sent to node {}", old->second);
    return std::string("the action has already finished (a replayed report)");
  }
  auto rit = runs_.find(it->second.deploy);
  if (rit == runs_.end() || it->second.node_index >= rit->second->d.nodes.size()) {
    return std::string("the deploy of this action is over");
  }
  const Run& run = *rit->second;
  const NodeProgress& n = run.d.nodes[it->second.node_index];
  // Only the node the command was sent to may report on it.
  if (n.node != node) return fmt::format("the action was sent to node {}", n.node);
  if (app && *app != run.d.app) {
    return fmt::format("the result names app '{}' but the action is for {} (deploy {})",
                       app->substr(0, 64), run.d.app, run.d.id);
  }
  return std::nullopt;
}

Engine::Run* Engine::accept_report(const std::string& node, std::string_view kind,
                                   const std::string& action, const std::string* app, size_t* idx) {
  if (auto why = report_refusal(node, action, app)) {
    ++ignored_reports_;
    spdlog::warn("node {}: {} for action {:?} refused: {}", node, kind, action.substr(0, 64), *why);
    return nullptr;
  }
  const ActionRef& ref = actions_.at(action);
  *idx = ref.node_index;
  return runs_.at(ref.deploy).get();
}

void Engine::on_step(const std::string& node, const protocol::StepEvent& e) {
  size_t idx = 0;
  Run* run = accept_report(node, "step", e.action, nullptr, &idx);
  if (!run) return;
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
  Run* run = accept_report(node, "result", r.action, &r.app, &idx);
  if (!run) return;
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
  // Serving again (the new version, or the old one the agent went back to): back into the load
  // balancer before the node counts as done. A node left broken stays drained.
  if (run->req.undrain && r.healthy) {
    retire_action(n);  // a second result for this action is not news
    run_hook(*run, idx, *run->req.undrain, "undrain",
             [this, ok, reason](Run& rr, size_t i, const std::string& failure) {
               if (failure.empty()) {
                 finish_node(rr, i, ok, reason);
               } else {
                 finish_node(rr, i, false,
                             (ok ? "" : reason + "; ") + "undraining it failed: " + failure);
               }
             });
    advance(*run);
    return;
  }
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

void Engine::on_app_unhealthy(const std::string& node, const std::string& app,
                              const std::string& version, const std::string& detail) {
  for (auto& [id, run] : runs_) {
    Deploy& d = run->d;
    if (is_terminal(d.state) || d.phase != Phase::forward || d.app != app || d.version != version)
      continue;
    for (auto& n : d.nodes) {
      if (n.node != node || n.status != NodeStatus::healthy) continue;
      d.set_status(n, NodeStatus::failed);
      n.reason = "failed its health check after it was healthy" +
                 (detail.empty() ? std::string() : ": " + detail);
      n.version_now = version;
      if (run->first_failure.empty()) run->first_failure = n.node + ": " + n.reason;
      journal_.save_node(d.id, n);
      emit(*run, "node.finished", n.node, "", "failed", n.reason);
      advance(*run);
      break;
    }
  }
}

void Engine::tick() {
  if (exec_) exec_->tick();
  const TimeMs now = clock_.now();
  for (auto& [id, run] : runs_) {
    if (is_terminal(run->d.state)) continue;
    for (size_t i = 0; i < run->d.nodes.size(); ++i) {
      auto& n = run->d.nodes[i];
      if ((n.status == NodeStatus::running || n.status == NodeStatus::reverting) &&
          now - n.started_at > run->healthy_deadline.count()) {
        finish_node(*run, i, false,
                    fmt::format("no result from the node within its healthy deadline of {}",
                                format_duration(run->healthy_deadline)));
        advance(*run);
      }
    }
    if (is_terminal(run->d.state) || run->d.phase != Phase::forward || run->stopping) continue;
    if (run->gate == Gate::wait && !run->paused && now >= run->d.promote_at) {
      pass_gate(*run, "slipway",
                fmt::format("the canaries stayed healthy for {}; promoted by itself",
                            format_duration(run->req.canary_wait)));
      advance(*run);
      continue;
    }
    const Millis pd = run->req.progress_deadline;
    if (pd.count() > 0 && !run->paused && run->gate == Gate::none &&
        now - run->progress_since > pd.count()) {
      stop(*run, "slipway",
           fmt::format("no node became healthy within the progress deadline of {}",
                       format_duration(pd)),
           true);
      advance(*run);
    }
  }
  forget_finished();
}

Result<Engine::Run*> Engine::find_run(DeployId id) {
  auto it = runs_.find(id);
  if (it == runs_.end() || is_terminal(it->second->d.state)) {
    return err(Errc::failed_precondition, fmt::format("deploy #{} is not running", id));
  }
  Run& run = *it->second;
  if (run.stopping || run.d.phase == Phase::revert) {
    return err(Errc::failed_precondition, fmt::format("deploy #{} is already stopping", id));
  }
  return &run;
}

// Ends the forward phase: once the nodes in flight have answered, what changed goes back (unless
// rollback is false). The caller then calls advance().
void Engine::stop(Run& run, const std::string& actor, const std::string& reason, bool rollback) {
  run.stopping = true;
  run.rollback_on_stop = rollback;
  run.stop_reason = reason;
  run.paused = false;
  run.gate = Gate::none;
  run.d.promote_at = 0;
  update_state(run);
  record(run, actor, actor == "slipway" ? "failed" : "aborted", reason);
  emit(run, "deploy.aborting", "", "", "running",
       fmt::format("{}; {}", reason,
                   rollback ? "waiting for the nodes in flight, then rolling back"
                            : "waiting for the nodes in flight; no rollback"));
}

Status Engine::abort(DeployId id, const std::string& actor, bool rollback) {
  auto run = find_run(id);
  if (!run) return run.error();
  (*run)->d.aborted_by = actor;
  stop(**run, actor, "aborted by " + actor, rollback);
  advance(**run);
  return {};
}

void Engine::update_state(Run& run) {
  Deploy& d = run.d;
  if (is_terminal(d.state)) return;
  const bool held = d.phase == Phase::forward && (run.paused || run.gate == Gate::promote);
  d.state = held ? DeployState::paused : DeployState::running;
  d.waiting.clear();
  if (d.phase == Phase::revert) {
    // Rolling back: nothing to wait for.
  } else if (run.paused) {
    d.waiting = fmt::format("paused by {}; go on with: slipway resume {}", run.paused_by, d.id);
  } else if (run.gate == Gate::promote) {
    d.waiting = fmt::format("the canaries are healthy; go on with: slipway promote {}", d.id);
  } else if (run.gate == Gate::wait) {
    d.waiting = fmt::format("the canaries must stay healthy until {}; promoting by itself then",
                            format_time_short(d.promote_at));
  }
  journal_.save_deploy(d);
}

void Engine::enter_gate(Run& run, size_t group) {
  Deploy& d = run.d;
  run.gate = run.plan.groups[group].gate;
  if (run.gate == Gate::wait) d.promote_at = clock_.now() + run.req.canary_wait.count();
  update_state(run);
  emit(run, run.gate == Gate::promote ? "deploy.paused" : "deploy.waiting", "", "",
       std::string(deploy_state_name(d.state)), d.waiting);
}

void Engine::pass_gate(Run& run, const std::string& actor, const std::string& detail) {
  const size_t group = run.plan.waves[run.wave].group;
  run.gate_passed[group] = true;
  run.gate = Gate::none;
  run.d.promote_at = 0;
  run.progress_since = clock_.now();
  record(run, actor, "promoted", detail);
  update_state(run);
  emit(run, "deploy.promoted", "", "", std::string(deploy_state_name(run.d.state)),
       fmt::format("promoted by {}: {}", actor, detail));
}

Status Engine::pause(DeployId id, const std::string& actor) {
  auto r = find_run(id);
  if (!r) return r.error();
  Run& run = **r;
  if (run.paused) {
    return err(Errc::failed_precondition,
               fmt::format("deploy #{} is already paused (by {})", id, run.paused_by));
  }
  run.paused = true;
  run.paused_by = actor;
  record(run, actor, "paused", "");
  update_state(run);
  emit(run, "deploy.paused", "", "", "paused",
       fmt::format("paused by {}; the nodes in flight finish, no new node starts", actor));
  return {};
}

Status Engine::resume(DeployId id, const std::string& actor) {
  auto r = find_run(id);
  if (!r) return r.error();
  Run& run = **r;
  if (!run.paused) {
    if (run.gate != Gate::none) {
      return err(Errc::failed_precondition,
                 fmt::format("deploy #{} is not paused: it waits for its canaries to be "
                             "promoted; go on with: slipway promote {}",
                             id, id));
    }
    return err(Errc::failed_precondition, fmt::format("deploy #{} is not paused", id));
  }
  run.paused = false;
  run.progress_since = clock_.now();
  record(run, actor, "resumed", "");
  update_state(run);
  emit(run, "deploy.resumed", "", "", std::string(deploy_state_name(run.d.state)),
       "resumed by " + actor);
  advance(run);
  return {};
}

Status Engine::promote(DeployId id, const std::string& actor) {
  auto r = find_run(id);
  if (!r) return r.error();
  Run& run = **r;
  if (run.gate == Gate::none) {
    if (run.paused) {
      return err(Errc::failed_precondition,
                 fmt::format("deploy #{} is not waiting for promotion: it was paused by {}; go "
                             "on with: slipway resume {}",
                             id, run.paused_by, id));
    }
    return err(Errc::failed_precondition,
               fmt::format("deploy #{} is not waiting for promotion{}", id,
                           run.d.strategy == "canary" ? " (its canaries are not done yet)" : ""));
  }
  pass_gate(run, actor, "promoted by hand");
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
