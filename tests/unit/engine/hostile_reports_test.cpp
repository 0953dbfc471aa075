// A hostile (or confused) agent: reports are accepted only for a command in flight that was sent
// to the reporting node, and results only for the app that command installs. Forged reports (an
// unknown action, another node's action, another app) and replayed ones (a second report for an
// action that has finished) are refused, logged with the node, the action and why, and change
// nothing: not the deploy, not the journal, not the events.
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "fake_fleet.h"

namespace slipway::engine {
namespace {

using namespace slipway::engine::testing;
using ::testing::HasSubstr;

// Captures what the engine logs while it lives (and puts the previous default logger back).
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
    sink_->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink_));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const {
    std::string out;
    for (const auto& line : sink_->last_formatted())
      out += line;
    return out;
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

class HostileReportsTest : public EngineTest {
 protected:
  // Nothing the engine persisted or announced changed since Snapshot().
  void Snapshot() {
    journaled_ = journal_.entries.size();
    events_ = sink_.seen.size();
  }
  void ExpectNothingChanged() {
    EXPECT_EQ(journal_.entries.size(), journaled_);
    EXPECT_EQ(sink_.seen.size(), events_);
  }
  size_t journaled_ = 0;
  size_t events_ = 0;
};

TEST_F(HostileReportsTest, ResultForAnotherAppIsRefusedAndChangesNothing) {
  CapturedLog log;
  const DeployId id = Start(Request("2.0.0", "2"), Targets(2));
  const auto cmd = PendingFor("n000");
  Snapshot();
  auto forged = Ok(cmd);
  forged.app = "billing";  // the right action and node, another app
  forged.ok = false;
  forged.reason = "forged failure";
  engine().on_result("n000", forged);
  EXPECT_EQ(engine().ignored_reports(), 1u);
  EXPECT_EQ(N(id, "n000").status, NodeStatus::running);
  ExpectNothingChanged();
  EXPECT_THAT(log.text(), HasSubstr("node n000: result for action \"" + cmd.action() +
                                    "\" refused: the result names app 'billing'"));
  // The real answer still counts.
  AnswerAll();
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(HostileReportsTest, EveryRefusalIsLoggedWithNodeActionAndWhy) {
  CapturedLog log;
  const DeployId id = Start(Request("2.0.0", "1"), Targets(2));
  const auto cmd0 = PendingFor("n000");
  Succeed("n000");
  const auto cmd1 = PendingFor("n001");
  Snapshot();

  protocol::StepEvent step;
  step.action = "d1.a999";
  step.step = "download";
  engine().on_step("n001", step);        // an action never sent
  engine().on_result("n001", Ok(cmd0));  // n000's finished action, from n001
  engine().on_result("n000", Ok(cmd0));  // a replay from n000 itself
  engine().on_result("n000", Ok(cmd1));  // n001's action in flight, from n000
  step.action = cmd0.action();
  engine().on_step("n000", step);  // a late step for a finished action
  EXPECT_EQ(engine().ignored_reports(), 5u);
  ExpectNothingChanged();
  EXPECT_EQ(N(id, "n000").status, NodeStatus::healthy);
  EXPECT_EQ(N(id, "n001").status, NodeStatus::running);

  const std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("warning node n001: step for action \"d1.a999\" refused: no "
                              "command with this action was sent"));
  EXPECT_THAT(text, HasSubstr("node n001: result for action \"" + cmd0.action() +
                              "\" refused: the action was sent to node n000"));
  EXPECT_THAT(text, HasSubstr("node n000: result for action \"" + cmd0.action() +
                              "\" refused: the action has already finished (a replayed report)"));
  EXPECT_THAT(text, HasSubstr("node n000: result for action \"" + cmd1.action() +
                              "\" refused: the action was sent to node n001"));
  EXPECT_THAT(text, HasSubstr("node n000: step for action \"" + cmd0.action() +
                              "\" refused: the action has already finished"));
  Succeed("n001");
  EXPECT_EQ(D(id).state, DeployState::succeeded);
}

TEST_F(HostileReportsTest, ReportRefusalAnswersBeforeAnythingIsApplied) {
  Start(Request("2.0.0", "1"), Targets(1));
  const auto cmd = PendingFor("n000");
  const std::string app = "web";
  const std::string other = "other";
  EXPECT_FALSE(engine().report_refusal("n000", cmd.action(), &app));
  EXPECT_FALSE(engine().report_refusal("n000", cmd.action(), nullptr));
  EXPECT_TRUE(engine().report_refusal("n000", cmd.action(), &other));
  EXPECT_TRUE(engine().report_refusal("n001", cmd.action(), &app));
  EXPECT_TRUE(engine().report_refusal("n000", "", &app));
  EXPECT_EQ(engine().ignored_reports(), 0u);  // asking is not reporting
  Succeed("n000");
  EXPECT_EQ(*engine().report_refusal("n000", cmd.action(), &app),
            "the action has already finished (a replayed report)");
}

TEST_F(HostileReportsTest, ControlCharactersInAForgedActionAreEscapedInTheLog) {
  CapturedLog log;
  Start(Request("2.0.0", "1"), Targets(1));
  protocol::StepEvent step;
  step.action = "x\nINFO forged line\x1b[31m";
  engine().on_step("n000", step);
  const std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("\"x\\nINFO forged line\\x1b[31m\""));
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

TEST_F(HostileReportsTest, ReplayedResultsOfEarlierDeploysChangeNothing) {
  // One node, deploys of five apps one after the other; after each, its result is sent again.
  for (int i = 0; i < 5; ++i) {
    auto req = Request("2.0." + std::to_string(i), "1");
    req.app = "app" + std::to_string(i);
    const DeployId id = Start(req, Targets(1, "1.0.0", "a"));
    const auto cmd = PendingFor("n000");
    Succeed("n000");
    ASSERT_EQ(D(id).state, DeployState::succeeded);
    Snapshot();
    engine().on_result("n000", Ok(cmd));
    ExpectNothingChanged();
  }
  EXPECT_EQ(engine().ignored_reports(), 5u);
}

}  // namespace
}  // namespace slipway::engine
