// An environment is a security boundary, on the real binary: a node's environment and roles are
// fixed by the join token that enrolled it, not by what its hello claims.
//   - The two-command chain of issue 13: a deployer scoped to staging runs a command on a staging
//     node, and with the staging join token an agent asks to join production: refused, and it
//     gets nothing (no node, no release, no secret on its disk).
//   - The same with the server's default join token against a protected production.
//   - An enrolled node that claims another environment or role is refused until an admin moves
//     it (`slipway nodes move`); a non-admin cannot.
//   - Join tokens expire, get used up and are revoked, and enroll nothing then (with the reason),
//     while the nodes they enrolled keep working (reconnects and downloads use the node's own
//     credential); a join token with approval enrolls nodes as pending: sent nothing until
//     `slipway nodes approve`, across a server restart.
//   - Hostile input on every route and flag.
// Agents here are processes of the test (not the lab's), each given its own join token.
#include <memory>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/strings.h"
#include "e2e/harness.h"
#include "net/tls.h"
#include "support/child_process.h"

namespace slipway::e2e {
namespace {

using slipway::testing::ChildProcess;
using slipway::testing::read_text;

class EnrollTest : public E2eTest {
 protected:
  struct Agent {
    fs::path root;
    fs::path log;
    std::unique_ptr<ChildProcess> proc;
  };

  void TearDown() override {
    for (auto& [name, a] : agents_) {
      if (a.proc) a.proc->stop();
      if (HasFailure()) {
        std::cerr << "---- agent " << name << " (last lines) ----\n"
                  << slipway::testing::tail_of(a.log, 30) << "\n";
      }
    }
    E2eTest::TearDown();
  }

  // Starts `slipway agent` for node `name` with this join token (its root: ROOT, or one of its
  // own under the test's directory, kept across restarts of the same name).
  void start_agent(const std::string& name, const std::string& env, const std::string& roles,
                   const std::string& token, const fs::path& root = {}) {
    auto& a = agents_[name];
    if (a.proc && a.proc->running()) throw std::runtime_error("agent " + name + " runs already");
    if (a.root.empty()) a.root = root.empty() ? dir() / "agents" / name : root;
    if (a.log.empty()) address_of_[name] = next_address();
    a.log = dir() / "agents" / fmt::format("{}-{}.log", name, ++runs_);
    fs::create_directories(a.log.parent_path());
    std::vector<std::string> argv = {
        SLIPWAY_BIN, "agent",         "--server",  info().server_url, "--token",
        token,       "--name",        name,        "--env",           env,
        "--root",    a.root.string(), "--address", address_of_[name]};
    if (!roles.empty()) argv.insert(argv.end(), {"--roles", roles});
    a.proc = std::make_unique<ChildProcess>();
    a.proc->start({.argv = argv, .env = {}, .stdout_path = a.log, .stderr_path = a.log});
  }

  void stop_agent(const std::string& name) { agents_.at(name).proc->stop(); }
  const Agent& agent(const std::string& name) { return agents_.at(name); }
  std::string agent_log(const std::string& name) { return read_text(agents_.at(name).log); }

  std::string server_log() { return read_text(info().dir / "server" / "server.log"); }

  // Waits until the server logs that it refused node `name` with a reason holding `why`.
  bool refused(const std::string& name, const std::string& why) {
    const std::string line = "refused as node " + name + ": ";
    return wait_until(
        [&] {
          const auto log = server_log();
          for (auto at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) {
            if (log.substr(at, log.find('\n', at) - at).find(why) != std::string::npos) return true;
          }
          return false;
        },
        Millis(30'000));
  }

  // The node's state in GET /api/v1/nodes/NAME, "" when the server does not know it.
  std::string node_state(const std::string& name) {
    auto r = http("GET", "/api/v1/nodes/" + name);
    if (r.status == 404) return "";
    return str(parse(r.body, "node " + name), "state");
  }
  json::value node(const std::string& name) { return get_json("/api/v1/nodes/" + name); }
  bool becomes(const std::string& name, const std::string& state) {
    return wait_until([&] { return node_state(name) == state; }, Millis(30'000));
  }

  // `slipway join-token create ARGS -o json`: the join token (printed once).
  std::string create_join_token(std::vector<std::string> args) {
    args.insert(args.begin(), {"join-token", "create"});
    return str(cli_json(args), "token");
  }

  // A token of `role` scoped to `env` ("" = unscoped).
  std::string api_token(const std::string& role, const std::string& env, const std::string& name) {
    std::vector<std::string> args = {"token", "create", "--role", role, "--name", name};
    if (!env.empty()) args.insert(args.end(), {"--env", env});
    return str(cli_json(args), "token");
  }

  ProcResult cli_as(const std::string& token, const std::vector<std::string>& args) {
    return cli_env(args, {{"SLIPWAY_SERVER", info().server_url}, {"SLIPWAY_TOKEN", token}});
  }

  // Every regular file under `root` whose content holds `needle`.
  static std::vector<std::string> files_holding(const fs::path& root, const std::string& needle) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_regular_file(ec) && read_text(it->path()).find(needle) != std::string::npos)
        out.push_back(it->path().string());
    }
    return out;
  }
  static std::vector<std::string> files_named(const fs::path& root, const std::string& name) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->path().filename() == name) out.push_back(it->path().string());
    }
    return out;
  }

  // Names of the nodes GET /api/v1/nodes lists (every state).
  std::vector<std::string> node_names(const std::string& query = "") {
    std::vector<std::string> out;
    const auto nodes = get_json("/api/v1/nodes" + query);
    for (const auto& n : arr(nodes, "nodes"))
      out.push_back(str(n, "name"));
    return out;
  }

  // Production with a secret and web 1.0.0 deployed on node prod-1 (enrolled with its own join
  // token, roles web); returns the secret's value.
  std::string production_with_a_secret() {
    const std::string prod =
        create_join_token({"--env", "production", "--roles", "web", "--name", "production-web"});
    start_agent("prod-1", "production", "web", prod);
    if (!becomes("prod-1", "alive")) throw std::runtime_error("prod-1 did not come up");
    const std::string secret = "prod-db-" + random_hex(12);
    auto r = http("PUT", "/api/v1/envs/production/apps/web/secrets/DB_PASSWORD",
                  to_json(json::object{{"value", secret}}));
    if (r.status != 200) throw std::runtime_error("secret set: " + r.body);
    auto p = push(release("1.0.0"), "web", "1.0.0");
    if (p.exit_code != 0) throw std::runtime_error("push: " + p.describe());
    p = cli({"deploy", "web", "1.0.0", "--env", "production"});
    if (p.exit_code != 0) throw std::runtime_error("deploy: " + p.describe());
    // The real production node has it: what an intruder would be after.
    if (files_holding(agent("prod-1").root, secret).empty())
      throw std::runtime_error("the production node did not get the secret");
    return secret;
  }

  // Nothing of production reached the machine at `root`: no node enrolled, no release's env
  // file, the secret in none of its files.
  void expect_nothing_reached(const fs::path& root, const std::string& name,
                              const std::string& secret) {
    EXPECT_EQ(node_state(name), "") << to_json(get_json("/api/v1/nodes"));
    for (const auto& n : node_names())
      EXPECT_NE(n, name);
    EXPECT_TRUE(files_named(root, ".slipway-env.json").empty());
    EXPECT_TRUE(files_holding(root, secret).empty());
    EXPECT_FALSE(fs::exists(root / "agent.credential"));
    EXPECT_FALSE(fs::exists(root / "apps" / "web"));
  }

  std::string next_address() {
    if (address_block_.empty() || ++address_index_ > 14) {
      address_block_ = unique_first_address(15);
      address_index_ = 0;
    }
    const auto dot = address_block_.rfind('.');
    return address_block_.substr(0, dot + 1) +
           std::to_string(std::stoi(address_block_.substr(dot + 1)) + address_index_);
  }

  std::map<std::string, Agent> agents_;
  std::map<std::string, std::string> address_of_;
  std::string address_block_;
  int address_index_ = 0;
  int runs_ = 0;
};

// Issue 13, "what was seen" 1 and 2: a staging deployer reaches the staging agent's join token
// (here the test takes it directly, as the attacker would have it) and asks to enroll a machine
// into production with it.
TEST_F(EnrollTest, AStagingJoinTokenEnrollsNothingInProduction) {
  ASSERT_NO_THROW(start_lab(0));
  auto r = cli({"env", "protect", "production"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string staging =
      create_join_token({"--env", "staging", "--roles", "api", "--name", "staging-api"});
  ASSERT_TRUE(staging.starts_with("slwj_")) << staging;
  start_agent("stg-1", "staging", "api", staging);
  ASSERT_TRUE(becomes("stg-1", "alive"));
  std::string secret;
  ASSERT_NO_THROW(secret = production_with_a_secret());

  // Command 1: the staging deployer runs whatever it likes on the staging node.
  const std::string deployer = api_token("deployer", "staging", "staging-ci");
  const fs::path stolen = agent("stg-1").root / "agent.credential";
  r = cli_as(deployer, {"run", "--env", "staging", "--", "sh", "-c",
                        R"(tr "\0" " " </proc/$PPID/cmdline; env; cat )" + stolen.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // Command 2: with the staging join token, an agent asks to be a production web node.
  const fs::path intruder = dir() / "intruder";
  start_agent("anything", "production", "web", staging, intruder);
  EXPECT_TRUE(refused("anything",
                      "join token 'staging-api' enrolls nodes into environment "
                      "staging only, not production"))
      << server_log();
  EXPECT_TRUE(wait_until(
      [&] {
        return agent_log("anything").find("staging only, not production") != std::string::npos;
      },
      Millis(30'000)))
      << agent_log("anything");
  stop_agent("anything");
  expect_nothing_reached(intruder, "anything", secret);

  // With the staging node's own credential (as `cat` printed it): it speaks for stg-1 only, and
  // stg-1 is a staging api node.
  const fs::path intruder2 = dir() / "intruder2";
  ASSERT_TRUE(ensure_dir(intruder2));
  ASSERT_TRUE(write_file_atomic(intruder2 / "agent.credential", read_text(stolen), 0600));
  start_agent("anything-2", "production", "web", staging, intruder2);
  EXPECT_TRUE(refused("anything-2", "node stg-1's, not anything-2's")) << server_log();
  stop_agent("anything-2");
  EXPECT_EQ(node_state("anything-2"), "");
  EXPECT_TRUE(files_named(intruder2, ".slipway-env.json").empty());
  EXPECT_TRUE(files_holding(intruder2, secret).empty());

  // Production has its one node; the staging token enrolled one node, audited.
  EXPECT_EQ(node_names("?env=production"), std::vector<std::string>{"prod-1"});
  auto tokens = cli_json({"join-token", "list"});
  for (const auto& t : arr(tokens, "join_tokens")) {
    if (str(t, "name") == "staging-api") {
      EXPECT_EQ(i64(t, "uses"), 1) << to_json(t);
    }
  }
  const auto audit = to_json(get_json("/api/v1/audit?limit=1000"));
  EXPECT_NE(audit.find("node=stg-1 env=staging roles=api join_token=staging-api"),
            std::string::npos)
      << audit;
  EXPECT_EQ(audit.find("node=anything"), std::string::npos) << audit;
  // The join token's secret is not what the API shows or the database holds.
  EXPECT_EQ(to_json(tokens).find(staging), std::string::npos);
  EXPECT_EQ(read_text(info().dir / "server" / "slipway.db").find(staging), std::string::npos);
}

// The server's default join token (DATA_DIR/join.token) may enroll into any environment that is
// not protected, never into a protected one; the lab (which uses it) keeps working.
TEST_F(EnrollTest, TheDefaultJoinTokenCannotEnrollIntoAProtectedEnvironment) {
  ASSERT_NO_THROW(start_lab(1));  // node-1, staging, through the default join token
  auto r = cli({"env", "protect", "production"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("production is protected"), std::string::npos) << r.describe();
  std::string secret;
  ASSERT_NO_THROW(secret = production_with_a_secret());

  const fs::path intruder = dir() / "intruder";
  start_agent("anything", "production", "web", info().join_token, intruder);
  EXPECT_TRUE(refused("anything", "environment production is protected")) << server_log();
  EXPECT_TRUE(
      wait_until([&] { return agent_log("anything").find("is protected") != std::string::npos; },
                 Millis(30'000)))
      << agent_log("anything");
  stop_agent("anything");
  expect_nothing_reached(intruder, "anything", secret);

  // Into staging it still enrolls (the lab and the demo are unchanged).
  ASSERT_NO_THROW(add_agent("node-2", "staging"));
  EXPECT_EQ(node_state("node-2"), "alive");
  auto envs = cli_json({"env", "list"});
  std::map<std::string, bool> protected_envs;
  for (const auto& e : arr(envs, "envs"))
    protected_envs[str(e, "name")] = boolean(e, "protected");
  EXPECT_EQ(protected_envs,
            (std::map<std::string, bool>{{"production", true}, {"staging", false}}));
  r = cli({"env", "list"});
  EXPECT_NE(r.out.find("protected"), std::string::npos) << r.describe();

  // Unprotected, production takes the default token's nodes again.
  r = cli({"env", "unprotect", "production"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  start_agent("prod-2", "production", "web", info().join_token);
  EXPECT_TRUE(becomes("prod-2", "alive"));
}

TEST_F(EnrollTest, AnEnrolledNodeClaimingAnotherEnvironmentOrRoleIsRefusedUntilMoved) {
  ASSERT_NO_THROW(start_lab(0));
  const std::string token =
      create_join_token({"--env", "staging", "--roles", "api,web", "--name", "staging"});
  start_agent("web-1", "staging", "api", token);
  ASSERT_TRUE(becomes("web-1", "alive"));
  const std::string credential = read_text(agent("web-1").root / "agent.credential");

  // Restarted as a production node: refused, and it stays a (lost) staging node.
  stop_agent("web-1");
  start_agent("web-1", "production", "api", token);
  EXPECT_TRUE(refused("web-1",
                      "enrolled in environment staging with roles api, but its agent "
                      "claims environment production"))
      << server_log();
  EXPECT_TRUE(wait_until(
      [&] {
        return agent_log("web-1").find("restart the agent with --env staging") != std::string::npos;
      },
      Millis(30'000)))
      << agent_log("web-1");
  EXPECT_EQ(str(node("web-1"), "env"), "staging");
  EXPECT_NE(node_state("web-1"), "alive");
  stop_agent("web-1");
  // With a role it was not enrolled with (even one its join token allows): refused.
  start_agent("web-1", "staging", "api,web", token);
  EXPECT_TRUE(refused("web-1", "claims role 'web'")) << server_log();
  stop_agent("web-1");
  // As enrolled: back.
  start_agent("web-1", "staging", "api", token);
  ASSERT_TRUE(becomes("web-1", "alive"));

  // Only an admin moves a node.
  for (const std::string role : {"deployer", "viewer"}) {
    auto r = cli_as(api_token(role, "", "not-admin-" + role),
                    {"nodes", "move", "web-1", "--env", "production"});
    EXPECT_EQ(r.exit_code, 3) << r.describe();
    EXPECT_NE(r.err.find("needs the admin role"), std::string::npos) << r.describe();
  }
  EXPECT_EQ(str(node("web-1"), "env"), "staging");

  auto r = cli({"nodes", "move", "web-1", "--env", "production", "--roles", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("restart it with --env production --roles web"), std::string::npos)
      << r.describe();
  // Its running agent is disconnected, told how to go on, and refused as long as it runs with
  // the old flags.
  EXPECT_TRUE(wait_until(
      [&] {
        return agent_log("web-1").find("restart its agent with --env production --roles web") !=
               std::string::npos;
      },
      Millis(30'000)))
      << agent_log("web-1");
  EXPECT_TRUE(refused("web-1", "enrolled in environment production with roles web"))
      << server_log();
  stop_agent("web-1");
  EXPECT_EQ(str(node("web-1"), "env"), "production");
  start_agent("web-1", "production", "web", token);
  ASSERT_TRUE(becomes("web-1", "alive"));
  EXPECT_EQ(str(node("web-1"), "env"), "production");
  // Same credential: moved, not enrolled again.
  EXPECT_EQ(read_text(agent("web-1").root / "agent.credential"), credential);
  const auto audit = to_json(get_json("/api/v1/audit?limit=1000"));
  EXPECT_NE(audit.find("node.move"), std::string::npos) << audit;
}

// Join tokens end (ttl, uses, revoke) for enrolling, never for the nodes they enrolled.
TEST_F(EnrollTest, JoinTokensExpireGetUsedUpAndRevokedButTheirNodesKeepWorking) {
  ASSERT_NO_THROW(start_lab(0));
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(push(release("2.0.0"), "web", "2.0.0").exit_code, 0);

  // --uses 1: one node, then "used up".
  const std::string once = create_join_token({"--env", "staging", "--uses", "1", "--name", "once"});
  start_agent("a-1", "staging", "api", once);
  ASSERT_TRUE(becomes("a-1", "alive"));
  start_agent("a-2", "staging", "api", once);
  EXPECT_TRUE(wait_until(
      [&] {
        return agent_log("a-2").find("join token 'once' is used up (1 of 1") != std::string::npos;
      },
      Millis(30'000)))
      << agent_log("a-2");
  stop_agent("a-2");
  EXPECT_EQ(node_state("a-2"), "");

  // --ttl: expired, refused with when. (Long enough for b-1 to enroll first on a loaded machine.)
  const std::string brief =
      create_join_token({"--env", "staging", "--ttl", "15s", "--name", "brief"});
  start_agent("b-1", "staging", "api", brief);
  ASSERT_TRUE(becomes("b-1", "alive"));
  ASSERT_TRUE(wait_until(
      [&] {
        const auto tokens = get_json("/api/v1/join-tokens");
        for (const auto& t : arr(tokens, "join_tokens")) {
          if (str(t, "name") == "brief") return str(t, "state") == "expired";
        }
        return false;
      },
      Millis(30'000)));
  start_agent("b-2", "staging", "api", brief);
  EXPECT_TRUE(wait_until(
      [&] { return agent_log("b-2").find("join token 'brief' expired at") != std::string::npos; },
      Millis(30'000)))
      << agent_log("b-2");
  stop_agent("b-2");
  EXPECT_EQ(node_state("b-2"), "");

  // Revoked: refused; listed as revoked.
  const std::string gone = create_join_token({"--env", "staging", "--name", "gone"});
  start_agent("c-1", "staging", "api", gone);
  ASSERT_TRUE(becomes("c-1", "alive"));
  auto r = cli({"join-token", "revoke", "gone"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(cli({"join-token", "revoke", "gone"}).exit_code, 2);
  start_agent("c-2", "staging", "api", gone);
  EXPECT_TRUE(wait_until(
      [&] {
        return agent_log("c-2").find("join token 'gone' was revoked at") != std::string::npos;
      },
      Millis(30'000)))
      << agent_log("c-2");
  stop_agent("c-2");
  EXPECT_EQ(node_state("c-2"), "");
  r = cli({"join-token", "list"});
  EXPECT_NE(r.out.find("used up"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expired"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("revoked"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1/1"), std::string::npos) << r.out;

  // Their nodes: restarted agents reconnect, and a deploy (downloads included) reaches each.
  for (const std::string n : {"a-1", "b-1", "c-1"}) {
    stop_agent(n);
    start_agent(n, "staging", "api", n == "a-1" ? once : n == "b-1" ? brief : gone);
  }
  for (const std::string n : {"a-1", "b-1", "c-1"})
    ASSERT_TRUE(becomes(n, "alive")) << n;
  r = cli({"deploy", "web", "2.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("3/3 node(s) healthy on web 2.0.0"), std::string::npos) << r.describe();
  EXPECT_GE(artifact_downloads(), 3);
  // A join token downloads nothing (it only enrolls).
  const auto blob = http("GET", "/api/v1/blobs/" + std::string(64, '0'), "", {}, gone);
  EXPECT_EQ(blob.status, 401) << blob.body;
  const auto blob2 =
      http("GET", "/api/v1/blobs/" + std::string(64, '0'), "", {}, info().join_token);
  EXPECT_EQ(blob2.status, 403) << blob2.body;

  // Each enrollment was audited (and counted), once.
  const auto audit = to_json(get_json("/api/v1/audit?limit=1000"));
  for (const std::string n : {"a-1", "b-1", "c-1"})
    EXPECT_NE(audit.find("node=" + n + " env=staging"), std::string::npos) << n << audit;
  for (const std::string n : {"a-2", "b-2", "c-2"})
    EXPECT_EQ(audit.find("node=" + n + " "), std::string::npos) << n << audit;
}

TEST_F(EnrollTest, APendingNodeGetsNothingUntilApproved) {
  ASSERT_NO_THROW(start_lab(1));  // node-1: staging
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  auto r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  const std::string token =
      create_join_token({"--env", "staging", "--approve", "--name", "needs-approval"});
  start_agent("new-1", "staging", "api", token);
  EXPECT_TRUE(wait_until(
      [&] { return agent_log("new-1").find("waits for an admin's approval") != std::string::npos; },
      Millis(30'000)))
      << agent_log("new-1");
  EXPECT_EQ(node_state("new-1"), "pending");
  EXPECT_TRUE(boolean(node("new-1"), "connected"));
  EXPECT_EQ(node_names("?state=pending"), std::vector<std::string>{"new-1"});
  r = cli({"nodes", "--state", "pending"});
  EXPECT_NE(r.out.find("slipway nodes approve new-1"), std::string::npos) << r.describe();

  // Nothing picks it: a deploy, a run, convergence (the server converges every second; the deploy
  // and the run below take longer than that).
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.find("new-1"), std::string::npos) << r.out;
  r = cli({"run", "--env", "staging", "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.find("new-1"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(agent("new-1").root / "apps" / "web")) << "a pending node got an install";
  EXPECT_EQ(agent_log("new-1").find("installing"), std::string::npos) << agent_log("new-1");
  EXPECT_EQ(status_by_node().count("new-1"), 0u);

  // Pending survives a restart of the server.
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  ASSERT_TRUE(lab_.wait_for_nodes());
  EXPECT_EQ(node_state("new-1"), "pending");
  EXPECT_TRUE(wait_until([&] { return boolean(node("new-1"), "connected"); }, Millis(30'000)));

  // Only an admin approves; then it converges to staging's release.
  r = cli_as(api_token("deployer", "staging", "ci"), {"nodes", "approve", "new-1"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli({"nodes", "approve", "new-1"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(cli({"nodes", "approve", "new-1"}).exit_code, 2);  // not pending any more
  EXPECT_TRUE(wait_until(
      [&] {
        auto nodes = status_by_node();
        auto it = nodes.find("new-1");
        if (it == nodes.end()) return false;
        const auto* web = obj(it->second).at("apps").as_object().if_contains("web");
        return web && str(*web, "version") == "1.0.0" && boolean(*web, "healthy");
      },
      Millis(60'000)))
      << to_json(get_json("/api/v1/status"));
  EXPECT_EQ(node_state("new-1"), "alive");
  const auto audit = to_json(get_json("/api/v1/audit?limit=1000"));
  EXPECT_NE(audit.find("node.approve"), std::string::npos) << audit;
  EXPECT_NE(audit.find("join_token=needs-approval pending"), std::string::npos) << audit;
}

// Under TLS a join token carries the server CA's fingerprint, as DATA_DIR/join.token does, so that
// the agent pins the CA on its first connection.
TEST_F(EnrollTest, UnderTlsAJoinTokenCarriesTheCaFingerprint) {
  server_args_ = {"--tls"};
  ASSERT_NO_THROW(start_lab(0));
  const std::string token = create_join_token({"--env", "production", "--name", "prod"});
  auto parsed = net::parse_join_token(token);
  ASSERT_TRUE(parsed) << token;
  const auto pin = net::parse_join_token(info().join_token).value().ca_pin;
  ASSERT_FALSE(pin.empty());
  EXPECT_EQ(parsed->ca_pin, pin);
  EXPECT_TRUE(parsed->secret.starts_with("slwj_"));
  start_agent("prod-1", "production", "", token);
  ASSERT_TRUE(becomes("prod-1", "alive"));
  EXPECT_EQ(net::pem_file_fingerprint(agent("prod-1").root / "server-ca.pem").value(), pin);
  // The human form prints it too, once.
  auto r = cli({"join-token", "create", "--env", "staging", "--name", "stg"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find(":" + pin), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--env staging"), std::string::npos) << r.out;
}

TEST_F(EnrollTest, HostileInputOnEveryRouteAndFlag) {
  ASSERT_NO_THROW(start_lab(1));
  struct Case {
    std::string method, target, body;
    int status;
    std::string message;
  };
  const std::string huge(100'000, 'x');
  const std::vector<Case> cases = {
      {"POST", "/api/v1/join-tokens", "", 400, "request body"},
      {"POST", "/api/v1/join-tokens", "[]", 400, ""},
      {"POST", "/api/v1/join-tokens", "{}", 400, "'env' is required"},
      {"POST", "/api/v1/join-tokens", R"({"env":"../etc"})", 400, "environment"},
      {"POST", "/api/v1/join-tokens", R"({"env":"a\u0000b"})", 400, "environment"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","bogus":1})", 400,
       "unknown field 'bogus'"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","roles":"api"})", 400, "roles"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","roles":["a b"]})", 400, "role"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","roles":[1]})", 400, "roles"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","name":"a/b"})", 400, "token name"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","name":"default"})", 400, "join.token"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","name":")" + huge + R"("})", 400,
       "too long"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","ttl":"soon"})", 400, "ttl"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","ttl":"0s"})", 400, "ttl"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","ttl":"99999999d"})", 400, "ttl"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","ttl":5})", 400, "ttl"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","uses":-1})", 400, "uses"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","uses":1000001})", 400, "uses"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","uses":1e300})", 400, "uses"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","uses":"1"})", 400, "uses"},
      {"POST", "/api/v1/join-tokens", R"({"env":"staging","approve":"yes"})", 400, "approve"},
      {"DELETE", "/api/v1/join-tokens/nobody", "", 404, "no join token"},
      {"DELETE", "/api/v1/join-tokens/a%2fb", "", 400, ""},
      {"DELETE", "/api/v1/join-tokens/%2e%2e", "", 400, ""},
      {"POST", "/api/v1/envs/a%20b/protect", "", 400, "environment"},
      {"POST", "/api/v1/envs/%2e%2e/protect", "", 400, ""},
      {"POST", "/api/v1/envs/production/protect", R"({"x":1})", 400, "unknown field 'x'"},
      {"POST", "/api/v1/envs/production/unprotect", "nonsense", 400, "request body"},
      {"POST", "/api/v1/nodes/node-1/move", "", 400, "request body"},
      {"POST", "/api/v1/nodes/node-1/move", "{}", 400, "'env' is required"},
      {"POST", "/api/v1/nodes/node-1/move", R"({"env":"../prod"})", 400, "environment"},
      {"POST", "/api/v1/nodes/node-1/move", R"({"env":"production","roles":["x/y"]})", 400, "role"},
      {"POST", "/api/v1/nodes/node-1/move", R"({"env":"production","also":true})", 400,
       "unknown field 'also'"},
      {"POST", "/api/v1/nodes/node-1/move", R"({"env":")" + huge + R"("})", 400, "too long"},
      {"POST", "/api/v1/nodes/nobody/move", R"({"env":"production"})", 404, "not enrolled"},
      {"POST", "/api/v1/nodes/a%0ab/move", R"({"env":"production"})", 400, "node name"},
      {"POST", "/api/v1/nodes/node-1/approve", "", 409, "not pending"},
      {"POST", "/api/v1/nodes/nobody/approve", "", 404, "not enrolled"},
      {"POST", "/api/v1/nodes/node-1/approve", R"({"now":true})", 400, "unknown field 'now'"},
      {"GET", "/api/v1/nodes?state=waiting", "", 400, "pending"},
  };
  for (const auto& c : cases) {
    const auto r = http(c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target.substr(0, 80) << " "
                                  << c.body.substr(0, 80) << " -> " << r.body.substr(0, 300);
    EXPECT_NE(r.body.find(c.message), std::string::npos)
        << c.target.substr(0, 80) << " " << c.body.substr(0, 80) << " -> " << r.body.substr(0, 300);
  }
  // Nothing was created or changed by all that.
  EXPECT_TRUE(arr(get_json("/api/v1/join-tokens"), "join_tokens").empty());
  const auto envs = get_json("/api/v1/envs");
  for (const auto& e : arr(envs, "envs"))
    EXPECT_FALSE(boolean(e, "protected")) << to_json(e);
  EXPECT_EQ(str(node("node-1"), "env"), "staging");
  // A name is never reused, not even after revocation.
  ASSERT_EQ(http("POST", "/api/v1/join-tokens", R"({"env":"staging","name":"dup"})").status, 201);
  EXPECT_EQ(http("POST", "/api/v1/join-tokens", R"({"env":"staging","name":"dup"})").status, 409);
  EXPECT_EQ(http("DELETE", "/api/v1/join-tokens/dup").status, 200);
  EXPECT_EQ(http("POST", "/api/v1/join-tokens", R"({"env":"staging","name":"dup"})").status, 409);

  // The CLI refuses bad flags before asking the server (usage errors, exit 2).
  const std::vector<std::vector<std::string>> usage = {
      {"join-token", "create"},
      {"join-token", "create", "--env", "../x"},
      {"join-token", "create", "--env", "staging", "--ttl", "soon"},
      {"join-token", "create", "--env", "staging", "--uses", "0"},
      {"join-token", "create", "--env", "staging", "--uses", "-5"},
      {"join-token", "create", "--env", "staging", "--uses", "99999999999999999999"},
      {"join-token", "create", "--env", "staging", "--roles", "a b"},
      {"join-token", "create", "--env", "staging", "--name", "a/b"},
      {"join-token", "revoke", "../x"},
      {"env", "protect", "a/b"},
      {"env", "protect"},
      {"env", "unprotect", std::string(200, 'e')},
      {"nodes", "move", "node-1"},
      {"nodes", "move", "node-1", "--env", "a b"},
      {"nodes", "move", "a/b", "--env", "production"},
      {"nodes", "approve", "$(reboot)"},
      {"nodes", "--state", "waiting"},
  };
  for (const auto& args : usage) {
    const auto r = cli(args);
    EXPECT_EQ(r.exit_code, 2) << join(args, " ") << ": " << r.describe();
  }
  // Hostile bearer tokens shaped like join tokens and node credentials.
  for (const std::string& t :
       {std::string("slwj_"), "slwj_" + std::string(64, 'f'), "slwc_" + std::string(64, 'f'),
        "slwj_" + std::string(8000, 'a'), std::string("slwc_")}) {
    EXPECT_EQ(http("GET", "/api/v1/blobs/" + std::string(64, '0'), "", {}, t).status, 401);
  }
  EXPECT_EQ(node_state("node-1"), "alive");
}

}  // namespace
}  // namespace slipway::e2e
