// The agent protocol (protocol/agent_protocol.h): every message round-trips, decoding is strict,
// and hostile input is refused with an error, never a crash.
#include "protocol/agent_protocol.h"

#include <string>
#include <variant>

#include <gtest/gtest.h>

namespace slipway::protocol {
namespace {

const std::string kSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// One field of a message and the value a test gives it.
struct Field {
  Field(std::string f, json::value v) : field(std::move(f)), value(std::move(v)) {}
  std::string field;
  json::value value;
};

AppState app_state(std::string app = "billing") {
  AppState s;
  s.app = std::move(app);
  s.version = "1.2.0";
  s.healthy = true;
  s.running = true;
  s.port = 31001;
  s.releases = {"1.0.0", "1.1.0", "1.2.0"};
  s.last_healthy = "1.1.0";
  return s;
}

void expect_equal(const AppState& a, const AppState& b) {
  EXPECT_EQ(a.app, b.app);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.healthy, b.healthy);
  EXPECT_EQ(a.running, b.running);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.releases, b.releases);
  EXPECT_EQ(a.last_healthy, b.last_healthy);
}

template <class T>
T agent_round_trip(const T& m) {
  const std::string text = encode(AgentMessage{m});
  auto back = decode_agent_message(text);
  EXPECT_TRUE(back) << text << ": " << (back ? "" : back.error().message);
  if (!back) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*back)) << text;
  return std::holds_alternative<T>(*back) ? std::get<T>(*back) : T{};
}

template <class T>
T server_round_trip(const T& m) {
  const std::string text = encode(ServerMessage{m});
  auto back = decode_server_message(text);
  EXPECT_TRUE(back) << text << ": " << (back ? "" : back.error().message);
  if (!back) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*back)) << text;
  return std::holds_alternative<T>(*back) ? std::get<T>(*back) : T{};
}

std::string agent_error(std::string_view text) {
  auto m = decode_agent_message(text);
  EXPECT_FALSE(m) << text.substr(0, 300);
  if (m) return {};
  EXPECT_EQ(m.error().code, Errc::invalid_argument);
  EXPECT_LT(m.error().message.size(), 1000u);
  return m.error().message;
}

std::string server_error(std::string_view text) {
  auto m = decode_server_message(text);
  EXPECT_FALSE(m) << text.substr(0, 300);
  if (m) return {};
  EXPECT_EQ(m.error().code, Errc::invalid_argument);
  EXPECT_LT(m.error().message.size(), 1000u);
  return m.error().message;
}

// A hello as JSON, with one field replaced by `field_json` (or added when new).
json::object hello_json() {
  Hello h;
  h.name = "web-1";
  h.env = "staging";
  h.roles = {"api"};
  h.zone = "a";
  h.tags = {{"canary", "true"}};
  h.address = "127.0.0.11";
  h.agent_version = "0.1.0";
  h.apps = {app_state()};
  return parse_json(encode(AgentMessage{h}), "x").value().as_object();
}

json::object install_json() {
  InstallCommand c;
  c.action = "a-1";
  c.deploy = 3;
  c.app = "billing";
  c.version = "1.2.0";
  c.sha256 = kSha;
  c.size = 1234;
  c.url = "/api/v1/blobs/" + kSha;
  return parse_json(encode(ServerMessage{c}), "x").value().as_object();
}

TEST(AgentProtocol, HelloRoundTrip) {
  Hello h;
  h.name = "web-1";
  h.env = "production";
  h.roles = {"api", "worker"};
  h.zone = "eu-1a";
  h.tags = {{"canary", "true"}, {"team", "pay@corp"}, {"empty", ""}};
  h.address = "127.0.0.11";
  h.agent_version = "0.1.0";
  h.apps = {app_state("billing"), app_state("search")};
  const auto back = agent_round_trip(h);
  EXPECT_EQ(back.name, h.name);
  EXPECT_EQ(back.env, h.env);
  EXPECT_EQ(back.roles, h.roles);
  EXPECT_EQ(back.zone, h.zone);
  EXPECT_EQ(back.tags, h.tags);
  EXPECT_EQ(back.address, h.address);
  EXPECT_EQ(back.agent_version, h.agent_version);
  ASSERT_EQ(back.apps.size(), 2u);
  expect_equal(back.apps[0], h.apps[0]);
  expect_equal(back.apps[1], h.apps[1]);

  Hello minimal;
  minimal.name = "n";
  minimal.env = "e";
  const auto m = agent_round_trip(minimal);
  EXPECT_TRUE(m.roles.empty());
  EXPECT_TRUE(m.zone.empty());
  EXPECT_TRUE(m.apps.empty());
}

TEST(AgentProtocol, HeartbeatRoundTrip) {
  Heartbeat empty;
  EXPECT_FALSE(agent_round_trip(empty).apps.has_value());
  EXPECT_EQ(encode(AgentMessage{empty}), R"({"type":"heartbeat"})");
  Heartbeat with;
  with.apps = std::vector<AppState>{app_state()};
  const auto back = agent_round_trip(with);
  ASSERT_TRUE(back.apps.has_value());
  ASSERT_EQ(back.apps->size(), 1u);
  expect_equal((*back.apps)[0], app_state());
  Heartbeat none_left;
  none_left.apps = std::vector<AppState>{};  // "I have no apps any more" is not "no change"
  const auto b2 = agent_round_trip(none_left);
  ASSERT_TRUE(b2.apps.has_value());
  EXPECT_TRUE(b2.apps->empty());
}

TEST(AgentProtocol, StepRoundTrip) {
  for (auto status :
       {StepStatus::started, StepStatus::ok, StepStatus::failed, StepStatus::skipped}) {
    StepEvent e;
    e.action = "d7-web-1-1";
    e.step = "hook:after_install";
    e.status = status;
    e.output = "line 1\nline \"2\"\t\\ caf\xc3\xa9\n";
    e.started_at = 1'700'000'000'123;
    e.duration_ms = 42;
    const auto back = agent_round_trip(e);
    EXPECT_EQ(back.action, e.action);
    EXPECT_EQ(back.step, e.step);
    EXPECT_EQ(back.status, status);
    EXPECT_EQ(back.output, e.output);
    EXPECT_EQ(back.started_at, e.started_at);
    EXPECT_EQ(back.duration_ms, e.duration_ms);
    EXPECT_EQ(step_status_from_name(step_status_name(status)), status);
  }
  EXPECT_EQ(step_status_from_name("running"), std::nullopt);
}

TEST(AgentProtocol, ResultRoundTrip) {
  InstallResult r;
  r.action = "d7-web-1-1";
  r.ok = false;
  r.app = "billing";
  r.version = "1.1.0";
  r.healthy = true;
  r.reason = "health check failed: GET /health answered 500";
  r.reverted_to = "1.1.0";
  r.downloaded = true;
  r.apps = {app_state()};
  const auto back = agent_round_trip(r);
  EXPECT_EQ(back.action, r.action);
  EXPECT_EQ(back.ok, r.ok);
  EXPECT_EQ(back.app, r.app);
  EXPECT_EQ(back.version, r.version);
  EXPECT_EQ(back.healthy, r.healthy);
  EXPECT_EQ(back.reason, r.reason);
  EXPECT_EQ(back.reverted_to, r.reverted_to);
  EXPECT_EQ(back.downloaded, r.downloaded);
  ASSERT_EQ(back.apps.size(), 1u);
  expect_equal(back.apps[0], r.apps[0]);
}

TEST(AgentProtocol, ServerMessagesRoundTrip) {
  Welcome w;
  w.node = "web-1";
  w.heartbeat_ms = 2'000;
  w.server_version = "0.1.0";
  const auto wb = server_round_trip(w);
  EXPECT_EQ(wb.node, w.node);
  EXPECT_EQ(wb.heartbeat_ms, w.heartbeat_ms);
  EXPECT_EQ(wb.server_version, w.server_version);

  InstallCommand c;
  c.action = "d7-web-1-1";
  c.deploy = 7;
  c.app = "billing";
  c.version = "1.2.0+build.5";
  c.sha256 = kSha;
  c.size = 5'000'000'000ULL;
  c.url = "/api/v1/blobs/" + kSha;
  c.env = {{"DATABASE_URL", "postgres://db/billing"}};
  c.keep_releases = 3;
  const auto cb = server_round_trip(c);
  EXPECT_EQ(cb.action, c.action);
  EXPECT_EQ(cb.deploy, c.deploy);
  EXPECT_EQ(cb.app, c.app);
  EXPECT_EQ(cb.version, c.version);
  EXPECT_EQ(cb.sha256, c.sha256);
  EXPECT_EQ(cb.size, c.size);
  EXPECT_EQ(cb.url, c.url);
  EXPECT_EQ(cb.env, c.env);
  EXPECT_EQ(cb.keep_releases, c.keep_releases);

  DeactivateCommand d;
  d.action = "d8-web-1-1";
  d.deploy = 8;
  d.app = "billing";
  const auto db = server_round_trip(d);
  EXPECT_EQ(db.action, d.action);
  EXPECT_EQ(db.deploy, d.deploy);
  EXPECT_EQ(db.app, d.app);

  server_round_trip(Ping{});
  EXPECT_EQ(encode(ServerMessage{Ping{}}), R"({"type":"ping"})");
}

TEST(AgentProtocol, AppStateJson) {
  const auto s = app_state();
  auto back = app_state_from_json(app_state_to_json(s));
  ASSERT_TRUE(back) << back.error().message;
  expect_equal(*back, s);
  AppState none;
  none.app = "billing";  // nothing installed yet
  auto b2 = app_state_from_json(app_state_to_json(none));
  ASSERT_TRUE(b2) << b2.error().message;
  EXPECT_TRUE(b2->version.empty());
}

TEST(AgentProtocol, UnknownTypesAreRefused) {
  EXPECT_NE(agent_error(R"({"type":"welcome","node":"x"})").find("unknown type 'welcome'"),
            std::string::npos);
  agent_error(R"({"type":"HELLO","name":"a","env":"b"})");
  agent_error(R"({"type":""})");
  EXPECT_NE(agent_error(R"({"name":"a","env":"b"})").find("'type' is required"), std::string::npos);
  agent_error(R"({"type":1})");
  agent_error(R"({"type":null})");
  agent_error(R"({"type":["hello"]})");
  EXPECT_NE(server_error(R"({"type":"hello","name":"a","env":"b"})").find("unknown type"),
            std::string::npos);
  server_error(R"({"type":"exec","command":"rm -rf /"})");
  server_error(R"({})");
  // A hostile type name is cut in the message.
  const auto m = agent_error(R"({"type":")" + std::string(100'000, 'x') + "\"}");
  EXPECT_LT(m.size(), 200u);
}

TEST(AgentProtocol, UnknownFieldsInAgentMessagesAreRefused) {
  auto h = hello_json();
  h["extra"] = 1;
  EXPECT_NE(agent_error(to_json(h)).find("unknown field 'extra'"), std::string::npos);
  agent_error(R"({"type":"heartbeat","load":0.5})");
  agent_error(R"({"type":"step","action":"a","step":"s","status":"ok","stderr":""})");
  agent_error(R"({"type":"result","action":"a","app":"billing","why":"x"})");
  // Inside an app state too.
  auto a = hello_json();
  auto app = app_state_to_json(app_state()).as_object();
  app["pid"] = 12;
  a["apps"] = json::array{app};
  EXPECT_NE(agent_error(to_json(a)).find("unknown field 'pid'"), std::string::npos);
}

TEST(AgentProtocol, ServerMessagesTolerateNewerFields) {
  // A newer server may add fields; an older agent must still understand it.
  auto m = decode_server_message(R"({"type":"welcome","node":"w","features":["x"]})");
  ASSERT_TRUE(m) << m.error().message;
  auto i = install_json();
  i["strategy_hint"] = "canary";
  EXPECT_TRUE(decode_server_message(to_json(i)));
}

TEST(AgentProtocol, WrongTypesAreRefused) {
  for (const auto& [field, value] : std::vector<Field>{{"name", 5},
                                                       {"env", true},
                                                       {"roles", "api"},
                                                       {"roles", json::array{1}},
                                                       {"tags", json::array{}},
                                                       {"tags", json::object{{"k", 1}}},
                                                       {"zone", json::array{}},
                                                       {"apps", json::object{}},
                                                       {"apps", json::array{"billing"}},
                                                       {"address", 127}}) {
    auto h = hello_json();
    h[field] = value;
    const auto m = agent_error(to_json(h));
    if (!value.is_array() || field != "apps") {  // an app that is not an object says so
      EXPECT_NE(m.find(field), std::string::npos) << field << ": " << m;
    }
  }
  agent_error(R"({"type":"step","action":"a","step":"s","status":"ok","started_at":"now"})");
  agent_error(R"({"type":"step","action":"a","step":"s","status":"ok","duration_ms":1.5})");
  agent_error(R"({"type":"step","action":"a","step":"s","status":1})");
  EXPECT_NE(agent_error(R"({"type":"step","action":"a","step":"s","status":"done"})")
                .find("unknown status 'done'"),
            std::string::npos);
  agent_error(R"({"type":"result","action":"a","app":"billing","ok":"yes"})");
  agent_error(R"({"type":"result","action":"a","app":"billing","downloaded":1})");
  agent_error(R"({"type":"heartbeat","apps":{}})");
  // App state fields.
  for (const auto& [field, value] : std::vector<Field>{{"healthy", "true"},
                                                       {"port", "80"},
                                                       {"port", 1.5},
                                                       {"releases", "1.0"},
                                                       {"version", 1}}) {
    auto hb = json::object{{"type", "heartbeat"}};
    auto app = app_state_to_json(app_state()).as_object();
    app[field] = value;
    hb["apps"] = json::array{app};
    const auto m = agent_error(to_json(hb));
    EXPECT_NE(m.find(field), std::string::npos) << field << ": " << m;
  }
  // Server messages.
  server_error(R"({"type":"welcome","node":"w","heartbeat_ms":"5s"})");
  auto i = install_json();
  i["size"] = "big";
  server_error(to_json(i));
  i = install_json();
  i["env"] = json::array{};
  server_error(to_json(i));
}

TEST(AgentProtocol, RequiredFieldsAreRequired) {
  for (const char* field : {"name", "env"}) {
    auto h = hello_json();
    h.erase(field);
    EXPECT_NE(agent_error(to_json(h)).find(std::string("'") + field + "' is required"),
              std::string::npos);
  }
  agent_error(R"({"type":"step","step":"s","status":"ok"})");
  agent_error(R"({"type":"step","action":"a","status":"ok"})");
  agent_error(R"({"type":"step","action":"a","step":"s"})");
  agent_error(R"({"type":"result","app":"billing"})");
  agent_error(R"({"type":"result","action":"a"})");
  for (const char* field : {"action", "app", "version", "sha256", "url"}) {
    auto i = install_json();
    i.erase(field);
    EXPECT_NE(server_error(to_json(i)).find(std::string("'") + field + "' is required"),
              std::string::npos);
  }
  server_error(R"({"type":"welcome"})");
  server_error(R"({"type":"deactivate","action":"a"})");
}

TEST(AgentProtocol, InstallEnvHoldsVariableNamesAndNeverShowsAValue) {
  auto ok = install_json();
  ok["env"] = json::object{{"DB_PASSWORD", "s3cret"}, {"_X1", ""}};
  auto m = decode_server_message(to_json(ok));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(std::get<InstallCommand>(*m).env.at("DB_PASSWORD"), "s3cret");
  for (const char* bad : {"1A", "A-B", "", "A B", "../x"}) {
    auto i = install_json();
    i["env"] = json::object{{bad, "s3cret"}};
    const auto msg = server_error(to_json(i));
    EXPECT_EQ(msg.find("s3cret"), std::string::npos) << msg;
  }
  auto nul = install_json();
  nul["env"] = json::object{{"A", std::string("s3c\0ret", 7)}};
  EXPECT_EQ(server_error(to_json(nul)).find("s3c"), std::string::npos);
}

TEST(AgentProtocol, InvalidNamesInHelloAreRefused) {
  for (const auto& [field, value] :
       std::vector<Field>{{"name", ""},
                          {"name", "../etc"},
                          {"name", "web 1"},
                          {"name", json::string(std::string(64, 'n'))},
                          {"env", "prod/uction"},
                          {"env", ".."},
                          {"zone", "a\nb"},
                          {"roles", json::array{"api", "wor ker"}},
                          {"roles", json::array{""}},
                          {"tags", json::object{{"bad key", "v"}}},
                          {"tags", json::object{{"k", "v/w"}}},
                          {"tags", json::object{{"k", json::string(std::string(129, 'v'))}}}}) {
    auto h = hello_json();
    h[field] = value;
    agent_error(to_json(h));
  }
  auto h = hello_json();
  h["address"] = std::string(65, '1');
  agent_error(to_json(h));
  h = hello_json();
  h["agent_version"] = std::string(65, '1');
  agent_error(to_json(h));
}

TEST(AgentProtocol, InvalidNamesInAppStatesAreRefused) {
  for (const auto& [field, value] : std::vector<Field>{{"app", ""},
                                                       {"app", "../billing"},
                                                       {"app", "bill/ing"},
                                                       {"version", "1.0/../../x"},
                                                       {"version", ".."},
                                                       {"version", "1..0"},
                                                       {"port", -1},
                                                       {"port", 65536},
                                                       {"port", 4294967297LL}}) {
    auto hb = json::object{{"type", "heartbeat"}};
    auto app = app_state_to_json(app_state()).as_object();
    app[field] = value;
    hb["apps"] = json::array{app};
    agent_error(to_json(hb));
    auto h = hello_json();
    h["apps"] = json::array{app};
    agent_error(to_json(h));
  }
  // The app of a result too.
  agent_error(R"({"type":"result","action":"a","app":"../x"})");
  agent_error(R"({"type":"result","action":"a","app":"billing","version":"../x"})");
  agent_error(R"({"type":"result","action":"a","app":"billing","reverted_to":"a/b"})");
}

TEST(AgentProtocol, TooManyRolesTagsAndApps) {
  json::array roles;
  for (int i = 0; i < 65; ++i)
    roles.emplace_back("r" + std::to_string(i));
  auto h = hello_json();
  h["roles"] = roles;
  EXPECT_NE(agent_error(to_json(h)).find("too many roles"), std::string::npos);
  roles.pop_back();
  h["roles"] = roles;
  EXPECT_TRUE(decode_agent_message(to_json(h)));

  json::object tags;
  for (int i = 0; i < 65; ++i)
    tags["t" + std::to_string(i)] = "v";
  h = hello_json();
  h["tags"] = tags;
  EXPECT_NE(agent_error(to_json(h)).find("too many tags"), std::string::npos);

  json::array apps;
  for (int i = 0; i < 1001; ++i)
    apps.push_back(app_state_to_json(app_state("app" + std::to_string(i))));
  h = hello_json();
  h["apps"] = apps;
  EXPECT_NE(agent_error(to_json(h)).find("too many apps"), std::string::npos);
  auto hb = json::object{{"type", "heartbeat"}, {"apps", apps}};
  agent_error(to_json(hb));
  hb = json::object{{"type", "result"}, {"action", "a"}, {"app", "billing"}, {"apps", apps}};
  agent_error(to_json(hb));

  auto app = app_state_to_json(app_state()).as_object();
  json::array releases;
  for (int i = 0; i < 1001; ++i)
    releases.emplace_back("1.0." + std::to_string(i));
  app["releases"] = releases;
  hb = json::object{{"type", "heartbeat"}, {"apps", json::array{app}}};
  agent_error(to_json(hb));
}

TEST(AgentProtocol, InstallChecksItsFields) {
  for (const auto& [field, value] : std::vector<Field>{
           {"app", "../x"},
           {"version", "1.0/2"},
           {"version", ""},
           {"sha256", "abc"},
           {"sha256", json::string(std::string(64, 'g'))},
           {"sha256", json::string(std::string(64, 'A'))},
           {"sha256", "../../../../../../../../../../../../../../../../../../etc/passwd"},
           {"keep_releases", 0},
           {"keep_releases", 101},
           {"keep_releases", -1},
           {"keep_releases", 4294967301LL},  // 2^32 + 5: not 5
           {"size", -1}}) {
    auto i = install_json();
    i[field] = value;
    server_error(to_json(i));
  }
  for (int keep : {1, 5, 100}) {
    auto i = install_json();
    i["keep_releases"] = keep;
    auto m = decode_server_message(to_json(i));
    ASSERT_TRUE(m) << keep << ": " << m.error().message;
    EXPECT_EQ(std::get<InstallCommand>(*m).keep_releases, keep);
  }
  server_error(R"({"type":"welcome","node":"w","heartbeat_ms":99})");
  server_error(R"({"type":"welcome","node":"w","heartbeat_ms":3600001})");
  server_error(R"({"type":"deactivate","action":"a","app":"a/b"})");
}

TEST(AgentProtocol, HostileInput) {
  // Not JSON, or not an object.
  for (const char* text : {"", " ", "hello", "{", "[]", "[{\"type\":\"heartbeat\"}]", "null",
                           "\"heartbeat\"", "42", "true", "{\"type\":\"heartbeat\"} junk"}) {
    agent_error(text);
    server_error(text);
  }
  // Deeply nested JSON.
  const std::string deep = "{\"type\":\"heartbeat\",\"apps\":" + std::string(100'000, '[') +
                           std::string(100'000, ']') + "}";
  agent_error(deep);
  server_error(std::string(1'000'000, '['));
  std::string nested_obj = "{\"type\":\"hello\",\"tags\":";
  for (int i = 0; i < 50; ++i)
    nested_obj += "{\"a\":";
  nested_obj += "1" + std::string(51, '}');
  agent_error(nested_obj);
  // Huge strings in names are refused by the name rules; in free text they are carried.
  auto h = hello_json();
  h["name"] = std::string(1 << 20, 'a');
  agent_error(to_json(h));
  h = hello_json();
  h["env"] = std::string(1 << 20, 'e');
  agent_error(to_json(h));
  agent_error(R"({"type":"step","action":")" + std::string(1 << 20, 'x') +
              R"(","step":"s","status":"ok"})");
  // Not UTF-8.
  agent_error(
      "{\"type\":\"step\",\"action\":\"a\",\"step\":\"s\",\"status\":\"ok\","
      "\"output\":\"\xff\xfe\"}");
  // NUL bytes inside strings are escapes in JSON; a raw one is malformed.
  agent_error(std::string("{\"type\":\"heartbeat\"\0}", 21));
  agent_error(R"({"type":"hello","name":"web\u0000","env":"e"})");
}

TEST(AgentProtocol, InvalidUtf8InFreeTextIsMadeValidWhenEncoding) {
  // Process output is bytes; the protocol is JSON text. What an agent encodes must decode.
  StepEvent e;
  e.action = "a";
  e.step = "hook:before_start";
  e.status = StepStatus::failed;
  e.output = std::string("binary \xff\xfe\x00 and a cut \xc3", 22);
  auto back = decode_agent_message(encode(AgentMessage{e}));
  ASSERT_TRUE(back) << back.error().message;
  const auto& out = std::get<StepEvent>(*back).output;
  EXPECT_NE(out.find("binary "), std::string::npos);
  EXPECT_NE(out.find(" and a cut "), std::string::npos);
  EXPECT_NE(out.find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD REPLACEMENT CHARACTER
  EXPECT_EQ(out.find('\xff'), std::string::npos);

  InstallResult r;
  r.action = "a";
  r.app = "billing";
  r.reason = "hook said \xe2\x82";
  auto rb = decode_agent_message(encode(AgentMessage{r}));
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(std::get<InstallResult>(*rb).reason, "hook said \xef\xbf\xbd");

  // Valid UTF-8 is left alone.
  e.output = "caf\xc3\xa9 \xf0\x9f\x9a\x80";
  auto ok = decode_agent_message(encode(AgentMessage{e}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(std::get<StepEvent>(*ok).output, e.output);
}

}  // namespace
}  // namespace slipway::protocol

namespace slipway::protocol {
namespace {

TEST(AgentProtocol, CredentialsInHelloAndWelcome) {
  const std::string cred = new_node_credential();
  EXPECT_TRUE(is_node_credential(cred));
  EXPECT_NE(new_node_credential(), cred);
  Hello h;
  h.name = "web-1";
  h.env = "production";
  h.credential = cred;
  auto a = decode_agent_message(encode(AgentMessage{h}));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(std::get<Hello>(*a).credential, cred);
  // Absent when there is none.
  h.credential.clear();
  EXPECT_EQ(encode(AgentMessage{h}).find("credential"), std::string::npos);

  Welcome w;
  w.node = "web-1";
  w.credential = cred;
  auto s = decode_server_message(encode(ServerMessage{w}));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(std::get<Welcome>(*s).credential, cred);

  // Malformed credentials are refused, in both directions.
  const std::string hex(64, 'a');
  for (const std::string& bad :
       {std::string("slwc_") + hex.substr(1), std::string("slwc_") + hex + "a", "slwx_" + hex,
        std::string("slwc_") + std::string(63, 'a') + "G", std::string("x"),
        std::string("slwc_") + std::string(63, 'a') + "\n"}) {
    EXPECT_FALSE(is_node_credential(bad)) << bad;
    json::object o{
        {"type", "hello"},        {"name", "n"},      {"env", "e"}, {"roles", json::array{}},
        {"tags", json::object{}}, {"credential", bad}};
    EXPECT_FALSE(decode_agent_message(to_json(o))) << bad;
    json::object wo{{"type", "welcome"}, {"node", "n"}, {"credential", bad}};
    EXPECT_FALSE(decode_server_message(to_json(wo))) << bad;
  }
  json::object wrong_type{
      {"type", "hello"},        {"name", "n"},    {"env", "e"}, {"roles", json::array{}},
      {"tags", json::object{}}, {"credential", 5}};
  EXPECT_FALSE(decode_agent_message(to_json(wrong_type)));
}

TEST(AgentProtocol, PendingWelcomeAndDisconnectWithItsReasonInFull) {
  Welcome w;
  w.node = "web-1";
  EXPECT_FALSE(server_round_trip(w).pending);
  EXPECT_EQ(encode(ServerMessage{w}).find("pending"), std::string::npos);
  w.pending = true;
  EXPECT_TRUE(server_round_trip(w).pending);
  EXPECT_NE(server_error(R"({"type":"welcome","node":"n","pending":"yes"})").find("pending"),
            std::string::npos);

  // Longer than a WebSocket close reason may be (123 bytes).
  const std::string why(600, 'w');
  EXPECT_EQ(server_round_trip(Disconnect{why}).reason, why);
  server_error(R"({"type":"disconnect"})");
  server_error(R"({"type":"disconnect","reason":5})");
  server_error(to_json(json::object{{"type", "disconnect"},
                                    {"reason", std::string(kMaxDisconnectReason + 1, 'x')}}));
  EXPECT_TRUE(decode_server_message(R"({"type":"disconnect","reason":"r","newer":1})"));
}

}  // namespace
}  // namespace slipway::protocol
