// The exec messages of the agent protocol (ad-hoc commands): round trips, strict decoding, and
// the bounds on what a server may ask an agent to run and what an agent may report.
#include <string>
#include <variant>

#include <gtest/gtest.h>

#include "protocol/agent_protocol.h"

namespace slipway::protocol {
namespace {

// One field of a message and the value a test gives it.
struct Field {
  // A template, so that a literal 0 is an int here rather than an ambiguous null pointer.
  template <class V>
  Field(std::string f, V v) : field(std::move(f)), value(v) {}
  std::string field;
  json::value value;
};

ExecCommand exec_command() {
  ExecCommand c;
  c.action = "x12.3";
  c.argv = {"sh", "-c", "echo \"$1\" 'a b' $(id) ; `x`", "--", "", "ünïcode"};
  c.env = {{"SLIPWAY_RUN", "12"}, {"_X1", "v=1"}};
  c.timeout_ms = 30'000;
  return c;
}

json::object exec_json() {
  return parse_json(encode(ServerMessage{exec_command()}), "exec").value().as_object();
}

ExecResult exec_result() {
  ExecResult r;
  r.action = "x12.3";
  r.exit_code = 3;
  r.signal = 0;
  r.timed_out = false;
  r.output = "hello\nworld\n";
  r.started_at = 1'700'000'000'123;
  r.duration_ms = 42;
  return r;
}

json::object result_json() {
  return parse_json(encode(AgentMessage{exec_result()}), "exec_result").value().as_object();
}

void expect_server_error(const json::object& o, const std::string& needle) {
  auto m = decode_server_message(to_json(o));
  ASSERT_FALSE(m) << to_json(o).substr(0, 300);
  EXPECT_EQ(m.error().code, Errc::invalid_argument);
  EXPECT_NE(m.error().message.find(needle), std::string::npos) << m.error().message;
  EXPECT_LT(m.error().message.size(), 1000u);
}

void expect_agent_error(const json::object& o, const std::string& needle) {
  auto m = decode_agent_message(to_json(o));
  ASSERT_FALSE(m) << to_json(o).substr(0, 300);
  EXPECT_EQ(m.error().code, Errc::invalid_argument);
  EXPECT_NE(m.error().message.find(needle), std::string::npos) << m.error().message;
}

TEST(ExecProtocol, ExecRoundTripsArgumentsVerbatim) {
  const auto c = exec_command();
  const std::string text = encode(ServerMessage{c});
  auto back = decode_server_message(text);
  ASSERT_TRUE(back) << text << ": " << back.error().message;
  ASSERT_TRUE(std::holds_alternative<ExecCommand>(*back)) << text;
  const auto& b = std::get<ExecCommand>(*back);
  EXPECT_EQ(b.action, c.action);
  EXPECT_EQ(b.argv, c.argv);
  EXPECT_EQ(b.env, c.env);
  EXPECT_EQ(b.timeout_ms, c.timeout_ms);
  EXPECT_EQ(exec_json().at("type").as_string(), "exec");
}

TEST(ExecProtocol, ExecResultRoundTrips) {
  for (auto r : {exec_result(), ExecResult{"x1.1", -1, 9, false, "", 1, 0},
                 ExecResult{"x1.2", -1, 0, true, "partial", 5, 2000}}) {
    const std::string text = encode(AgentMessage{r});
    auto back = decode_agent_message(text);
    ASSERT_TRUE(back) << text << ": " << back.error().message;
    ASSERT_TRUE(std::holds_alternative<ExecResult>(*back)) << text;
    const auto& b = std::get<ExecResult>(*back);
    EXPECT_EQ(b.action, r.action);
    EXPECT_EQ(b.exit_code, r.exit_code);
    EXPECT_EQ(b.signal, r.signal);
    EXPECT_EQ(b.timed_out, r.timed_out);
    EXPECT_EQ(b.output, r.output);
    EXPECT_EQ(b.started_at, r.started_at);
    EXPECT_EQ(b.duration_ms, r.duration_ms);
  }
}

TEST(ExecProtocol, OutputThatIsNotUtf8TravelsAsReplacementCharacters) {
  auto r = exec_result();
  r.output = std::string("ok \xff\xfe end", 9);
  auto back = decode_agent_message(encode(AgentMessage{r}));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<ExecResult>(*back).output, "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
}

TEST(ExecProtocol, MalformedExecIsRefused) {
  // Unknown fields are refused, unlike in the other server messages: an older agent must not run
  // a command while ignoring what the server said about how.
  auto o = exec_json();
  o["user"] = "root";
  expect_server_error(o, "unknown field 'user'");

  o = exec_json();
  o["argv"] = json::array{};
  expect_server_error(o, "argv");
  o["argv"] = json::array{""};
  expect_server_error(o, "argv");
  o["argv"] = "echo hi";
  expect_server_error(o, "argv");
  o["argv"] = json::array{"echo", 5};
  expect_server_error(o, "argv");
  o = exec_json();
  o.erase("argv");
  expect_server_error(o, "argv");

  json::array many;
  for (size_t i = 0; i <= kExecMaxArgs; ++i)
    many.emplace_back("x");
  o = exec_json();
  o["argv"] = many;
  expect_server_error(o, "at most 64");
  o["argv"] = json::array{"echo", std::string(kExecMaxArgBytes + 1, 'a')};
  expect_server_error(o, "argv[1]");
  o["argv"] = json::array{"echo", std::string("a\0b", 3)};
  expect_server_error(o, "NUL");
  json::array big;
  for (int i = 0; i < 40; ++i)
    big.emplace_back(std::string(kExecMaxArgBytes, 'b'));
  o["argv"] = big;
  expect_server_error(o, "in all");

  for (const auto& [k, v] : std::vector<Field>{{"timeout_ms", 0},
                                               {"timeout_ms", -5},
                                               {"timeout_ms", kExecMaxTimeoutMs + 1},
                                               {"timeout_ms", "60s"},
                                               {"action", ""},
                                               {"action", std::string(200, 'a')},
                                               {"action", 7},
                                               {"env", json::object{{"1BAD", "x"}}},
                                               {"env", json::object{{"A=B", "x"}}},
                                               {"env", json::object{{"OK", 1}}},
                                               {"env", json::array{}}}) {
    o = exec_json();
    o[k] = v;
    expect_server_error(o, "");
  }
  o = exec_json();
  o.erase("timeout_ms");
  expect_server_error(o, "timeout_ms");
}

TEST(ExecProtocol, MalformedExecResultIsRefused) {
  auto o = result_json();
  o["stderr"] = "";
  expect_agent_error(o, "unknown field 'stderr'");
  for (const auto& [k, v] : std::vector<Field>{{"exit_code", 256},
                                               {"exit_code", -2},
                                               {"exit_code", int64_t{1} << 32},
                                               {"exit_code", "0"},
                                               {"signal", 200},
                                               {"signal", -1},
                                               {"timed_out", "no"},
                                               {"output", 5},
                                               {"output", std::string(kExecMaxOutput + 1000, 'o')},
                                               {"duration_ms", -1},
                                               {"started_at", 1.5},
                                               {"action", ""},
                                               {"action", std::string(300, 'a')}}) {
    o = result_json();
    o[k] = v;
    expect_agent_error(o, "");
  }
  o = result_json();
  o.erase("exit_code");
  expect_agent_error(o, "exit_code");
}

TEST(ExecProtocol, ArgvValidation) {
  EXPECT_TRUE(validate_exec_argv({"echo"}));
  EXPECT_TRUE(validate_exec_argv({"echo", "", "a b", "$(x)"}));
  EXPECT_FALSE(validate_exec_argv({}));
  EXPECT_FALSE(validate_exec_argv({""}));
  EXPECT_FALSE(validate_exec_argv(std::vector<std::string>(kExecMaxArgs + 1, "x")));
  EXPECT_TRUE(validate_exec_argv(std::vector<std::string>(kExecMaxArgs, "x")));
}

}  // namespace
}  // namespace slipway::protocol
