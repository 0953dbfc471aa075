// Nothing secret reaches a child of the agent by inheritance (issue 13). Agents get the join token
// each way there is (--token, --token-file, $SLIPWAY_JOIN_TOKEN, and the lab's own --token-file)
// with the admin token in SLIPWAY_TOKEN and a cloud key in their environment, as a careless unit
// file or shell would give them. Then every kind of process an agent starts — the app (`start`),
// its hooks, its health command, drain and undrain commands, and `slipway run` — writes what it
// sees of its own environment and of its parent, the agent (`tr '\0' ' ' </proc/$PPID/cmdline`,
// and /proc/$PPID/environ when it can read it). None of it holds the join token, the admin token
// or the cloud key; all of it holds what it should (so an empty environment, or a broken grep,
// fails the test too). And the agent's files: root 0700, app.log 0640, also tightened.
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include "artifacts/archive.h"
#include "common/fs.h"
#include "common/strings.h"
#include "e2e/harness.h"
#include "net/tls.h"
#include "support/child_process.h"

namespace slipway::e2e {
namespace {

constexpr const char* kCloudKey = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
constexpr const char* kDbPassword = "db-pw-Zq9-s3cr3t-value";
// The children that write what they see (dump.sh WHAT AGENT_PID), and what each should see of the
// app's variables: drain and undrain are the load balancer's commands, not the app's.
const std::vector<std::string> kAppChildren = {"start", "after_install", "before_start",
                                               "after_start", "health"};
const std::vector<std::string> kLbChildren = {"drain", "undrain"};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0xFFFF;
}

// The address `n` after `first` (inside the block unique_first_address handed out).
std::string address_after(const std::string& first, int n) {
  in_addr a{};
  ::inet_pton(AF_INET, first.c_str(), &a);
  a.s_addr = htonl(ntohl(a.s_addr) + static_cast<uint32_t>(n));
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof text);
  return text;
}

class ChildEnvTest : public E2eTest {
 protected:
  void TearDown() override {
    for (auto& a : agents_)
      a.stop();
    E2eTest::TearDown();
  }

  // Starts agent `name` (staging, role api) with the join token given `how` ("flag", "file",
  // "env") and the admin token and a cloud key in its environment; waits until it is alive.
  void start_agent(const std::string& name, const std::string& how, const std::string& address) {
    const fs::path root = roots() / name;
    std::vector<std::string> argv = {SLIPWAY_BIN, "agent",       "--server",  info().server_url,
                                     "--name",    name,          "--env",     "staging",
                                     "--roles",   "api",         "--zone",    "a",
                                     "--root",    root.string(), "--address", address};
    std::map<std::string, std::string> env = {{"SLIPWAY_TOKEN", info().admin_token},
                                              {"AWS_SECRET_ACCESS_KEY", kCloudKey},
                                              {"TZ", "Etc/UTC"},
                                              {"LC_MESSAGES", "C"}};
    if (how == "flag") {
      argv.insert(argv.end(), {"--token", info().join_token});
    } else if (how == "file") {
      const fs::path file = dir() / "agent-join.token";
      if (auto st = write_file_atomic(file, info().join_token + "\n", 0600); !st) {
        throw std::runtime_error(st.error().message);
      }
      argv.insert(argv.end(), {"--token-file", file.string()});
    } else {
      env["SLIPWAY_JOIN_TOKEN"] = info().join_token;
    }
    auto& agent = agents_.emplace_back();
    agent.start({.argv = argv,
                 .env = env,
                 .stdout_path = dir() / (name + ".out"),
                 .stderr_path = dir() / (name + ".log")});
    const bool alive = wait_until(
        [&] {
          auto r = http("GET", "/api/v1/nodes/" + name);
          return r.status == 200 && str(parse(r.body, "node"), "state") == "alive";
        },
        Millis(30'000));
    if (!alive) {
      throw std::runtime_error(fmt::format("agent {} did not come up ({}):\n{}", name,
                                           agent.describe(), slurp(dir() / (name + ".log"))));
    }
  }

  // web 1.0.0: each of its commands writes what it sees into the dump directory.
  fs::path release_that_dumps() {
    const fs::path script = dir() / "dump.sh";
    std::ofstream(script) << fmt::format(
        "# dump.sh WHAT AGENT_PID: what this child sees of itself and of the agent\n"
        "out=\"{}/$1-$SLIPWAY_NODE\"\n"
        "env > \"$out.env\"\n"
        "tr '\\0' ' ' < \"/proc/$2/cmdline\" > \"$out.cmdline\"\n"
        "cat \"/proc/$2/environ\" > \"$out.agent-environ\" 2>/dev/null || "
        "echo '(unreadable)' > \"$out.agent-environ\"\n",
        dumps().string());
    // $PPID, expanded by the shell the agent starts for each command: the agent itself.
    const std::string dump = "sh " + script.string();
    const std::string manifest = fmt::format(
        "start: {0} start $PPID && exec sleep 3600\n"
        "env:\n  FROM_MANIFEST: manifest-value\n"
        "hooks:\n"
        "  after_install: {0} after_install $PPID\n"
        "  before_start: {0} before_start $PPID\n"
        "  after_start: {0} after_start $PPID\n"
        "health:\n  command: {0} health $PPID\n  timeout: 60s\n  healthy_for: 300ms\n"
        "  interval: 200ms\n"
        "drain: {0} drain $PPID\n"
        "undrain: {0} undrain $PPID\n",
        dump);
    artifacts::ArchiveEntry yaml;
    yaml.path = "slipway.yaml";
    yaml.content = manifest;
    const fs::path archive = dir() / "web-1.0.0.tar.gz";
    if (auto st = artifacts::write_tar_gz(archive, {yaml}); !st) {
      throw std::runtime_error(st.error().message);
    }
    return archive;
  }

  fs::path roots() const { return dir() / "roots"; }
  fs::path dumps() const { return dir() / "dumps"; }
  std::vector<testing::ChildProcess> agents_;
};

TEST_F(ChildEnvTest, NoTokenNorTheAgentsOwnVariablesReachAnyChild) {
  ASSERT_NO_THROW(start_lab(1));
  const std::string join_secret = net::parse_join_token(info().join_token).value().secret;
  const std::string admin_token = info().admin_token;
  ASSERT_FALSE(join_secret.empty());
  fs::create_directories(dumps());

  // node-file's root and app.log exist already, open to everyone: the agent tightens them.
  fs::create_directories(roots() / "node-file" / "apps" / "web");
  std::ofstream(roots() / "node-file" / "apps" / "web" / "app.log") << "an old line\n";
  fs::permissions(roots() / "node-file", fs::perms(0755));
  fs::permissions(roots() / "node-file" / "apps" / "web" / "app.log", fs::perms(0644));

  const std::string first = unique_first_address(3);
  const std::vector<std::pair<std::string, std::string>> ways = {
      {"node-flag", "flag"}, {"node-file", "file"}, {"node-env", "env"}};
  for (size_t i = 0; i < ways.size(); ++i) {
    ASSERT_NO_THROW(
        start_agent(ways[i].first, ways[i].second, address_after(first, static_cast<int>(i))));
  }
  EXPECT_NE(slurp(dir() / "node-file.log").find("had mode 0755: made it 0700"), std::string::npos)
      << slurp(dir() / "node-file.log");

  // The app's config and secret, then a deploy to all four nodes.
  auto r = cli({"config", "set", "--env", "staging", "--app", "web", "GREETING=hello-config"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli_stdin({"secret", "set", "--env", "staging", "--app", "web", "DB_PASSWORD"}, kDbPassword);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release_that_dumps(), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--strategy", "all"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // And an ad-hoc command on every node.
  r = cli({"run", "--env", "staging", "--", "sh", "-c",
           "env; echo; tr '\\0' ' ' </proc/$PPID/cmdline; echo; cat /proc/$PPID/environ"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string run_output = r.out;

  const std::vector<std::string> nodes = {"node-1", "node-flag", "node-file", "node-env"};
  std::map<std::string, std::string> seen;  // file name -> content: everything the children wrote
  for (const auto& e : fs::directory_iterator(dumps()))
    seen[e.path().filename().string()] = slurp(e.path());
  seen["slipway run"] = run_output;

  // What must never be there, in anything a child wrote.
  for (const auto& [file, text] : seen) {
    EXPECT_EQ(text.find(join_secret), std::string::npos) << "join token in " << file << ":\n"
                                                         << text;
    EXPECT_EQ(text.find(admin_token), std::string::npos) << "admin token in " << file << ":\n"
                                                         << text;
    EXPECT_EQ(text.find(kCloudKey), std::string::npos) << "cloud key in " << file << ":\n" << text;
  }

  // What must be there: every child of every node wrote, saw its parent's command line, and got
  // the allowlist, the SLIPWAY_* variables, and (for the app's own) the manifest's env and the
  // app's config and secret.
  auto has = [&](const std::string& file, const std::string& needle) {
    const auto it = seen.find(file);
    return it != seen.end() && it->second.find(needle) != std::string::npos;
  };
  for (const auto& node : nodes) {
    std::vector<std::string> children = kAppChildren;
    children.insert(children.end(), kLbChildren.begin(), kLbChildren.end());
    for (const auto& child : children) {
      const std::string env = child + "-" + node + ".env";
      const std::string cmdline = child + "-" + node + ".cmdline";
      EXPECT_TRUE(has(env, "PATH=")) << env;
      EXPECT_TRUE(has(env, "SLIPWAY_NODE=" + node + "\n")) << env;
      EXPECT_TRUE(has(cmdline, " agent --server ")) << cmdline;
      EXPECT_TRUE(has(cmdline, "--name " + node + " ")) << cmdline;
      if (node != "node-1") {  // the lab's agent has the test's environment
        EXPECT_TRUE(has(env, "TZ=Etc/UTC\n")) << env;
        EXPECT_TRUE(has(env, "LC_MESSAGES=C\n")) << env;
      }
      const bool app =
          std::find(kAppChildren.begin(), kAppChildren.end(), child) != kAppChildren.end();
      EXPECT_EQ(has(env, "GREETING=hello-config\n"), app) << env;
      EXPECT_EQ(has(env, std::string("DB_PASSWORD=") + kDbPassword + "\n"), app) << env;
      EXPECT_EQ(has(env, "FROM_MANIFEST=manifest-value\n"), app) << env;
      EXPECT_EQ(has(env, "SLIPWAY_TARGET_NODE=" + node + "\n"), !app) << env;
      EXPECT_FALSE(has(env, "SLIPWAY_TOKEN=")) << env;
      EXPECT_FALSE(has(env, "SLIPWAY_JOIN_TOKEN=")) << env;
      EXPECT_FALSE(has(env, "AWS_SECRET_ACCESS_KEY=")) << env;
    }
    EXPECT_TRUE(has("slipway run", "SLIPWAY_NODE=" + node + "\n")) << run_output;
    EXPECT_TRUE(has("slipway run", "--name " + node + " ")) << run_output;
  }
  // The token given on the command line is there no more: overwritten in place.
  EXPECT_TRUE(has("start-node-flag.cmdline", "--token xxxxxxxx"))
      << seen["start-node-flag.cmdline"];
  EXPECT_TRUE(has("start-node-1.cmdline", "--token-file ")) << seen["start-node-1.cmdline"];

  // The agent's files: its root is its user's only, the app's log is not for everyone.
  for (const auto& node : nodes) {
    const fs::path root = node == "node-1" ? node_root(node) : roots() / node;
    EXPECT_EQ(mode_of(root), 0700u) << node;
    EXPECT_EQ(mode_of(root / "apps" / "web" / "app.log"), 0640u) << node;
  }
  EXPECT_NE(slurp(roots() / "node-file" / "apps" / "web" / "app.log").find("an old line"),
            std::string::npos);
}

// How `slipway agent` answers a join token given no way, two ways, or in a file others can read:
// exit code 2 and what to do, before it connects anywhere (the server is never reached).
TEST_F(ChildEnvTest, TheJoinTokenIsGivenOneWayAndItsFileIsPrivate) {
  const fs::path file = dir() / "join.token";
  ASSERT_TRUE(write_file_atomic(file, "the-join-secret\n", 0644));
  const std::vector<std::string> agent = {
      SLIPWAY_BIN, "agent",   "--server", "http://127.0.0.1:9",     "--name", "n1",
      "--env",     "staging", "--root",   (dir() / "root").string()};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = agent;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };

  auto r = run_process(agent, {{"SLIPWAY_JOIN_TOKEN", ""}}, Millis(30'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("the join token is required: --token-file FILE"), std::string::npos)
      << r.describe();

  r = run_process(with({"--token-file", file.string()}), {}, Millis(30'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("has mode 0644, open to other users: chmod 600 " + file.string()),
            std::string::npos)
      << r.describe();
  EXPECT_EQ(r.all().find("the-join-secret"), std::string::npos) << r.describe();

  fs::permissions(file, fs::perms(0600));
  r = run_process(with({"--token", "the-join-secret"}), {{"SLIPWAY_JOIN_TOKEN", "other"}},
                  Millis(30'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("the join token is given 2 times (--token, $SLIPWAY_JOIN_TOKEN): give it "
                       "one way only"),
            std::string::npos)
      << r.describe();
  EXPECT_FALSE(fs::exists(dir() / "root")) << "nothing is written before the token is settled";
}

}  // namespace
}  // namespace slipway::e2e
