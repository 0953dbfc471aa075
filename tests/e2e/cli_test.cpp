// The CLI as a user meets it: exit codes, --help, the demo and `slipway lab`.
#include <csignal>

#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

using CliTest = E2eTest;

TEST_F(CliTest, ExitCode3WhenTheServerRefusesTheTokenOrCannotBeReached) {
  ASSERT_NO_THROW(start_lab(0));
  const std::string server = info().server_url;
  for (std::vector<std::string> args : {std::vector<std::string>{"versions", "web"},
                                        {"nodes"},
                                        {"status"},
                                        {"history"},
                                        {"deploy", "web", "--env", "staging"},
                                        {"rollback", "web", "--env", "staging"},
                                        {"run", "--env", "staging", "--", "true"}}) {
    auto r = cli_env(args, {{"SLIPWAY_SERVER", server}, {"SLIPWAY_TOKEN", "slw_not_the_token"}});
    EXPECT_EQ(r.exit_code, 3) << args[0] << " with a wrong token: " << r.describe();
    EXPECT_NE(r.err.find("token"), std::string::npos) << r.describe();
    // No token at all.
    r = cli_env(args, {{"SLIPWAY_SERVER", server}, {"SLIPWAY_TOKEN", ""}});
    EXPECT_EQ(r.exit_code, 3) << args[0] << " without a token: " << r.describe();
  }
  // --token beats the environment.
  auto r = cli_env({"nodes", "--token", "wrong-token-given-as-a-flag"},
                   {{"SLIPWAY_SERVER", server}, {"SLIPWAY_TOKEN", info().admin_token}});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli_env({"nodes", "--token", info().admin_token, "--server", server},
              {{"SLIPWAY_SERVER", ""}, {"SLIPWAY_TOKEN", ""}});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // A port where nothing listens: a socket bound but not listening refuses connections, and
  // holding it keeps anyone else from taking the port meanwhile.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string closed = fmt::format("http://127.0.0.1:{}", ntohs(a.sin_port));
  for (std::vector<std::string> args : {std::vector<std::string>{"versions", "web"},
                                        {"nodes"},
                                        {"deploy", "web", "--env", "staging"},
                                        {"watch", "1"}}) {
    auto u = cli_env(args, {{"SLIPWAY_SERVER", closed}, {"SLIPWAY_TOKEN", info().admin_token}},
                     Millis(120'000));
    EXPECT_EQ(u.exit_code, 3) << args[0] << " against " << closed << ": " << u.describe();
    EXPECT_NE(u.err.find("cannot reach"), std::string::npos) << u.describe();
  }
  auto p = cli_env({"push", release("1.0.0").string(), "--app", "web", "--version", "1.0.0"},
                   {{"SLIPWAY_SERVER", closed}, {"SLIPWAY_TOKEN", info().admin_token}});
  EXPECT_EQ(p.exit_code, 3) << p.describe();
  ::close(fd);
}

TEST_F(CliTest, HelpForEverySubcommand) {
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"server"},
      {"agent"},
      {"push"},
      {"versions"},
      {"nodes"},
      {"status"},
      {"deploy"},
      {"rollback"},
      {"watch"},
      {"abort"},
      {"pause"},
      {"resume"},
      {"promote"},
      {"history"},
      {"history", "show"},
      {"freeze"},
      {"freezes"},
      {"unfreeze"},
      {"run"},
      {"lab"},
      {"lab", "up"},
      {"lab", "down"},
      {"lab", "status"},
      {"demo"},
      {"lb"},
      {"lb", "set"},
      {"lb", "show"},
      {"lb", "clear"},
      {"audit", "verify"},
      {"secret", "rotate-key"},
  };
  for (auto args : commands) {
    std::string name = "slipway";
    for (const auto& a : args)
      name += " " + a;
    args.push_back("--help");
    auto r = cli_env(args, {{"SLIPWAY_SERVER", ""}, {"SLIPWAY_TOKEN", ""}}, Millis(30'000));
    EXPECT_EQ(r.exit_code, 0) << name << " --help: " << r.describe();
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << name << " --help: " << r.describe();
    if (!args.empty() && args.size() > 1) {
      EXPECT_NE(r.out.find(args[args.size() - 2]), std::string::npos) << name << ": " << r.out;
    }
  }
  auto v = cli_env({"--version"}, {});
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_NE(v.out.find("slipway "), std::string::npos) << v.describe();

  // Bad usage is exit code 2.
  for (std::vector<std::string> args : {std::vector<std::string>{},
                                        {"nosuchcommand"},
                                        {"deploy"},
                                        {"deploy", "web"},
                                        {"push", "x.tar.gz"},
                                        {"watch", "abc"},
                                        {"lab"},
                                        {"history", "show"},
                                        {"freeze", "--env", "staging"},
                                        {"unfreeze", "0"},
                                        {"run"},
                                        {"run", "--env", "staging"},
                                        {"run", "--", "true"},
                                        {"nodes", "-o", "yaml"}}) {
    auto r = cli_env(args, {{"SLIPWAY_SERVER", ""}, {"SLIPWAY_TOKEN", ""}}, Millis(30'000));
    std::string name = "slipway";
    for (const auto& a : args)
      name += " " + a;
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.describe();
  }
}

TEST_F(CliTest, LabUpDetachedThenDown) {
  const fs::path lab_dir = dir() / "lab-cli";
  detached_labs_.push_back(lab_dir);
  auto r = cli_env({"lab", "up", "--dir", lab_dir.string(), "--nodes", "2", "--first-address",
                    unique_first_address(2)},
                   {{"SLIPWAY_SERVER", ""}, {"SLIPWAY_TOKEN", ""}}, Millis(120'000));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("lab up: server http://"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("slipway lab down --dir"), std::string::npos) << r.describe();

  auto state = lab::load_state(lab_dir);
  ASSERT_TRUE(state) << state.error().message;
  ASSERT_EQ(state->nodes.size(), 2u);
  std::vector<pid_t> pids = {state->server_pid};
  for (const auto& n : state->nodes)
    pids.push_back(n.pid);
  for (pid_t p : pids) {
    ASSERT_GT(p, 0);
    EXPECT_FALSE(process_gone(p)) << "pid " << p << " should run after `lab up`";
  }

  // It outlived the CLI and answers: the nodes are there.
  auto nodes = cli_env({"nodes", "-o", "json"}, {{"SLIPWAY_SERVER", state->server_url},
                                                 {"SLIPWAY_TOKEN", state->admin_token}});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.describe();
  auto j = parse(nodes.out, "slipway nodes -o json");
  EXPECT_EQ(arr(j, "nodes").size(), 2u) << nodes.out;
  auto st = cli_env({"lab", "status", "--dir", lab_dir.string()}, {});
  EXPECT_EQ(st.exit_code, 0) << st.describe();
  EXPECT_NE(st.out.find("node-2"), std::string::npos) << st.describe();

  // A second `lab up` in the same directory is refused.
  auto again = cli_env({"lab", "up", "--dir", lab_dir.string(), "--nodes", "1", "--first-address",
                        unique_first_address(1)},
                       {}, Millis(60'000));
  EXPECT_EQ(again.exit_code, 2) << again.describe();

  auto down = cli_env({"lab", "down", "--dir", lab_dir.string()}, {}, Millis(60'000));
  EXPECT_EQ(down.exit_code, 0) << down.describe();
  for (pid_t p : pids) {
    EXPECT_TRUE(wait_until([p] { return process_gone(p); }, Millis(10'000)))
        << "pid " << p << " still runs after `lab down`";
  }
  EXPECT_FALSE(fs::exists(lab_dir / "lab.json"));
  // Down again: nothing runs there.
  auto twice = cli_env({"lab", "down", "--dir", lab_dir.string()}, {}, Millis(60'000));
  EXPECT_EQ(twice.exit_code, 2) << twice.describe();
}

TEST_F(CliTest, TheDemoRunsToTheEnd) {
  const fs::path demo_dir = dir() / "demo";
  auto r = cli_env({"demo", "--exit-when-done", "--dir", demo_dir.string()},
                   {{"SLIPWAY_SERVER", ""}, {"SLIPWAY_TOKEN", ""}}, Millis(240'000));
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const char* line : {
           "pushed web 1.0.0",
           "pushed web 1.1.0",
           "pushed web 1.2.0",
           "succeeded: 5/5 node(s) healthy on web 1.0.0",
           "succeeded: 5/5 node(s) healthy on web 1.1.0",
           "of web 1.2.0 FAILED and was rolled back",
           "went back to 1.1.0 by itself",
           "Artifact downloads from the server during the rollback: 0",
           "succeeded: 5/5 node(s) healthy on web 1.0.0",
           "rolled_back",
           "export SLIPWAY_SERVER=",
           "stopping the server and the agents",
           "done.",
       }) {
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.describe();
  }
  EXPECT_EQ(r.out.find("the demo expected exit code"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
