// Test doubles for the deploy engine: a fake fleet (NodeTransport) whose nodes answer only when a
// test tells them to, a recording journal, a recording event sink, and a fixture that ties them to
// an Engine driven by a ManualClock.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/interfaces.h"
#include "protocol/agent_protocol.h"

namespace slipway::engine::testing {

// One command the engine sent (or tried to send) to a node.
struct SentCommand {
  std::string node;
  bool deactivate = false;
  bool delivered = false;            // false: the fleet said "not connected"
  protocol::InstallCommand install;  // when !deactivate
  protocol::DeactivateCommand off;   // when deactivate
  const std::string& action() const { return deactivate ? off.action : install.action; }
  std::string version() const { return deactivate ? "" : install.version; }
};

// The fleet: records every command, refuses nodes marked disconnected, and keeps, per node, the
// version its app runs (as a real agent would after answering).
class FakeFleet final : public NodeTransport {
 public:
  bool send_install(const std::string& node, const protocol::InstallCommand& cmd) override {
    SentCommand s;
    s.node = node;
    s.install = cmd;
    return record(std::move(s));
  }
  bool send_deactivate(const std::string& node, const protocol::DeactivateCommand& cmd) override {
    SentCommand s;
    s.node = node;
    s.deactivate = true;
    s.off = cmd;
    return record(std::move(s));
  }

  void disconnect(const std::string& node) { down_.insert(node); }
  void reconnect(const std::string& node) { down_.erase(node); }

  // Every command, in the order sent (refused ones too).
  const std::vector<SentCommand>& sent() const { return sent_; }
  std::vector<SentCommand> delivered() const {
    std::vector<SentCommand> out;
    for (const auto& s : sent_)
      if (s.delivered) out.push_back(s);
    return out;
  }
  // Commands delivered and not answered yet (in the order sent).
  std::vector<SentCommand> pending() const {
    std::vector<SentCommand> out;
    for (size_t i : unanswered_)
      out.push_back(sent_[i]);
    return out;
  }
  std::vector<std::string> pending_nodes() const {
    std::vector<std::string> out;
    for (size_t i : unanswered_)
      out.push_back(sent_[i].node);
    std::sort(out.begin(), out.end());
    return out;
  }
  // The oldest unanswered command to `node`, if any.
  std::optional<SentCommand> pending_for(const std::string& node) const {
    for (size_t i : unanswered_)
      if (sent_[i].node == node) return sent_[i];
    return std::nullopt;
  }
  void mark_answered(const std::string& action) {
    if (auto it = index_.find(action); it != index_.end()) unanswered_.erase(it->second);
  }
  void clear_log() {
    sent_.clear();
    unanswered_.clear();
    index_.clear();
  }

  // What each node runs now, as far as the fake agents are concerned.
  std::map<std::string, std::string> current;

 private:
  bool record(SentCommand s) {
    s.delivered = !down_.count(s.node);
    const size_t i = sent_.size();
    if (s.delivered) {
      EXPECT_TRUE(index_.emplace(s.action(), i).second) << "action id sent twice: " << s.action();
      unanswered_.insert(i);
    }
    sent_.push_back(std::move(s));
    return sent_.back().delivered;
  }
  std::vector<SentCommand> sent_;
  std::set<std::string> down_;
  std::set<size_t> unanswered_;                    // indices into sent_
  std::unordered_map<std::string, size_t> index_;  // action -> index into sent_
};

// Everything the engine asked to persist, in order.
class RecordingJournal final : public DeployJournal {
 public:
  struct Entry {
    enum Kind { deploy, node, step } kind = deploy;
    DeployState state = DeployState::running;  // kind == deploy
    Phase phase = Phase::forward;              // kind == deploy
    size_t node_count = 0;                     // kind == deploy
    DeployId id = 0;
    NodeProgress node_progress;  // kind == node
    StepRecord step_record;      // kind == step
  };
  void save_deploy(const Deploy& d) override {
    Entry e;
    e.kind = Entry::deploy;
    e.state = d.state;
    e.phase = d.phase;
    e.node_count = d.nodes.size();
    e.id = d.id;
    entries.push_back(std::move(e));
    last_deploy[d.id] = d;
  }
  void save_node(DeployId id, const NodeProgress& n) override {
    Entry e;
    e.kind = Entry::node;
    e.id = id;
    e.node_progress = n;
    entries.push_back(std::move(e));
  }
  void save_transition(DeployId id, const Transition& t) override { transitions[id].push_back(t); }
  void save_step(const StepRecord& s) override {
    Entry e;
    e.kind = Entry::step;
    e.id = s.deploy;
    e.step_record = s;
    entries.push_back(std::move(e));
  }
  // The last saved state of a node of a deploy.
  std::optional<NodeProgress> last_node(DeployId id, const std::string& node) const {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (it->kind == Entry::node && it->id == id && it->node_progress.node == node)
        return it->node_progress;
    }
    return std::nullopt;
  }
  std::vector<Entry> entries;
  std::map<DeployId, Deploy> last_deploy;  // as of its last save_deploy
  std::map<DeployId, std::vector<Transition>> transitions;
};

// Every event, with the deploy's state when it was emitted.
class RecordingSink final : public EventSink {
 public:
  struct Seen {
    DeployEvent event;
    DeployState state;
    Phase phase;
  };
  void on_event(const DeployEvent& e, const Deploy& d) override {
    EXPECT_EQ(e.deploy, d.id);
    seen.push_back(Seen{e, d.state, d.phase});
  }
  std::vector<DeployEvent> events(DeployId id) const {
    std::vector<DeployEvent> out;
    for (const auto& s : seen)
      if (s.event.deploy == id) out.push_back(s.event);
    return out;
  }
  std::vector<DeployEvent> of_kind(DeployId id, const std::string& kind) const {
    std::vector<DeployEvent> out;
    for (const auto& s : seen)
      if (s.event.deploy == id && s.event.kind == kind) out.push_back(s.event);
    return out;
  }
  std::vector<std::string> kinds(DeployId id) const {
    std::vector<std::string> out;
    for (const auto& s : seen)
      if (s.event.deploy == id) out.push_back(s.event.kind);
    return out;
  }
  std::vector<Seen> seen;
};

inline ArtifactRef Art(const std::string& version) {
  return ArtifactRef{version, "sha-" + version, 1000 + version.size()};
}

inline std::string NodeName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "n%03d", i);
  return buf;
}

// n = 3 -> targets n000, n001, n002, each on `from`.
inline std::vector<Target> Targets(int n, const std::string& from = "1.0.0",
                                   const std::string& zone = "a") {
  std::vector<Target> t;
  for (int i = 0; i < n; ++i)
    t.push_back(Target{NodeName(i), zone, from});
  return t;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() { Rebuild({}); }

  void Rebuild(EngineOptions opts) {
    engine_.reset();
    engine_ = std::make_unique<Engine>(clock_, fleet_, journal_, sink_, opts);
  }

  Engine& engine() { return *engine_; }

  // A request for app "web" in env "prod": version `to`, previous versions "1.0.0" and "0.9.0".
  DeployRequest Request(const std::string& to = "2.0.0", const std::string& batch = "1",
                        int max_failures = 0) {
    DeployRequest r;
    r.app = "web";
    r.env = "prod";
    r.artifact = Art(to);
    r.previous["1.0.0"] = Art("1.0.0");
    r.previous["0.9.0"] = Art("0.9.0");
    r.batch = BatchSize::parse(batch).value();
    r.max_failures = max_failures;
    r.actor = "alice";
    return r;
  }

  DeployId Start(DeployRequest r, std::vector<Target> targets) {
    for (const auto& t : targets)
      if (!fleet_.current.count(t.node)) fleet_.current[t.node] = t.from_version;
    auto id = engine().start(std::move(r), std::move(targets));
    EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
    return id ? *id : 0;
  }

  const Deploy& D(DeployId id) {
    const Deploy* d = engine().find(id);
    if (!d) {
      ADD_FAILURE() << "deploy #" << id << " is not in the engine";
      static Deploy none;
      return none;
    }
    return *d;
  }

  const NodeProgress& N(DeployId id, const std::string& node) {
    for (const auto& n : D(id).nodes)
      if (n.node == node) return n;
    ADD_FAILURE() << "no node " << node << " in deploy #" << id;
    static NodeProgress none;
    return none;
  }

  // --- fake agents ---------------------------------------------------------------------------

  // The result an agent would send for `cmd`: the new version, healthy.
  static protocol::InstallResult Ok(const SentCommand& cmd) {
    protocol::InstallResult r;
    r.action = cmd.action();
    r.ok = true;
    r.app = cmd.deactivate ? cmd.off.app : cmd.install.app;
    r.version = cmd.version();
    r.healthy = !cmd.deactivate;
    return r;
  }

  SentCommand PendingFor(const std::string& node) {
    auto cmd = fleet_.pending_for(node);
    if (!cmd) {
      ADD_FAILURE() << "no command in flight to " << node;
      SentCommand none;
      none.node = node;
      return none;
    }
    return *cmd;
  }

  // Delivers `r` as node's answer to its command in flight and updates the fake node.
  void Answer(const std::string& node, const protocol::InstallResult& r) {
    fleet_.mark_answered(r.action);
    fleet_.current[node] = r.version;
    engine().on_result(node, r);
  }

  // The node's command in flight succeeds.
  void Succeed(const std::string& node) {
    auto cmd = PendingFor(node);
    Answer(node, Ok(cmd));
  }

  // The node's install fails its health check and the agent goes back to what it ran before.
  void FailAndSelfRevert(const std::string& node,
                         const std::string& reason = "health check failed") {
    auto cmd = PendingFor(node);
    protocol::InstallResult r = Ok(cmd);
    r.ok = false;
    r.healthy = false;
    r.reason = reason;
    r.version = fleet_.current[node];
    r.reverted_to = r.version;
    Answer(node, r);
  }

  // The node's install fails and the node is left on the new version (the agent could not go back).
  void FailStuck(const std::string& node, const std::string& reason = "hook failed") {
    auto cmd = PendingFor(node);
    protocol::InstallResult r = Ok(cmd);
    r.ok = false;
    r.healthy = false;
    r.reason = reason;
    Answer(node, r);
  }

  void Step(const std::string& node, const std::string& step,
            protocol::StepStatus status = protocol::StepStatus::ok,
            const std::string& output = "") {
    auto cmd = PendingFor(node);
    protocol::StepEvent e;
    e.action = cmd.action();
    e.step = step;
    e.status = status;
    e.output = output;
    e.started_at = clock_.now();
    e.duration_ms = 5;
    engine().on_step(node, e);
  }

  // Instant agents: answers every command in flight, and the ones those answers cause, with
  // `policy` (default: success) until nothing is in flight. Returns the number of answers.
  int AnswerAll(std::function<protocol::InstallResult(const SentCommand&)> policy = {}) {
    int n = 0;
    for (;;) {
      auto pending = fleet_.pending();
      if (pending.empty()) return n;
      for (const auto& cmd : pending) {
        Answer(cmd.node, policy ? policy(cmd) : Ok(cmd));
        ++n;
      }
    }
  }

  ManualClock clock_;
  FakeFleet fleet_;
  RecordingJournal journal_;
  RecordingSink sink_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace slipway::engine::testing
