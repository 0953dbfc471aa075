// The RunManager (ad-hoc runs) and ExecCalls with a fake transport and a hand-driven clock:
// batching, results from the wrong node or for unknown actions, lost nodes, overdue answers.
#include "engine/runs.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"

namespace slipway::engine {
namespace {

struct Sent {
  std::string node;
  protocol::ExecCommand cmd;
};

class FakeExec final : public ExecTransport {
 public:
  bool send_exec(const std::string& node, const protocol::ExecCommand& cmd) override {
    if (down.contains(node)) return false;
    sent.push_back(Sent{node, cmd});
    return true;
  }
  // The action last sent to `node`.
  std::string action_of(const std::string& node) const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      if (it->node == node) return it->cmd.action;
    }
    return "";
  }
  std::set<std::string> down;
  std::vector<Sent> sent;
};

class RecordingJournal final : public RunJournal {
 public:
  void save_run(const engine::Run& r, bool with_nodes) override {
    runs[r.id] = with_nodes ? r : r.header();
  }
  void save_run_node(RunId id, const RunNode& n) override { nodes[id][n.node] = n; }
  std::map<RunId, engine::Run> runs;
  std::map<RunId, std::map<std::string, RunNode>> nodes;
};

class RunManagerTest : public ::testing::Test {
 protected:
  RunId start(std::vector<std::string> nodes, BatchSize batch = {100, true},
              Millis timeout = Millis(5'000)) {
    RunRequest req;
    req.env = "staging";
    req.argv = {"echo", "hello world"};
    req.batch = batch;
    req.timeout = timeout;
    req.actor = "ann@host";
    std::vector<RunTarget> targets;
    for (auto& n : nodes)
      targets.push_back(RunTarget{n, "a"});
    auto id = runs.start(req, targets);
    EXPECT_TRUE(id) << (id ? "" : id.error().message);
    return id ? *id : 0;
  }

  bool answer(const std::string& node, int exit_code, const std::string& output = "",
              std::string action = "") {
    protocol::ExecResult r;
    r.action = action.empty() ? fleet.action_of(node) : action;
    r.exit_code = exit_code;
    r.output = output;
    r.started_at = clock.now();
    r.duration_ms = 7;
    return runs.exec_handler().on_exec_result(node, r);
  }

  // The final record of a finished run, as the journal has it.
  engine::Run recorded(RunId id) {
    engine::Run r = journal.runs.at(id);
    for (const auto& [name, n] : journal.nodes[id])
      r.nodes.push_back(n);
    return r;
  }

  ManualClock clock;
  FakeExec fleet;
  RecordingJournal journal;
  RunManager runs{clock, fleet, journal, Millis(10'000)};
};

TEST_F(RunManagerTest, AllAtOnceByDefaultAndSucceedsWhenEveryNodeExitsZero) {
  const RunId id = start({"n3", "n1", "n2"});
  ASSERT_EQ(fleet.sent.size(), 3u);
  for (const auto& s : fleet.sent) {
    EXPECT_EQ(s.cmd.argv, (std::vector<std::string>{"echo", "hello world"}));
    EXPECT_EQ(s.cmd.timeout_ms, 5'000);
    EXPECT_EQ(s.cmd.env.at("SLIPWAY_RUN"), std::to_string(id));
    EXPECT_EQ(s.cmd.action.rfind(RunManager::kActionPrefix + std::to_string(id) + ".", 0), 0u)
        << s.cmd.action;
  }
  const engine::Run* live = runs.find(id);
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(live->batches, 1);
  EXPECT_EQ(live->nodes.front().node, "n1");  // sorted by name
  EXPECT_EQ(live->nodes.front().status, RunNodeStatus::running);

  EXPECT_TRUE(answer("n2", 0, "hi from n2\n"));
  EXPECT_TRUE(answer("n1", 0));
  ASSERT_NE(runs.find(id), nullptr);
  EXPECT_EQ(runs.find(id)->nodes[1].seq, 1);  // n2 finished first
  EXPECT_TRUE(answer("n3", 0));
  EXPECT_EQ(runs.find(id), nullptr);  // finished: dropped from memory
  const engine::Run r = recorded(id);
  EXPECT_EQ(r.state, RunState::succeeded);
  EXPECT_GT(r.finished_at, 0);
  ASSERT_EQ(r.nodes.size(), 3u);
  EXPECT_EQ(journal.nodes[id]["n2"].output, "hi from n2\n");
  EXPECT_EQ(journal.nodes[id]["n2"].status, RunNodeStatus::ok);
  EXPECT_EQ(journal.nodes[id]["n2"].duration_ms, 7);
  // A second answer to the same action is not accepted.
  EXPECT_FALSE(answer("n3", 0, "", fleet.action_of("n3")));
}

TEST_F(RunManagerTest, BatchesStartWhenThePreviousOneHasAllAnswered) {
  const RunId id = start({"n1", "n2", "n3", "n4", "n5"}, BatchSize{2, false});
  EXPECT_EQ(runs.find(id)->batches, 3);
  ASSERT_EQ(fleet.sent.size(), 2u);
  EXPECT_TRUE(answer("n1", 1, "boom"));  // a failure does not stop the run
  EXPECT_EQ(fleet.sent.size(), 2u);
  EXPECT_TRUE(answer("n2", 0));
  ASSERT_EQ(fleet.sent.size(), 4u);
  EXPECT_EQ(fleet.sent[2].node, "n3");
  EXPECT_EQ(fleet.sent[3].node, "n4");
  EXPECT_EQ(runs.find(id)->current_batch, 1);
  EXPECT_TRUE(answer("n3", 0));
  EXPECT_TRUE(answer("n4", 0));
  ASSERT_EQ(fleet.sent.size(), 5u);
  EXPECT_TRUE(answer("n5", 0));
  const engine::Run r = recorded(id);
  EXPECT_EQ(r.state, RunState::failed);
  EXPECT_EQ(journal.nodes[id]["n1"].status, RunNodeStatus::failed);
  EXPECT_EQ(journal.nodes[id]["n1"].exit_code, 1);
  EXPECT_EQ(journal.nodes[id]["n1"].reason, "exit code 1");
  EXPECT_EQ(r.count(RunNodeStatus::ok), 4);
}

TEST_F(RunManagerTest, PercentBatches) {
  const RunId id = start({"n1", "n2", "n3", "n4"}, BatchSize{50, true});
  EXPECT_EQ(runs.find(id)->batches, 2);
  EXPECT_EQ(fleet.sent.size(), 2u);
}

TEST_F(RunManagerTest, ForeignAndUnknownReportsAreRefused) {
  const RunId id = start({"n1", "n2"});
  const std::string a1 = fleet.action_of("n1");
  // n2 answering n1's action; an action nobody sent; a result after the run is gone.
  EXPECT_FALSE(answer("n2", 0, "", a1));
  EXPECT_FALSE(answer("n1", 0, "", "x999.1"));
  EXPECT_FALSE(answer("n1", 0, "", "nonsense"));
  EXPECT_EQ(runs.find(id)->nodes[0].status, RunNodeStatus::running);
  EXPECT_TRUE(answer("n1", 0, "", a1));
  EXPECT_TRUE(answer("n2", 0));
  EXPECT_EQ(recorded(id).state, RunState::succeeded);
}

TEST_F(RunManagerTest, NodesNotConnectedFailAtOnce) {
  fleet.down = {"n2"};
  const RunId id = start({"n1", "n2"});
  ASSERT_EQ(fleet.sent.size(), 1u);
  EXPECT_EQ(journal.nodes[id]["n2"].status, RunNodeStatus::failed);
  EXPECT_NE(journal.nodes[id]["n2"].reason.find("not connected"), std::string::npos);
  EXPECT_TRUE(answer("n1", 0));
  EXPECT_EQ(recorded(id).state, RunState::failed);

  // A run none of whose nodes is connected ends at once, waves and all.
  fleet.down = {"a", "b", "c"};
  const RunId id2 = start({"a", "b", "c"}, BatchSize{1, false});
  EXPECT_EQ(runs.find(id2), nullptr);
  EXPECT_EQ(recorded(id2).state, RunState::failed);
  EXPECT_EQ(journal.nodes[id2].size(), 3u);
}

TEST_F(RunManagerTest, LostNodeFailsAndTheNextBatchStarts) {
  const RunId id = start({"n1", "n2"}, BatchSize{1, false});
  ASSERT_EQ(fleet.sent.size(), 1u);
  runs.exec_handler().on_node_lost("n2");  // not asked yet: nothing happens
  EXPECT_EQ(runs.find(id)->nodes[0].status, RunNodeStatus::running);
  runs.exec_handler().on_node_lost("n1");
  EXPECT_EQ(journal.nodes[id]["n1"].status, RunNodeStatus::failed);
  EXPECT_NE(journal.nodes[id]["n1"].reason.find("lost"), std::string::npos);
  ASSERT_EQ(fleet.sent.size(), 2u);
  EXPECT_EQ(fleet.sent[1].node, "n2");
  // The lost node's late answer is not accepted.
  EXPECT_FALSE(answer("n1", 0, "", fleet.sent[0].cmd.action));
  EXPECT_TRUE(answer("n2", 0));
  EXPECT_EQ(recorded(id).state, RunState::failed);
}

TEST_F(RunManagerTest, NoAnswerWithinTimeoutPlusGraceFails) {
  const RunId id = start({"n1", "n2"}, BatchSize{100, true}, Millis(5'000));
  EXPECT_TRUE(answer("n1", 0));
  clock.advance(14'999);  // timeout 5 s + grace 10 s
  runs.tick();
  ASSERT_NE(runs.find(id), nullptr);
  clock.advance(1);
  runs.tick();
  EXPECT_EQ(runs.find(id), nullptr);
  EXPECT_EQ(journal.nodes[id]["n2"].status, RunNodeStatus::failed);
  EXPECT_NE(journal.nodes[id]["n2"].reason.find("no answer"), std::string::npos);
  EXPECT_EQ(journal.nodes[id]["n2"].duration_ms, 15'000);
  EXPECT_FALSE(answer("n2", 0, "", fleet.action_of("n2")));
}

TEST_F(RunManagerTest, TimedOutAndSignalledCommandsFail) {
  const RunId id = start({"n1", "n2"});
  protocol::ExecResult r;
  r.action = fleet.action_of("n1");
  r.timed_out = true;
  r.output = "partial";
  EXPECT_TRUE(runs.exec_handler().on_exec_result("n1", r));
  r = protocol::ExecResult{};
  r.action = fleet.action_of("n2");
  r.signal = 9;
  EXPECT_TRUE(runs.exec_handler().on_exec_result("n2", r));
  EXPECT_EQ(recorded(id).state, RunState::failed);
  EXPECT_EQ(journal.nodes[id]["n1"].status, RunNodeStatus::failed);
  EXPECT_EQ(journal.nodes[id]["n1"].reason, "timed out after 5.0s");
  EXPECT_EQ(journal.nodes[id]["n1"].output, "partial");
  EXPECT_EQ(journal.nodes[id]["n2"].reason, "killed by signal 9");
  EXPECT_EQ(run_node_outcome(journal.nodes[id]["n2"]), "killed by signal 9");
}

TEST(RunRecords, CommandLineQuotesForDisplay) {
  EXPECT_EQ(command_line({"echo", "hello"}), "echo hello");
  EXPECT_EQ(command_line({"sh", "-c", "echo $HOME", "", "it's"}),
            "sh -c 'echo $HOME' '' 'it'\\''s'");
}

TEST(RunRecords, JsonRoundTripAndIncrementalNodes) {
  engine::Run r;
  r.id = 4;
  r.env = "staging";
  r.selector = "role=api";
  r.argv = {"uptime"};
  r.batch = BatchSize{2, false};
  r.timeout = Millis(3'000);
  r.actor = "ann";
  r.created_at = 1'700'000'000'000;
  r.batches = 2;
  r.finished_nodes = 1;
  RunNode a;
  a.node = "n1";
  a.status = RunNodeStatus::ok;
  a.exit_code = 0;
  a.output = "up\n";
  a.seq = 1;
  RunNode b;
  b.node = "n2";
  b.status = RunNodeStatus::running;
  r.nodes = {a, b};
  auto back = run_from_json(to_json(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->argv, r.argv);
  EXPECT_EQ(back->selector, "role=api");
  EXPECT_EQ(back->batch.to_string(), "2");
  EXPECT_EQ(back->timeout, Millis(3'000));
  EXPECT_EQ(back->created_at, r.created_at);
  ASSERT_EQ(back->nodes.size(), 2u);
  EXPECT_EQ(back->nodes[0].output, "up\n");
  EXPECT_EQ(back->nodes[0].exit_code, 0);
  EXPECT_EQ(back->nodes[1].exit_code, -1);  // null: none yet
  EXPECT_TRUE(
      to_json(r).as_object().at("nodes").as_array()[1].as_object().at("exit_code").is_null());
  // Only what finished after seq 1: nothing; after 0: everything.
  EXPECT_TRUE(to_json(r, true, 1).as_object().at("nodes").as_array().empty());
  EXPECT_EQ(to_json(r, true, 0).as_object().at("nodes").as_array().size(), 2u);
}

TEST_F(RunManagerTest, BadRequestsAreRefused) {
  RunRequest req;
  req.env = "staging";
  EXPECT_EQ(runs.start(req, {RunTarget{"n1", ""}}).error().code, Errc::invalid_argument);
  req.argv = {"true"};
  EXPECT_EQ(runs.start(req, {}).error().code, Errc::failed_precondition);
  req.timeout = Millis(0);
  EXPECT_EQ(runs.start(req, {RunTarget{"n1", ""}}).error().code, Errc::invalid_argument);
  EXPECT_TRUE(fleet.sent.empty());
}

TEST(ExecCalls, RoutesByActionAndNodeAndEndsEveryCallOnce) {
  ManualClock clock;
  FakeExec fleet;
  ExecCalls calls(clock, fleet, "lb", Millis(1'000));
  std::vector<std::string> outcomes;
  auto cb = [&](const ExecCalls::Outcome& o) {
    outcomes.push_back(o.failure.empty() ? "exit " + std::to_string(o.result.exit_code)
                                         : o.failure);
  };
  protocol::ExecCommand cmd;
  cmd.argv = {"drain"};
  cmd.timeout_ms = 1'000;
  const std::string a = calls.call("n1", cmd, "7", cb);
  EXPECT_EQ(a, "lb7.1");
  const std::string b = calls.call("n2", cmd, "7", cb);
  EXPECT_EQ(calls.in_flight(), 2u);
  fleet.down = {"n3"};
  EXPECT_EQ(calls.call("n3", cmd, "7", cb), "");  // not connected: no callback, ever
  EXPECT_EQ(calls.in_flight(), 2u);

  protocol::ExecResult r;
  r.action = a;
  r.exit_code = 0;
  EXPECT_FALSE(calls.on_exec_result("n2", r));
  EXPECT_TRUE(calls.on_exec_result("n1", r));
  EXPECT_FALSE(calls.on_exec_result("n1", r));
  clock.advance(2'000);
  calls.tick();
  r.action = b;
  EXPECT_FALSE(calls.on_exec_result("n2", r));
  EXPECT_EQ(calls.in_flight(), 0u);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0], "exit 0");
  EXPECT_NE(outcomes[1].find("no answer"), std::string::npos);
}

}  // namespace
}  // namespace slipway::engine
