// The server's Convergence with a real store (SQLite in a temporary directory), the real engine,
// a fake fleet and a hand-driven clock: what successful deploys set, which nodes get a deploy of
// kind converge and when, quarantines (failed convergence, an app failing while serving, a
// desired release no longer in the repository) and their release.
#include "server/convergence.h"

#include <gtest/gtest.h>

#include "server/context.h"
#include "store/store.h"
#include "support/temp_dir.h"
#include "unit/engine/fake_fleet.h"
#include "unit/engine/finished_deploy.h"

namespace slipway::server {
namespace {

using engine::testing::FakeFleet;
using engine::testing::RecordingJournal;
using engine::testing::RecordingSink;

class ConvergenceTest : public ::testing::Test {
 protected:
  ConvergenceTest() : ctx_(options(), ioc_) {
    ctx_.db = std::make_unique<store::DbExecutor>(
        store::make_sqlite_store((dir_.path() / "slipway.db").string()));
    ctx_.db->run_sync([](store::Store& s) {
      ASSERT_TRUE(s.open());
      for (const char* v : {"1.0.0", "1.1.0"}) {
        ASSERT_TRUE(s.insert_artifact(
            store::ArtifactRecord{"web", v, std::string("sha-") + v, 100, "{}", "ann", 1}));
      }
    });
    ctx_.convergence = std::make_unique<Convergence>(ctx_, watchers_);
    ctx_.engine = std::make_unique<engine::Engine>(clock_, fleet_, journal_, *ctx_.convergence);
    ctx_.engine->set_next_id(10);
  }

  ServerOptions options() const {
    ServerOptions o;
    o.data_dir = dir_.path();
    o.worker_threads = 1;
    return o;
  }

  // Lets the database thread and the I/O thread run what they have, a few rounds.
  void settle() {
    for (int i = 0; i < 5; ++i) {
      ctx_.db->drain();
      ioc_.restart();
      ioc_.poll();
    }
  }

  // A deploy of web VERSION to the whole of staging succeeded (as the engine reports it).
  void deployed(engine::DeployId id, const std::string& version,
                std::vector<std::string> nodes = {"n1"}) {
    engine::DeployEvent e;
    e.deploy = id;
    e.kind = "deploy.finished";
    ctx_.convergence->on_event(e, engine::testing::finished_deploy(id, version, "", nodes));
  }

  // An alive node of staging running web `version` ("" = not at all).
  void join(const std::string& name, const std::string& version) {
    inventory::Node n;
    n.name = name;
    n.env = "staging";
    n.roles = {"api"};
    n.zone = "a";
    if (!version.empty()) {
      n.apps["web"].version = version;
      n.apps["web"].healthy = true;
      n.apps["web"].running = true;
    }
    ctx_.inventory.register_node(std::move(n), 1'000);
  }

  // The node's command in flight gets `ok` (the agent reports `version` as current).
  void answer(const std::string& node, bool ok, const std::string& version) {
    auto cmd = fleet_.pending_for(node);
    ASSERT_TRUE(cmd) << "no command in flight to " << node;
    fleet_.mark_answered(cmd->action());
    protocol::InstallResult r;
    r.action = cmd->action();
    r.ok = ok;
    r.app = "web";
    r.version = version;
    r.healthy = ok;
    r.reason = ok ? "" : "hook after_install failed";
    inventory::NodeApp now;
    now.version = version;
    now.healthy = ok;
    now.running = true;
    ctx_.inventory.set_app(node, "web", now, 2'000);
    ctx_.engine->on_result(node, r);
  }

  const engine::Deploy* running() { return ctx_.engine->running_for("web", "staging"); }

  const inventory::Node& node(const std::string& name) { return *ctx_.inventory.find(name); }

  std::map<std::string, inventory::Quarantine> stored_quarantines() {
    std::map<std::string, inventory::Quarantine> out;
    ctx_.db->run_sync([&](store::Store& s) { out = s.active_quarantines().value(); });
    return out;
  }

  slipway::testing::TempDir dir_;
  asio::io_context ioc_;
  ServerContext ctx_;
  ManualClock clock_;
  FakeFleet fleet_;
  RecordingJournal journal_;
  RecordingSink watchers_;
};

TEST_F(ConvergenceTest, ASuccessfulDeploySetsTheDesiredStateAndPassesEveryEventOn) {
  deployed(3, "1.1.0");
  ASSERT_EQ(watchers_.seen.size(), 1u);
  EXPECT_EQ(watchers_.seen[0].event.kind, "deploy.finished");
  join("n9", "");
  const auto want = ctx_.convergence->desired().for_node(node("n9"), "web");
  ASSERT_TRUE(want);
  EXPECT_EQ(want->version, "1.1.0");
  EXPECT_EQ(want->deploy, 3);
  // Kept in the store.
  std::vector<engine::DesiredRecord> stored;
  settle();
  ctx_.db->run_sync([&](store::Store& s) { stored = s.load_desired().value(); });
  ASSERT_EQ(stored.size(), 2u);  // the scope, and n1
  EXPECT_EQ(stored[0].version, "1.1.0");
}

TEST_F(ConvergenceTest, ALaggingNodeConvergesAloneAndOneAtATime) {
  deployed(3, "1.1.0");
  join("n2", "1.0.0");
  join("n3", "");
  ctx_.convergence->check("n2");
  ctx_.convergence->check("n3");  // the same app and environment: only one starts
  settle();
  const auto* d = running();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->kind, engine::DeployKind::converge);
  EXPECT_EQ(d->version, "1.1.0");
  EXPECT_EQ(d->selector, "name=n2");
  EXPECT_EQ(d->actor, Convergence::kActor);
  ASSERT_EQ(d->nodes.size(), 1u);
  EXPECT_EQ(d->nodes[0].node, "n2");
  EXPECT_EQ(d->nodes[0].from_version, "1.0.0");
  EXPECT_EQ(fleet_.pending_for("n2")->install.sha256, "sha-1.1.0");
  EXPECT_FALSE(fleet_.pending_for("n3"));

  answer("n2", true, "1.1.0");
  EXPECT_EQ(running(), nullptr);
  EXPECT_FALSE(node("n2").quarantined());
  // The next round takes n3; n2 runs what it should and is left alone.
  ctx_.convergence->tick();
  settle();
  ASSERT_NE(running(), nullptr);
  EXPECT_EQ(running()->selector, "name=n3");
  EXPECT_EQ(running()->nodes[0].from_version, "");
  answer("n3", true, "1.1.0");
  ctx_.convergence->tick();
  settle();
  EXPECT_EQ(running(), nullptr);
  // A convergence sets no desired state of its own.
  EXPECT_EQ(ctx_.convergence->desired().for_node(node("n3"), "web")->deploy, 3);
}

TEST_F(ConvergenceTest, NoConvergenceWhileADeployOfTheAppRuns) {
  join("n1", "1.0.0");
  join("n2", "1.0.0");
  engine::DeployRequest r;
  r.app = "web";
  r.env = "staging";
  r.artifact = engine::ArtifactRef{"1.1.0", "sha-1.1.0", 100};
  r.batch = engine::BatchSize{1, false};
  ASSERT_TRUE(ctx_.engine->start(r, {engine::Target{"n1", "a", "1.0.0"}}));
  deployed(3, "1.1.0");  // (an earlier deploy, as far as the desired state goes)
  ctx_.convergence->check("n2");
  settle();
  EXPECT_EQ(running()->kind, engine::DeployKind::deploy);
  EXPECT_FALSE(fleet_.pending_for("n2"));
}

TEST_F(ConvergenceTest, AFailedConvergenceQuarantinesUntilReleased) {
  deployed(3, "1.1.0");
  join("n2", "1.0.0");
  ctx_.convergence->check("n2");
  settle();
  ASSERT_NE(running(), nullptr);
  answer("n2", false, "1.0.0");  // the agent went back by itself
  EXPECT_EQ(running(), nullptr);
  ASSERT_TRUE(node("n2").quarantined());
  EXPECT_EQ(node("n2").quarantine->reason,
            "convergence to web 1.1.0 failed (deploy #10): hook after_install failed");
  EXPECT_EQ(node("n2").quarantine->app, "web");
  EXPECT_EQ(node("n2").quarantine->deploy, 10);
  settle();
  EXPECT_EQ(stored_quarantines().at("n2").deploy, 10);

  // Never again by itself, not even when it says hello again.
  ctx_.convergence->tick();
  join("n2", "1.0.0");
  ctx_.convergence->check("n2");
  settle();
  EXPECT_EQ(running(), nullptr);
  EXPECT_TRUE(node("n2").quarantined());

  // Released: it converges at once.
  EXPECT_EQ(ctx_.convergence->release("nobody", "bob").error().code, Errc::not_found);
  ASSERT_TRUE(ctx_.convergence->release("n2", "bob"));
  EXPECT_EQ(ctx_.convergence->release("n2", "bob").error().code, Errc::failed_precondition);
  settle();
  EXPECT_TRUE(stored_quarantines().empty());
  ASSERT_NE(running(), nullptr);
  EXPECT_EQ(running()->selector, "name=n2");
  answer("n2", true, "1.1.0");
  EXPECT_FALSE(node("n2").quarantined());
}

TEST_F(ConvergenceTest, AnAppFailingOnItsDesiredReleaseOutsideADeployQuarantines) {
  deployed(3, "1.1.0", {"n1", "n2", "n3"});
  join("n1", "1.1.0");
  join("n2", "1.0.0");
  ctx_.convergence->on_app_unhealthy("n1", "web", "1.1.0");
  ASSERT_TRUE(node("n1").quarantined());
  EXPECT_EQ(node("n1").quarantine->reason, "web 1.1.0 failed its health check while serving");
  // Not its desired release: drift, which convergence deals with, not a quarantine.
  ctx_.convergence->on_app_unhealthy("n2", "web", "1.0.0");
  EXPECT_FALSE(node("n2").quarantined());
  // Inside a deploy that targets the node, the deploy deals with it.
  join("n3", "1.1.0");
  engine::DeployRequest r;
  r.app = "web";
  r.env = "staging";
  r.artifact = engine::ArtifactRef{"1.0.0", "sha-1.0.0", 100};
  ASSERT_TRUE(ctx_.engine->start(r, {engine::Target{"n3", "a", "1.1.0"}}));
  ctx_.convergence->on_app_unhealthy("n3", "web", "1.1.0");
  EXPECT_FALSE(node("n3").quarantined());
}

TEST_F(ConvergenceTest, ADesiredReleaseGoneFromTheRepositoryQuarantines) {
  deployed(3, "9.9.9");
  join("n2", "1.0.0");
  ctx_.convergence->check("n2");
  settle();
  EXPECT_EQ(running(), nullptr);
  ASSERT_TRUE(node("n2").quarantined());
  EXPECT_NE(node("n2").quarantine->reason.find("no longer in the artifact repository"),
            std::string::npos);
}

}  // namespace
}  // namespace slipway::server
