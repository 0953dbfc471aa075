// `slipway run`: ad-hoc commands on real agents — output and exit code per node, failures,
// selection, batches, timeouts, arguments that must not meet a shell, nodes that are gone, the
// history, and hostile input to the API.
#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

using RunTest = E2eTest;

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

TEST_F(RunTest, EchoOnEveryNodeFailuresSelectionAndHistory) {
  ASSERT_NO_THROW(start_lab(3));

  // Everything at once: every node's output under its own header, exit code 0.
  auto r = cli({"run", "--env", "staging", "--", "echo", "hello"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* node : {"node-1", "node-2", "node-3"}) {
    EXPECT_NE(r.out.find(fmt::format("==> {} (exit 0, ", node)), std::string::npos) << r.describe();
  }
  EXPECT_EQ(count_of(r.out, "\nhello\n"), 3u) << r.describe();
  EXPECT_NE(r.out.find("3/3 node(s) ok"), std::string::npos) << r.describe();

  // Failing on one node: exit code 1, and that node's exit code shown.
  r = cli({"run", "--env", "staging", "--", "sh", "-c",
           "echo \"I am $SLIPWAY_NODE\"; test \"$SLIPWAY_NODE\" != node-2"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("==> node-2 (exit 1, "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> node-1 (exit 0, "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("I am node-2"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("1 of 3 node(s) failed"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("node-2 (exit 1)"), std::string::npos) << r.describe();

  // Arguments reach the program as they were given: no shell expands them on the way.
  const std::vector<std::string> words = {"a b", "$(echo injected)", "`id`", "it's \"quoted\"",
                                          "*",   "$HOME;echo x",     ""};
  std::vector<std::string> args = {"run", "--env", "staging", "--zone",
                                   "a",   "--",    "printf",  "[%s]\\n"};
  args.insert(args.end(), words.begin(), words.end());
  r = cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string expected;
  for (const auto& w : words)
    expected += "[" + w + "]\n";
  EXPECT_EQ(count_of(r.out, expected), 2u) << r.describe();
  // Zone a is node-1 and node-3.
  EXPECT_NE(r.out.find("==> node-1 "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> node-3 "), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("==> node-2 "), std::string::npos) << r.describe();

  // Roles: every lab node is an api node; nobody is a db node.
  r = cli({"run", "--env", "staging", "--role", "api", "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("3/3 node(s) ok"), std::string::npos) << r.describe();
  r = cli({"run", "--env", "staging", "--role", "db", "--", "true"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no node matches env=staging role=db"), std::string::npos) << r.describe();
  r = cli({"run", "--env", "staging", "--selector", "zone=b", "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("1/1 node(s) ok"), std::string::npos) << r.describe();

  // One node at a time: three waves, each node finishing in its wave's order.
  // (-o json before the command: everything after -- is the command's.)
  r = cli({"run", "-o", "json", "--env", "staging", "--batch", "1", "--", "uname", "-n"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto j = parse(r.out, "run -o json");
  EXPECT_EQ(str(j, "state"), "succeeded") << to_json(j);
  EXPECT_EQ(i64(j, "batches"), 3) << to_json(j);
  EXPECT_EQ(str(j, "batch"), "1") << to_json(j);
  const auto& nodes = arr(j, "nodes");
  ASSERT_EQ(nodes.size(), 3u) << to_json(j);
  for (size_t i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(str(nodes[i], "node"), fmt::format("node-{}", i + 1)) << to_json(j);
    EXPECT_EQ(i64(nodes[i], "batch"), static_cast<int64_t>(i)) << to_json(j);
    EXPECT_EQ(i64(nodes[i], "seq"), static_cast<int64_t>(i + 1)) << to_json(j);
    EXPECT_EQ(str(nodes[i], "status"), "ok") << to_json(j);
    EXPECT_EQ(i64(nodes[i], "exit_code"), 0) << to_json(j);
  }

  // A timeout kills the command.
  r = cli({"run", "--env", "staging", "--zone", "b", "--timeout", "1s", "--", "sleep", "30"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("==> node-2 (timed out, "), std::string::npos) << r.describe();

  // A command that does not exist fails like in a shell, with exit code 127.
  r = cli({"run", "--env", "staging", "--zone", "b", "--", "no-such-command-here"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("==> node-2 (exit 127, "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("command not found"), std::string::npos) << r.describe();

  // The history: runs interleaved with deploys, newest first; JSON keeps `deploys` and adds
  // `runs`.
  auto h = cli({"history"});
  ASSERT_EQ(h.exit_code, 0) << h.describe();
  EXPECT_NE(h.out.find("r1 "), std::string::npos) << h.describe();
  EXPECT_NE(h.out.find("echo hello"), std::string::npos) << h.describe();
  EXPECT_NE(h.out.find(" run "), std::string::npos) << h.describe();
  auto hj = cli_json({"history"});
  EXPECT_TRUE(arr(hj, "deploys").empty()) << to_json(hj);
  const auto& runs = arr(hj, "runs");
  // Eight runs: the one for role db matched no node and never started.
  ASSERT_EQ(runs.size(), 8u) << to_json(hj);
  EXPECT_EQ(i64(runs.front(), "id"), 8) << to_json(hj);
  EXPECT_EQ(str(runs.back(), "command"), "echo hello") << to_json(hj);
  EXPECT_EQ(str(runs.back(), "state"), "succeeded") << to_json(hj);
  EXPECT_EQ(str(runs[6], "state"), "failed") << to_json(hj);
  EXPECT_EQ(i64(runs[6], "failed_count"), 1) << to_json(hj);
  EXPECT_FALSE(str(runs.back(), "actor").empty()) << to_json(hj);

  auto show = cli({"history", "show", "r2"});
  ASSERT_EQ(show.exit_code, 0) << show.describe();
  EXPECT_NE(show.out.find("==> node-2 (exit 1, "), std::string::npos) << show.describe();
  EXPECT_NE(show.out.find("I am node-3"), std::string::npos) << show.describe();
  auto sj = cli_json({"history", "show", "r2"});
  EXPECT_EQ(str(sj, "state"), "failed");
  EXPECT_EQ(arr(sj, "argv").size(), 3u) << to_json(sj);
  show = cli({"history", "show", "r99"});
  EXPECT_EQ(show.exit_code, 2) << show.describe();
  show = cli({"history", "show", "rx"});
  EXPECT_EQ(show.exit_code, 2) << show.describe();
}

TEST_F(RunTest, NodesThatAreNotConnectedFailWithAReason) {
  ASSERT_NO_THROW(start_lab(2));
  // A node whose agent goes away while its command runs fails, and says why.
  auto created =
      http("POST", "/api/v1/runs", R"({"env":"staging","zone":"b","argv":["sleep","30"]})");
  ASSERT_EQ(created.status, 201) << created.body;
  const int64_t id = i64(parse(created.body, "created run"), "id");
  ASSERT_TRUE(lab_.stop_node("node-2"));
  ASSERT_TRUE(wait_until(
      [&] { return str(get_json(fmt::format("/api/v1/runs/{}", id)), "state") != "running"; },
      Millis(60'000)));
  auto lost = get_json(fmt::format("/api/v1/runs/{}", id));
  EXPECT_EQ(str(lost, "state"), "failed") << to_json(lost);
  ASSERT_EQ(arr(lost, "nodes").size(), 1u) << to_json(lost);
  EXPECT_NE(str(arr(lost, "nodes").front(), "reason").find("lost"), std::string::npos)
      << to_json(lost);

  // A node that is not connected when the run starts fails at once.
  ASSERT_TRUE(wait_until(
      [&] {
        auto nodes = status_by_node();
        return nodes.contains("node-2") && str(nodes["node-2"], "state") == "lost";
      },
      Millis(30'000)));
  auto r = cli({"run", "--env", "staging", "--", "echo", "hi"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("==> node-1 (exit 0, "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("==> node-2 (not connected"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("1 of 2 node(s) failed"), std::string::npos) << r.describe();
}

class RunApiTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    start_lab(1);
  }
  void expect_400(const std::string& body, const std::string& what,
                  const std::string& needle = "") {
    auto r = http("POST", "/api/v1/runs", body);
    EXPECT_EQ(r.status, 400) << what << ": " << r.body;
    auto v = parse_json(r.body, what);
    ASSERT_TRUE(v && v->is_object()) << what << ": " << r.body;
    const auto* e = v->as_object().if_contains("error");
    ASSERT_TRUE(e && e->is_object()) << what << ": " << r.body;
    EXPECT_EQ(str(*e, "code"), "invalid_argument") << what << ": " << r.body;
    EXPECT_NE(str(*e, "message").find(needle), std::string::npos) << what << ": " << r.body;
  }
};

TEST_F(RunApiTest, HostileInputIsRefusedWithAClearMessage) {
  std::string many = "[";
  for (int i = 0; i < 65; ++i)
    many += std::string(i ? "," : "") + "\"x\"";
  many += "]";
  const std::string long_arg = "\"" + std::string(5000, 'a') + "\"";
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"malformed JSON", R"({"env": "staging", "argv": ["echo")", ""},
      {"not JSON", "env=staging", ""},
      {"an array", R"(["echo"])", ""},
      {"an unknown field", R"({"env":"staging","argv":["true"],"shell":true})", "shell"},
      {"a missing env", R"({"argv":["true"]})", "env"},
      {"a missing argv", R"({"env":"staging"})", "argv"},
      {"an empty argv", R"({"env":"staging","argv":[]})", "argv"},
      {"an empty command", R"({"env":"staging","argv":[""]})", "argv"},
      {"argv as a string", R"({"env":"staging","argv":"echo hi"})", "argv"},
      {"a number in argv", R"({"env":"staging","argv":["echo",5]})", "argv"},
      {"too many arguments", R"({"env":"staging","argv":)" + many + "}", "at most 64"},
      {"a huge argument", R"({"env":"staging","argv":["echo",)" + long_arg + "]}", "argv[1]"},
      {"a NUL byte", R"({"env":"staging","argv":["echo","a\u0000b"]})", "NUL"},
      {"a bad env name", R"({"env":"../etc","argv":["true"]})", "environment"},
      {"a bad role", R"({"env":"staging","role":"a b","argv":["true"]})", "role"},
      {"a bad zone", R"({"env":"staging","zone":"-x","argv":["true"]})", "zone"},
      {"env in the selector", R"({"env":"staging","selector":"env=prod","argv":["true"]})", "env"},
      {"a bad selector", R"({"env":"staging","selector":"zone in (a","argv":["true"]})", ""},
      {"a bad batch", R"({"env":"staging","batch":"0","argv":["true"]})", "batch"},
      {"a number for the batch", R"({"env":"staging","batch":2,"argv":["true"]})", "batch"},
      {"a bad timeout", R"({"env":"staging","timeout":"soon","argv":["true"]})", "timeout"},
      {"a zero timeout", R"({"env":"staging","timeout":"0s","argv":["true"]})", "timeout"},
      {"a number for the timeout", R"({"env":"staging","timeout":30,"argv":["true"]})", "timeout"},
  };
  for (const auto& [what, body, needle] : cases)
    expect_400(body, what, needle);

  auto r = http("POST", "/api/v1/runs", R"({"env":"production","argv":["true"]})");
  EXPECT_EQ(r.status, 412) << r.body;
  EXPECT_NE(r.body.find("no node matches env=production"), std::string::npos) << r.body;
  r = http("GET", "/api/v1/runs/abc");
  EXPECT_EQ(r.status, 400) << r.body;
  r = http("GET", "/api/v1/runs/12345");
  EXPECT_EQ(r.status, 404) << r.body;
  r = http("GET", "/api/v1/runs?limit=0");
  EXPECT_EQ(r.status, 400) << r.body;
  r = http("POST", "/api/v1/runs", R"({"env":"staging","argv":["true"]})", {}, "");
  EXPECT_EQ(r.status, 401) << r.body;
  r = http("POST", "/api/v1/runs", R"({"env":"staging","argv":["true"]})", {}, info().join_token);
  EXPECT_EQ(r.status, 403) << r.body;

  // Nothing ran; the server still works and runs what is well-formed.
  auto list = get_json("/api/v1/runs");
  EXPECT_TRUE(arr(list, "runs").empty()) << to_json(list);
  r = http("POST", "/api/v1/runs", R"({"env":"staging","argv":["echo","fine"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto created = parse(r.body, "created run");
  const int64_t id = i64(created, "id");
  EXPECT_EQ(arr(created, "nodes").size(), 1u) << r.body;
  ASSERT_TRUE(wait_until(
      [&] { return str(get_json(fmt::format("/api/v1/runs/{}", id)), "state") != "running"; },
      Millis(30'000)));
  auto done = get_json(fmt::format("/api/v1/runs/{}", id));
  EXPECT_EQ(str(done, "state"), "succeeded") << to_json(done);
  EXPECT_EQ(str(arr(done, "nodes").front(), "output"), "fine\n") << to_json(done);
}

}  // namespace
}  // namespace slipway::e2e
