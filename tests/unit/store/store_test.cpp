// The SQLite store (store/store.h, make_sqlite_store) on a real database file.
#include "store/store.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "support/temp_dir.h"
#include "unit/store/schema_v1.h"

namespace slipway::store {
namespace {

using engine::Deploy;
using engine::DeployState;
using engine::NodeProgress;
using engine::NodeStatus;
using engine::StepRecord;

const std::string kShaA(64, 'a');
const std::string kShaB(64, 'b');

// A second, independent connection to the same file, to look at what the store really wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error("cannot open " + path);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "error";
      sqlite3_free(msg);
      throw std::runtime_error(sql + ": " + m);
    }
  }
  // The first column of every row, as text.
  std::vector<std::string> column(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::string> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(s, 0);
      out.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    sqlite3_finalize(s);
    return out;
  }
  std::string one(const std::string& sql) {
    auto c = column(sql);
    return c.empty() ? std::string() : c.front();
  }

 private:
  sqlite3* db_ = nullptr;
};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = open_store(); }

  std::unique_ptr<Store> open_store() {
    auto s = make_sqlite_store(path());
    auto st = s->open();
    EXPECT_TRUE(st) << (st ? "" : st.error().message);
    return s;
  }
  std::string path() const { return (dir_.path() / "slipway.db").string(); }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

ArtifactRecord artifact(std::string app, std::string version, std::string sha = kShaA) {
  ArtifactRecord a;
  a.app = std::move(app);
  a.version = std::move(version);
  a.sha256 = std::move(sha);
  a.size = 5'000'000'000ULL;  // over 32 bits
  a.manifest_json = R"({"start":"./bin/server"})";
  a.pushed_by = "admin";
  a.created_at = 1'700'000'000'000;
  return a;
}

inventory::Node node(std::string name) {
  inventory::Node n;
  n.name = std::move(name);
  n.env = "staging";
  n.roles = {"api", "worker"};
  n.zone = "a";
  n.tags = {{"canary", "true"}, {"team", "pay@corp"}};
  n.address = "127.0.0.11";
  n.agent_version = "0.1.0";
  n.first_seen = 1'000;
  n.last_seen = 2'000;
  n.state = inventory::NodeState::alive;
  inventory::NodeApp app;
  app.version = "1.1.0";
  app.healthy = true;
  app.running = true;
  app.port = 31001;
  app.releases = {"1.0.0", "1.1.0"};
  app.last_healthy = "1.1.0";
  app.updated_at = 1'500;
  n.apps["billing"] = app;
  return n;
}

NodeProgress progress(std::string node, int batch, NodeStatus status) {
  NodeProgress p;
  p.node = std::move(node);
  p.zone = "a";
  p.batch = batch;
  p.from_version = "1.0.0";
  p.status = status;
  p.step = "health";
  p.started_at = 10;
  p.finished_at = status == NodeStatus::pending ? 0 : 20;
  p.reason = status == NodeStatus::failed ? "health check failed" : "";
  p.reverted_to = status == NodeStatus::failed ? "1.0.0" : "";
  p.version_now = "1.1.0";
  p.downloaded = true;
  return p;
}

Deploy deploy(engine::DeployId id, std::string app = "billing", std::string env = "staging",
              DeployState state = DeployState::succeeded) {
  Deploy d;
  d.id = id;
  d.kind = engine::DeployKind::deploy;
  d.app = std::move(app);
  d.version = "1.1.0";
  d.env = std::move(env);
  d.selector = "role=api";
  d.strategy = "rolling";
  d.batch = engine::BatchSize::parse("2").value();
  d.max_failures = 1;
  d.state = state;
  d.phase = engine::Phase::forward;
  d.reason = "";
  d.actor = "admin";
  d.created_at = 1'000 + id;
  d.finished_at = state == DeployState::running ? 0 : 2'000 + id;
  d.batches = 2;
  d.current_batch = 1;
  return d;
}

TEST_F(StoreTest, FreshFileGetsTheSchema) {
  RawDb raw(path());
  EXPECT_EQ(raw.one("PRAGMA user_version"), "12");
  EXPECT_EQ(raw.one("PRAGMA journal_mode"), "wal");
  const auto tables = raw.column("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1");
  EXPECT_EQ(tables, (std::vector<std::string>{"artifacts",      "audit",
                                              "config_entries", "config_versions",
                                              "deploy_log",     "deploy_nodes",
                                              "deploy_steps",   "deploys",
                                              "desired",        "environments",
                                              "freezes",        "join_tokens",
                                              "meta",           "node_credentials",
                                              "nodes",          "notify_deliveries",
                                              "notify_hooks",   "plans",
                                              "quarantines",    "run_nodes",
                                              "runs",           "sqlite_sequence",
                                              "tokens"}));
}

TEST_F(StoreTest, OpeningTwiceMigratesOnce) {
  ASSERT_TRUE(store_->set_meta("k", "v"));
  store_.reset();
  auto again = open_store();
  EXPECT_EQ(again->get_meta("k").value(), std::optional<std::string>("v"));
  RawDb raw(path());
  EXPECT_EQ(raw.one("PRAGMA user_version"), "12");
}

TEST_F(StoreTest, ADatabaseFromANewerVersionIsRefused) {
  store_.reset();
  {
    RawDb raw(path());
    raw.exec("PRAGMA user_version = 13");
  }
  auto s = make_sqlite_store(path());
  auto st = s->open();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::failed_precondition);
  const auto& m = st.error().message;
  EXPECT_NE(m.find("schema version 13"), std::string::npos) << m;
  EXPECT_NE(m.find("newer"), std::string::npos) << m;
  EXPECT_NE(m.find("upgrade slipway"), std::string::npos) << m;
  EXPECT_NE(m.find(path()), std::string::npos) << m;
  // Nothing was changed in the file.
  RawDb raw(path());
  EXPECT_EQ(raw.one("PRAGMA user_version"), "13");
}

TEST(StoreOpen, AFileThatIsNotADatabaseIsAnError) {
  testing::TempDir dir;
  const auto p = (dir.path() / "junk.db").string();
  {
    std::FILE* f = std::fopen(p.c_str(), "w");
    std::fputs("this is not a database, just some text that is long enough to matter\n", f);
    std::fclose(f);
  }
  auto s = make_sqlite_store(p);
  auto st = s->open();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::io);
  auto missing_dir = make_sqlite_store((dir.path() / "no" / "such" / "x.db").string());
  EXPECT_FALSE(missing_dir->open());
}

TEST_F(StoreTest, Meta) {
  EXPECT_EQ(store_->get_meta("missing").value(), std::nullopt);
  ASSERT_TRUE(store_->set_meta("server_id", "abc"));
  EXPECT_EQ(store_->get_meta("server_id").value(), std::optional<std::string>("abc"));
  ASSERT_TRUE(store_->set_meta("server_id", "def"));
  EXPECT_EQ(store_->get_meta("server_id").value(), std::optional<std::string>("def"));
  ASSERT_TRUE(store_->set_meta("empty", ""));
  EXPECT_EQ(store_->get_meta("empty").value(), std::optional<std::string>(""));
  const std::string binary("a\0b", 3);
  ASSERT_TRUE(store_->set_meta("bin", binary));
  EXPECT_EQ(store_->get_meta("bin").value(), std::optional<std::string>(binary));
}

TEST_F(StoreTest, Artifacts) {
  ASSERT_TRUE(store_->insert_artifact(artifact("billing", "1.0.0")));
  ASSERT_TRUE(store_->insert_artifact(artifact("billing", "1.1.0", kShaB)));
  ASSERT_TRUE(store_->insert_artifact(artifact("search", "2.0.0", kShaB)));

  auto got = store_->get_artifact("billing", "1.0.0").value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->app, "billing");
  EXPECT_EQ(got->version, "1.0.0");
  EXPECT_EQ(got->sha256, kShaA);
  EXPECT_EQ(got->size, 5'000'000'000ULL);
  EXPECT_EQ(got->manifest_json, R"({"start":"./bin/server"})");
  EXPECT_EQ(got->pushed_by, "admin");
  EXPECT_EQ(got->created_at, 1'700'000'000'000);
  EXPECT_EQ(store_->get_artifact("billing", "9.9.9").value(), std::nullopt);
  EXPECT_EQ(store_->get_artifact("nobody", "1.0.0").value(), std::nullopt);

  // A version is never overwritten.
  auto again = store_->insert_artifact(artifact("billing", "1.0.0", kShaB));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_EQ(store_->get_artifact("billing", "1.0.0").value()->sha256, kShaA);

  auto list = store_->list_artifacts("billing").value();
  ASSERT_EQ(list.size(), 2u);
  std::vector<std::string> versions{list[0].version, list[1].version};
  std::sort(versions.begin(), versions.end());
  EXPECT_EQ(versions, (std::vector<std::string>{"1.0.0", "1.1.0"}));
  EXPECT_TRUE(store_->list_artifacts("nobody").value().empty());
  EXPECT_EQ(store_->list_apps().value(), (std::vector<std::string>{"billing", "search"}));

  EXPECT_TRUE(store_->blob_referenced(kShaA).value());
  EXPECT_TRUE(store_->blob_referenced(kShaB).value());
  EXPECT_FALSE(store_->blob_referenced(std::string(64, 'c')).value());
}

TEST_F(StoreTest, NodesUpsertLoadAndLastSeen) {
  ASSERT_TRUE(store_->upsert_node(node("web-2")));
  ASSERT_TRUE(store_->upsert_node(node("web-1")));
  auto changed = node("web-1");
  changed.env = "production";
  changed.roles = {"api"};
  changed.tags = {};
  changed.apps.clear();
  changed.first_seen = 99'999;  // the first sighting is kept from the first insert
  changed.last_seen = 3'000;
  ASSERT_TRUE(store_->upsert_node(changed));

  auto nodes = store_->load_nodes().value();
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].name, "web-1");  // ordered by name
  EXPECT_EQ(nodes[1].name, "web-2");
  for (const auto& n : nodes)
    EXPECT_EQ(n.state, inventory::NodeState::lost) << n.name;  // nobody is connected yet
  EXPECT_EQ(nodes[0].env, "production");
  EXPECT_EQ(nodes[0].roles, std::vector<std::string>{"api"});
  EXPECT_TRUE(nodes[0].tags.empty());
  EXPECT_TRUE(nodes[0].apps.empty());
  EXPECT_EQ(nodes[0].first_seen, 1'000);
  EXPECT_EQ(nodes[0].last_seen, 3'000);

  const auto& w2 = nodes[1];
  const auto want = node("web-2");
  EXPECT_EQ(w2.env, want.env);
  EXPECT_EQ(w2.roles, want.roles);
  EXPECT_EQ(w2.zone, want.zone);
  EXPECT_EQ(w2.tags, want.tags);
  EXPECT_EQ(w2.address, want.address);
  EXPECT_EQ(w2.agent_version, want.agent_version);
  ASSERT_EQ(w2.apps.count("billing"), 1u);
  const auto& a = w2.apps.at("billing");
  EXPECT_EQ(a.version, "1.1.0");
  EXPECT_TRUE(a.healthy);
  EXPECT_TRUE(a.running);
  EXPECT_EQ(a.port, 31001);
  EXPECT_EQ(a.releases, (std::vector<std::string>{"1.0.0", "1.1.0"}));
  EXPECT_EQ(a.last_healthy, "1.1.0");
  EXPECT_EQ(a.updated_at, 1'500);

  ASSERT_TRUE(store_->save_last_seen({{"web-1", 10'000}, {"web-2", 20'000}, {"ghost", 1}}));
  nodes = store_->load_nodes().value();
  ASSERT_EQ(nodes.size(), 2u);  // an unknown name is not created
  EXPECT_EQ(nodes[0].last_seen, 10'000);
  EXPECT_EQ(nodes[1].last_seen, 20'000);
  ASSERT_TRUE(store_->save_last_seen({}));
}

TEST_F(StoreTest, DeploysSaveAndGetWithNodes) {
  auto d = deploy(1, "billing", "staging", DeployState::running);
  d.nodes = {progress("web-2", 0, NodeStatus::healthy), progress("web-1", 0, NodeStatus::failed),
             progress("web-0", 1, NodeStatus::pending)};
  ASSERT_TRUE(store_->save_deploy(d));

  auto got = store_->get_deploy(1).value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, 1);
  EXPECT_EQ(got->kind, engine::DeployKind::deploy);
  EXPECT_EQ(got->app, "billing");
  EXPECT_EQ(got->version, "1.1.0");
  EXPECT_EQ(got->env, "staging");
  EXPECT_EQ(got->selector, "role=api");
  EXPECT_EQ(got->strategy, "rolling");
  EXPECT_EQ(got->batch.to_string(), "2");
  EXPECT_EQ(got->max_failures, 1);
  EXPECT_EQ(got->state, DeployState::running);
  EXPECT_EQ(got->phase, engine::Phase::forward);
  EXPECT_EQ(got->actor, "admin");
  EXPECT_EQ(got->created_at, 1'001);
  EXPECT_EQ(got->finished_at, 0);
  EXPECT_EQ(got->batches, 2);
  EXPECT_EQ(got->current_batch, 1);
  // Nodes come back ordered by batch, then name.
  ASSERT_EQ(got->nodes.size(), 3u);
  EXPECT_EQ(got->nodes[0].node, "web-1");
  EXPECT_EQ(got->nodes[1].node, "web-2");
  EXPECT_EQ(got->nodes[2].node, "web-0");
  const auto& failed = got->nodes[0];
  EXPECT_EQ(failed.status, NodeStatus::failed);
  EXPECT_EQ(failed.zone, "a");
  EXPECT_EQ(failed.batch, 0);
  EXPECT_EQ(failed.from_version, "1.0.0");
  EXPECT_EQ(failed.step, "health");
  EXPECT_EQ(failed.started_at, 10);
  EXPECT_EQ(failed.finished_at, 20);
  EXPECT_EQ(failed.reason, "health check failed");
  EXPECT_EQ(failed.reverted_to, "1.0.0");
  EXPECT_EQ(failed.version_now, "1.1.0");
  EXPECT_TRUE(failed.downloaded);
  EXPECT_EQ(got->nodes[2].status, NodeStatus::pending);

  // Saving again updates the header and the nodes.
  d.state = DeployState::rolled_back;
  d.phase = engine::Phase::revert;
  d.reason = "1 node failed";
  d.finished_at = 5'000;
  d.aborted_by = "oncall";
  d.nodes[0].status = NodeStatus::reverted;
  ASSERT_TRUE(store_->save_deploy(d));
  got = store_->get_deploy(1).value();
  EXPECT_EQ(got->state, DeployState::rolled_back);
  EXPECT_EQ(got->phase, engine::Phase::revert);
  EXPECT_EQ(got->reason, "1 node failed");
  EXPECT_EQ(got->finished_at, 5'000);
  EXPECT_EQ(got->aborted_by, "oncall");
  EXPECT_EQ(got->nodes[1].status, NodeStatus::reverted);
  EXPECT_EQ(got->nodes.size(), 3u);

  // One node alone.
  auto p = progress("web-0", 1, NodeStatus::skipped);
  ASSERT_TRUE(store_->save_deploy_node(1, p));
  EXPECT_EQ(store_->get_deploy(1).value()->nodes[2].status, NodeStatus::skipped);

  EXPECT_EQ(store_->get_deploy(2).value(), std::nullopt);
}

TEST_F(StoreTest, ARollbackKeepsItsKind) {
  auto d = deploy(1);
  d.kind = engine::DeployKind::rollback;
  d.batch = engine::BatchSize::parse("25%").value();
  ASSERT_TRUE(store_->save_deploy(d));
  auto got = store_->get_deploy(1).value();
  EXPECT_EQ(got->kind, engine::DeployKind::rollback);
  EXPECT_TRUE(got->batch.percent);
  EXPECT_EQ(got->batch.value, 25);
}

TEST_F(StoreTest, ListDeploysWithFilters) {
  // ids 1..12: billing/staging, billing/production, search/staging, in turn.
  for (int id = 1; id <= 12; ++id) {
    const char* app = id % 3 == 0 ? "search" : "billing";
    const char* env = id % 3 == 2 ? "production" : "staging";
    const auto state = id % 4 == 0 ? DeployState::failed : DeployState::succeeded;
    auto d = deploy(id, app, env, state);
    d.nodes = {progress("web-1", 0, NodeStatus::healthy), progress("web-2", 1, NodeStatus::failed)};
    ASSERT_TRUE(store_->save_deploy(d));
  }
  auto ids = [&](const DeployFilter& f) {
    std::vector<engine::DeployId> out;
    for (const auto& d : store_->list_deploys(f).value())
      out.push_back(d.id);
    return out;
  };
  using Ids = std::vector<engine::DeployId>;
  DeployFilter all;
  EXPECT_EQ(ids(all), (Ids{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}));  // newest first
  DeployFilter app;
  app.app = "search";
  EXPECT_EQ(ids(app), (Ids{12, 9, 6, 3}));
  DeployFilter env;
  env.env = "production";
  EXPECT_EQ(ids(env), (Ids{11, 8, 5, 2}));
  DeployFilter both;
  both.app = "billing";
  both.env = "staging";
  EXPECT_EQ(ids(both), (Ids{10, 7, 4, 1}));
  DeployFilter failed;
  failed.state = DeployState::failed;
  EXPECT_EQ(ids(failed), (Ids{12, 8, 4}));
  DeployFilter limited;
  limited.limit = 3;
  EXPECT_EQ(ids(limited), (Ids{12, 11, 10}));
  DeployFilter page;
  page.limit = 3;
  page.before_id = 10;
  EXPECT_EQ(ids(page), (Ids{9, 8, 7}));
  DeployFilter combined;
  combined.app = "billing";
  combined.state = DeployState::failed;
  combined.before_id = 8;
  EXPECT_EQ(ids(combined), (Ids{4}));
  DeployFilter none;
  none.app = "nobody";
  EXPECT_TRUE(ids(none).empty());

  // Listings carry node statuses (for counts), not the details.
  auto list = store_->list_deploys(limited).value();
  ASSERT_EQ(list[0].nodes.size(), 2u);
  EXPECT_EQ(list[0].count(NodeStatus::healthy), 1);
  EXPECT_EQ(list[0].count(NodeStatus::failed), 1);
  EXPECT_EQ(list[0].app, "search");
}

TEST_F(StoreTest, StepsComeBackInTheOrderTheyWereSaved) {
  ASSERT_TRUE(store_->save_deploy(deploy(1)));
  ASSERT_TRUE(store_->save_deploy(deploy(2)));
  const std::vector<std::string> steps{"download", "verify", "unpack", "switch", "start", "health"};
  for (size_t i = 0; i < steps.size(); ++i) {
    // Interleaved nodes and deploys, and timestamps that do not follow the order.
    ASSERT_TRUE(store_->save_step(StepRecord{1, i % 2 ? "web-2" : "web-1", steps[i], "ok",
                                             "out " + steps[i], static_cast<TimeMs>(100 - i),
                                             static_cast<int64_t>(i)}));
    ASSERT_TRUE(store_->save_step(StepRecord{2, "web-9", steps[i], "started", "", 5, 0}));
  }
  auto got = store_->list_steps(1).value();
  ASSERT_EQ(got.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(got[i].deploy, 1);
    EXPECT_EQ(got[i].step, steps[i]);
    EXPECT_EQ(got[i].node, i % 2 ? "web-2" : "web-1");
    EXPECT_EQ(got[i].status, "ok");
    EXPECT_EQ(got[i].output, "out " + steps[i]);
    EXPECT_EQ(got[i].started_at, static_cast<TimeMs>(100 - i));
    EXPECT_EQ(got[i].duration_ms, static_cast<int64_t>(i));
  }
  EXPECT_EQ(store_->list_steps(2).value().size(), steps.size());
  EXPECT_TRUE(store_->list_steps(3).value().empty());
}

TEST_F(StoreTest, MaxDeployId) {
  EXPECT_EQ(store_->max_deploy_id().value(), 0);
  ASSERT_TRUE(store_->save_deploy(deploy(7)));
  ASSERT_TRUE(store_->save_deploy(deploy(3)));
  EXPECT_EQ(store_->max_deploy_id().value(), 7);
}

TEST_F(StoreTest, StrategyOptionsCanaryNodesAndTheLogComeBack) {
  auto d = deploy(4, "billing", "prod", DeployState::paused);
  d.strategy = "canary";
  d.canary = "tag:canary=yes";
  d.canary_gate = "wait";
  d.canary_wait_ms = 300'000;
  d.max_unavailable = "25%";
  d.healthy_deadline_ms = 60'000;
  d.progress_deadline_ms = 600'000;
  d.waiting = "the canaries must stay healthy";
  d.promote_at = 12'345;
  d.nodes = {progress("web-1", 0, NodeStatus::healthy), progress("web-2", 1, NodeStatus::pending)};
  d.nodes[0].canary = true;
  ASSERT_TRUE(store_->save_deploy(d));
  ASSERT_TRUE(store_->save_transition(4, engine::Transition{100, "alice", "started", "canary"}));
  ASSERT_TRUE(store_->save_transition(4, engine::Transition{200, "bob", "paused", ""}));
  ASSERT_TRUE(store_->save_deploy(deploy(5, "other", "prod", DeployState::succeeded)));
  ASSERT_TRUE(store_->save_transition(5, engine::Transition{300, "eve", "paused", "other"}));

  auto got = store_->get_deploy(4).value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, DeployState::paused);
  EXPECT_EQ(got->canary, "tag:canary=yes");
  EXPECT_EQ(got->canary_gate, "wait");
  EXPECT_EQ(got->canary_wait_ms, 300'000);
  EXPECT_EQ(got->max_unavailable, "25%");
  EXPECT_EQ(got->healthy_deadline_ms, 60'000);
  EXPECT_EQ(got->progress_deadline_ms, 600'000);
  EXPECT_EQ(got->waiting, "the canaries must stay healthy");
  EXPECT_EQ(got->promote_at, 12'345);
  ASSERT_EQ(got->nodes.size(), 2u);
  EXPECT_TRUE(got->nodes[0].canary);
  EXPECT_FALSE(got->nodes[1].canary);
  ASSERT_EQ(got->log.size(), 2u);
  EXPECT_EQ(got->log[0].actor, "alice");
  EXPECT_EQ(got->log[1].action, "paused");
  EXPECT_EQ(got->log[1].at, 200);

  // A paused deploy is running as far as a restart is concerned.
  auto ids = store_->fail_running_deploys("restarted", 9'000).value();
  EXPECT_EQ(ids, (std::vector<engine::DeployId>{4}));
}

TEST_F(StoreTest, FailRunningDeploys) {
  auto running = deploy(1, "billing", "staging", DeployState::running);
  running.nodes = {progress("a", 0, NodeStatus::healthy), progress("b", 0, NodeStatus::running),
                   progress("c", 1, NodeStatus::pending), progress("d", 0, NodeStatus::reverting),
                   progress("e", 0, NodeStatus::failed)};
  ASSERT_TRUE(store_->save_deploy(running));
  auto with_reason = deploy(2, "search", "staging", DeployState::running);
  with_reason.reason = "1 node failed";
  with_reason.nodes = {progress("a", 0, NodeStatus::pending)};
  ASSERT_TRUE(store_->save_deploy(with_reason));
  auto finished = deploy(3, "other", "staging", DeployState::succeeded);
  finished.nodes = {progress("a", 0, NodeStatus::healthy)};
  ASSERT_TRUE(store_->save_deploy(finished));

  const std::string why = "the server stopped while this deploy was running";
  auto ids = store_->fail_running_deploys(why, 9'000).value();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<engine::DeployId>{1, 2}));

  auto d1 = store_->get_deploy(1).value().value();
  EXPECT_EQ(d1.state, DeployState::failed);
  EXPECT_EQ(d1.reason, why);
  EXPECT_EQ(d1.finished_at, 9'000);
  auto status_of = [](const Deploy& d, const std::string& node) {
    for (const auto& n : d.nodes)
      if (n.node == node) return n;
    return NodeProgress{};
  };
  EXPECT_EQ(status_of(d1, "a").status, NodeStatus::healthy);  // finished nodes keep their status
  EXPECT_EQ(status_of(d1, "a").finished_at, 20);
  EXPECT_EQ(status_of(d1, "b").status, NodeStatus::failed);
  EXPECT_EQ(status_of(d1, "b").reason, why);
  EXPECT_EQ(status_of(d1, "b").finished_at, 9'000);
  EXPECT_EQ(status_of(d1, "c").status, NodeStatus::skipped);
  EXPECT_EQ(status_of(d1, "c").reason, why);
  EXPECT_EQ(status_of(d1, "d").status, NodeStatus::failed);
  EXPECT_EQ(status_of(d1, "e").status, NodeStatus::failed);
  EXPECT_EQ(status_of(d1, "e").reason, "health check failed");

  auto d2 = store_->get_deploy(2).value().value();
  EXPECT_EQ(d2.state, DeployState::failed);
  EXPECT_EQ(d2.reason, "1 node failed; " + why);  // an earlier reason is kept
  EXPECT_EQ(d2.nodes[0].status, NodeStatus::skipped);

  auto d3 = store_->get_deploy(3).value().value();
  EXPECT_EQ(d3.state, DeployState::succeeded);
  EXPECT_EQ(d3.finished_at, 2'003);

  // Nothing is running any more.
  EXPECT_TRUE(store_->fail_running_deploys(why, 10'000).value().empty());
}

TEST_F(StoreTest, TransactionsCommitAndRollBack) {
  ASSERT_TRUE(store_->begin());
  ASSERT_TRUE(store_->set_meta("a", "1"));
  ASSERT_TRUE(store_->commit());
  ASSERT_TRUE(store_->begin());
  ASSERT_TRUE(store_->set_meta("b", "2"));
  ASSERT_TRUE(store_->rollback());
  EXPECT_EQ(store_->get_meta("a").value(), std::optional<std::string>("1"));
  EXPECT_EQ(store_->get_meta("b").value(), std::nullopt);
}

TEST_F(StoreTest, ReopenKeepsEverything) {
  ASSERT_TRUE(store_->set_meta("server_id", "x"));
  ASSERT_TRUE(store_->insert_artifact(artifact("billing", "1.0.0")));
  ASSERT_TRUE(store_->upsert_node(node("web-1")));
  auto d = deploy(4);
  d.nodes = {progress("web-1", 0, NodeStatus::healthy)};
  ASSERT_TRUE(store_->save_deploy(d));
  ASSERT_TRUE(store_->save_step(StepRecord{4, "web-1", "health", "ok", "200", 1, 2}));
  store_.reset();

  auto s = open_store();
  EXPECT_EQ(s->get_meta("server_id").value(), std::optional<std::string>("x"));
  EXPECT_TRUE(s->get_artifact("billing", "1.0.0").value().has_value());
  EXPECT_EQ(s->load_nodes().value().size(), 1u);
  EXPECT_EQ(s->get_deploy(4).value()->nodes.size(), 1u);
  EXPECT_EQ(s->list_steps(4).value().size(), 1u);
  EXPECT_EQ(s->max_deploy_id().value(), 4);
}

TEST_F(StoreTest, WritesAreVisibleToAnotherConnectionAtOnce) {
  // What a finished call wrote is committed: another process (a restarted server) sees it
  // while this store is still open, whatever reads happened in between.
  ASSERT_TRUE(store_->set_meta("a", "1"));
  ASSERT_TRUE(store_->get_meta("a").value());  // a read that found a row
  ASSERT_TRUE(store_->insert_artifact(artifact("billing", "1.0.0")));
  ASSERT_TRUE(store_->get_artifact("billing", "1.0.0").value());
  ASSERT_TRUE(store_->set_meta("b", "2"));
  RawDb raw(path());
  EXPECT_EQ(raw.one("SELECT value FROM meta WHERE key = 'b'"), "2");
  EXPECT_EQ(raw.one("SELECT count(*) FROM artifacts"), "1");
}

TEST_F(StoreTest, FinishedReadsDoNotPinTheWriteAheadLog) {
  // Reads that stop after one row must not leave a read transaction open: it would keep the WAL
  // from ever being checkpointed and reset, and the file would grow without bound.
  ASSERT_TRUE(store_->set_meta("a", "1"));
  ASSERT_TRUE(store_->insert_artifact(artifact("billing", "1.0.0")));
  ASSERT_TRUE(store_->save_deploy(deploy(1)));
  ASSERT_TRUE(store_->get_meta("a").value());
  ASSERT_TRUE(store_->get_artifact("billing", "1.0.0").value());
  ASSERT_TRUE(store_->blob_referenced(kShaA).value());
  ASSERT_TRUE(store_->get_deploy(1).value());
  ASSERT_EQ(store_->max_deploy_id().value(), 1);
  RawDb raw(path());
  // busy, log frames, checkpointed frames: busy must be 0 and the log emptied.
  const auto busy = raw.one("PRAGMA wal_checkpoint(TRUNCATE)");
  EXPECT_EQ(busy, "0");
  std::error_code ec;
  EXPECT_EQ(std::filesystem::file_size(path() + "-wal", ec), 0u);
}

engine::Freeze freeze(std::string env, std::string app, TimeMs until) {
  engine::Freeze f;
  f.env = std::move(env);
  f.app = std::move(app);
  f.until = until;
  f.reason = "year end";
  f.created_by = "alice@laptop";
  f.created_at = 1'000;
  return f;
}

TEST_F(StoreTest, AVersion1DatabaseGainsFreezesAndStrategiesAndKeepsItsDeploys) {
  ASSERT_TRUE(store_->save_deploy(deploy(3)));
  store_.reset();
  {
    // Back to what schema version 1 was.
    RawDb raw(path());
    raw.exec(kBackToSchemaVersion1);
  }
  auto s = open_store();
  RawDb raw(path());
  EXPECT_EQ(raw.one("PRAGMA user_version"), "12");
  auto d = s->get_deploy(3).value();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->forced_freeze, "");
  EXPECT_EQ(d->strategy, "rolling");
  EXPECT_TRUE(d->log.empty());
  EXPECT_EQ(s->list_freezes(0, true).value().size(), 0u);
  ASSERT_TRUE(s->save_transition(3, engine::Transition{1, "alice", "paused", ""}));
  EXPECT_EQ(s->get_deploy(3).value()->log.size(), 1u);
}

TEST_F(StoreTest, FreezesInsertListExpireAndLift) {
  const TimeMs now = 10'000;
  const auto id1 = store_->insert_freeze(freeze("production", "", now + 5'000)).value();
  const auto id2 = store_->insert_freeze(freeze("production", "web", now + 1'000)).value();
  const auto id3 = store_->insert_freeze(freeze("staging", "", now + 9'000)).value();
  EXPECT_LT(id1, id2);
  EXPECT_LT(id2, id3);

  auto ids = [](const std::vector<engine::Freeze>& list) {
    std::vector<engine::FreezeId> out;
    for (const auto& f : list)
      out.push_back(f.id);
    return out;
  };
  // Active ones, oldest first; a freeze stops being active at its `until`, by itself.
  EXPECT_EQ(ids(store_->list_freezes(now, false).value()),
            (std::vector<engine::FreezeId>{id1, id2, id3}));
  EXPECT_EQ(ids(store_->list_freezes(now + 1'000, false).value()),
            (std::vector<engine::FreezeId>{id1, id3}));
  EXPECT_TRUE(store_->list_freezes(now + 9'000, false).value().empty());

  auto got = store_->get_freeze(id2).value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->env, "production");
  EXPECT_EQ(got->app, "web");
  EXPECT_EQ(got->until, now + 1'000);
  EXPECT_EQ(got->reason, "year end");
  EXPECT_EQ(got->created_by, "alice@laptop");
  EXPECT_EQ(got->created_at, 1'000);
  EXPECT_EQ(got->lifted_at, 0);
  EXPECT_FALSE(store_->get_freeze(999).value().has_value());

  // Lifted: no longer active, and who lifted it when is kept; a second lift changes nothing.
  ASSERT_TRUE(store_->lift_freeze(id1, "bob@desk", now + 10));
  ASSERT_TRUE(store_->lift_freeze(id1, "carol@desk", now + 20));
  EXPECT_EQ(ids(store_->list_freezes(now + 100, false).value()),
            (std::vector<engine::FreezeId>{id2, id3}));
  got = store_->get_freeze(id1).value();
  EXPECT_EQ(got->lifted_by, "bob@desk");
  EXPECT_EQ(got->lifted_at, now + 10);

  // The history: every freeze, newest first, bounded.
  EXPECT_EQ(ids(store_->list_freezes(now, true).value()),
            (std::vector<engine::FreezeId>{id3, id2, id1}));
  EXPECT_EQ(ids(store_->list_freezes(now, true, 2).value()),
            (std::vector<engine::FreezeId>{id3, id2}));

  // They outlive the process.
  store_.reset();
  auto s = open_store();
  EXPECT_EQ(ids(s->list_freezes(now, false).value()), (std::vector<engine::FreezeId>{id2, id3}));
}

TEST_F(StoreTest, ADeployForcedThroughAFreezeKeepsTheRecord) {
  auto d = deploy(5);
  d.forced_freeze = "freeze #2 of production (set by alice, until ...): year end";
  ASSERT_TRUE(store_->save_deploy(d));
  ASSERT_TRUE(store_->save_deploy(deploy(6)));
  EXPECT_EQ(store_->get_deploy(5).value()->forced_freeze, d.forced_freeze);
  EXPECT_EQ(store_->get_deploy(6).value()->forced_freeze, "");
  store::DeployFilter f;
  auto list = store_->list_deploys(f).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].forced_freeze, d.forced_freeze);
  // And in the deploy's JSON, both ways.
  auto back = engine::deploy_from_json(engine::to_json(list[1], true));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->forced_freeze, d.forced_freeze);
}

}  // namespace
}  // namespace slipway::store

namespace slipway::store {
namespace {

NodeCredential enrollment(std::string node, std::string hash, TimeMs at,
                          std::string env = "staging", std::vector<std::string> roles = {"api"},
                          std::string join_token = "default", bool pending = false) {
  NodeCredential c;
  c.node = std::move(node);
  c.hash = std::move(hash);
  c.enrolled_at = at;
  c.env = std::move(env);
  c.roles = std::move(roles);
  c.join_token = std::move(join_token);
  c.pending = pending;
  return c;
}

JoinTokenRecord join_token(std::string name, std::string env, int64_t max_uses = 0,
                           TimeMs expires_at = 0) {
  JoinTokenRecord t;
  t.name = std::move(name);
  t.hash = std::string(64, t.name[0]);
  t.env = std::move(env);
  t.roles = {"api", "web"};
  t.max_uses = max_uses;
  t.created_by = "alice";
  t.created_at = 5;
  t.expires_at = expires_at;
  return t;
}

TEST_F(StoreTest, NodeCredentialsEnrollOnceAndRevokeForGood) {
  EXPECT_FALSE(store_->get_node_credential("web-1").value().has_value());
  EXPECT_TRUE(store_->enroll_node(enrollment("web-1", std::string(64, 'a'), 10)).value());
  // A second enrollment of the name does not replace the first credential.
  EXPECT_FALSE(store_->enroll_node(enrollment("web-1", std::string(64, 'b'), 11)).value());
  auto c = store_->get_node_credential("web-1").value();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->hash, std::string(64, 'a'));
  EXPECT_EQ(c->enrolled_at, 10);
  EXPECT_EQ(c->revoked_at, 0);

  ASSERT_TRUE(store_->revoke_node("web-1", "alice", 20));
  ASSERT_TRUE(store_->revoke_node("web-1", "bob", 30));  // the first revoke stays
  c = store_->get_node_credential("web-1").value();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->hash, "");
  EXPECT_EQ(c->revoked_at, 20);
  EXPECT_EQ(c->revoked_by, "alice");
  EXPECT_FALSE(store_->enroll_node(enrollment("web-1", std::string(64, 'c'), 40)).value());

  // A name never enrolled can be revoked too, and then never enrolls.
  ASSERT_TRUE(store_->revoke_node("web-9", "alice", 50));
  EXPECT_FALSE(store_->enroll_node(enrollment("web-9", std::string(64, 'd'), 60)).value());
  const auto revoked = store_->revoked_nodes().value();
  ASSERT_EQ(revoked.size(), 2u);
  EXPECT_EQ(revoked[0].node, "web-1");
  EXPECT_EQ(revoked[1].node, "web-9");
}

TEST_F(StoreTest, AnEnrollmentKeepsItsEnvironmentRolesJoinTokenAndApproval) {
  ASSERT_TRUE(store_
                  ->enroll_node(enrollment("web-1", kShaA, 10, "production", {"web", "api"},
                                           "prod-web", true))
                  .value());
  auto c = store_->get_node_credential("web-1").value().value();
  EXPECT_EQ(c.env, "production");
  EXPECT_EQ(c.roles, (std::vector<std::string>{"web", "api"}));
  EXPECT_EQ(c.join_token, "prod-web");
  EXPECT_TRUE(c.pending);

  // Approval: once, by whom and when; an unknown or approved name is not pending.
  EXPECT_TRUE(store_->approve_node("web-1", "alice", 20).value());
  EXPECT_FALSE(store_->approve_node("web-1", "bob", 30).value());
  EXPECT_FALSE(store_->approve_node("nobody", "bob", 30).value());
  c = store_->get_node_credential("web-1").value().value();
  EXPECT_FALSE(c.pending);
  EXPECT_EQ(c.approved_by, "alice");
  EXPECT_EQ(c.approved_at, 20);

  // A move changes the environment, and the roles only when given.
  EXPECT_TRUE(store_->move_node("web-1", "staging", std::nullopt).value());
  c = store_->get_node_credential("web-1").value().value();
  EXPECT_EQ(c.env, "staging");
  EXPECT_EQ(c.roles, (std::vector<std::string>{"web", "api"}));
  EXPECT_TRUE(store_->move_node("web-1", "staging", std::vector<std::string>{}).value());
  EXPECT_TRUE(store_->get_node_credential("web-1").value()->roles.empty());
  EXPECT_FALSE(store_->move_node("nobody", "staging", std::nullopt).value());
  ASSERT_TRUE(store_->revoke_node("web-1", "alice", 40));
  EXPECT_FALSE(store_->move_node("web-1", "production", std::nullopt).value());
  EXPECT_FALSE(store_->approve_node("web-1", "alice", 50).value());

  const auto all = store_->list_node_credentials().value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].revoked_at, 40);
}

TEST_F(StoreTest, JoinTokensCountEachEnrollmentAndRefuseWhenUsedUpExpiredOrRevoked) {
  const auto once = store_->insert_join_token(join_token("once", "staging", 1)).value();
  const auto soon = store_->insert_join_token(join_token("soon", "staging", 0, 100)).value();
  const auto gone = store_->insert_join_token(join_token("gone", "production")).value();
  EXPECT_EQ(store_->insert_join_token(join_token("once", "production")).error().code,
            Errc::conflict);

  auto with = [](const std::string& node, const std::string& token, TimeMs at) {
    return enrollment(node, node + std::to_string(at), at, "staging", {"api"}, token);
  };
  EXPECT_TRUE(store_->enroll_node(with("a", "once", 10), once).value());
  // Used up: refused, and nothing recorded for the name.
  auto used = store_->enroll_node(with("b", "once", 11), once);
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error().code, Errc::failed_precondition);
  EXPECT_NE(used.error().message.find("'once'"), std::string::npos) << used.error().message;
  EXPECT_FALSE(store_->get_node_credential("b").value().has_value());

  // Expired at its time.
  EXPECT_TRUE(store_->enroll_node(with("c", "soon", 99), soon).value());
  EXPECT_FALSE(store_->enroll_node(with("d", "soon", 100), soon));
  // Revoked: once.
  EXPECT_TRUE(store_->revoke_join_token(gone, "alice", 50).value());
  EXPECT_FALSE(store_->revoke_join_token(gone, "bob", 60).value());
  EXPECT_FALSE(store_->enroll_node(with("e", "gone", 70), gone));
  // A taken name counts no use.
  EXPECT_FALSE(store_->enroll_node(with("c", "gone", 70), 0).value());
  EXPECT_FALSE(store_->enroll_node(with("a", "soon", 80), soon).value());

  const auto list = store_->list_join_tokens().value();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "once");
  EXPECT_EQ(list[0].uses, 1);
  EXPECT_EQ(list[0].last_used, 10);
  EXPECT_EQ(list[0].max_uses, 1);
  EXPECT_EQ(list[0].roles, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(list[0].hash, std::string(64, 'o'));
  EXPECT_EQ(list[1].uses, 1);
  EXPECT_EQ(list[1].expires_at, 100);
  EXPECT_EQ(list[2].uses, 0);
  EXPECT_EQ(list[2].revoked_by, "alice");
  EXPECT_EQ(list[2].revoked_at, 50);
}

TEST_F(StoreTest, EnvironmentsAreProtectedAndUnprotected) {
  EXPECT_TRUE(store_->list_environments().value().empty());
  ASSERT_TRUE(store_->save_environment(EnvRecord{"production", true, "alice", 10}));
  ASSERT_TRUE(store_->save_environment(EnvRecord{"staging", false, "bob", 11}));
  ASSERT_TRUE(store_->save_environment(EnvRecord{"production", false, "carol", 12}));
  const auto envs = store_->list_environments().value();
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(envs[0].name, "production");
  EXPECT_FALSE(envs[0].is_protected);
  EXPECT_EQ(envs[0].changed_by, "carol");
  EXPECT_EQ(envs[0].changed_at, 12);
}

TEST_F(StoreTest, NodesEnrolledBeforeSchema11AreBoundToWhatTheyLastRegisteredAs) {
  ASSERT_TRUE(store_->upsert_node(node("web-1")));  // staging, roles api and worker
  ASSERT_TRUE(store_->enroll_node(enrollment("web-1", kShaA, 10)));
  ASSERT_TRUE(store_->enroll_node(enrollment("ghost", kShaB, 10)));
  store_.reset();
  {
    // Back to schema 10: no join tokens, environments, nor what an enrollment binds (and none
    // of schema 12's columns).
    RawDb raw(path());
    raw.exec(
        "DROP INDEX audit_outcomes; ALTER TABLE audit DROP COLUMN outcome_of; "
        "ALTER TABLE audit DROP COLUMN claimed_user; ALTER TABLE artifacts DROP COLUMN "
        "claimed_user; ALTER TABLE runs DROP COLUMN claimed_user; "
        "DROP TABLE environments; DROP TABLE join_tokens; "
        "ALTER TABLE node_credentials DROP COLUMN env; "
        "ALTER TABLE node_credentials DROP COLUMN roles; "
        "ALTER TABLE node_credentials DROP COLUMN join_token; "
        "ALTER TABLE node_credentials DROP COLUMN pending; "
        "ALTER TABLE node_credentials DROP COLUMN approved_by; "
        "ALTER TABLE node_credentials DROP COLUMN approved_at; PRAGMA user_version = 10");
  }
  store_ = open_store();
  auto c = store_->get_node_credential("web-1").value().value();
  EXPECT_EQ(c.hash, kShaA);
  EXPECT_EQ(c.env, "staging");
  EXPECT_EQ(c.roles, (std::vector<std::string>{"api", "worker"}));
  EXPECT_FALSE(c.pending);
  // One the nodes table does not know stays unbound (bound at its next hello).
  EXPECT_EQ(store_->get_node_credential("ghost").value()->env, "");
}

}  // namespace
}  // namespace slipway::store
