#include "artifacts/manifest.h"

#include <string>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slipway::artifacts {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Parses text that must be refused, and returns the message.
std::string Refusal(std::string_view yaml) {
  auto m = parse_manifest(yaml);
  if (m) {
    ADD_FAILURE() << "accepted:\n" << yaml;
    return {};
  }
  EXPECT_EQ(m.error().code, Errc::invalid_argument);
  return m.error().message;
}

TEST(ParseManifest, FullExample) {
  auto m = parse_manifest(R"(# the app
start: ./bin/server --port ${SLIPWAY_PORT}
port: 8080
env: { LOG_LEVEL: info, EMPTY: "" }
stop_timeout: 20s
hooks:
  after_install: ./bin/migrate --check
  before_start: echo before
  after_start: echo after
  before_stop: echo stopping
hook_timeout: 2m
health:
  http: http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health
  timeout: 45s
  healthy_for: 3s
  interval: 250ms
)");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->start, "./bin/server --port ${SLIPWAY_PORT}");
  EXPECT_EQ(m->restart, "");
  EXPECT_EQ(m->port, 8080);
  EXPECT_EQ(m->env, (std::map<std::string, std::string>{{"LOG_LEVEL", "info"}, {"EMPTY", ""}}));
  EXPECT_EQ(m->stop_timeout, Millis(20'000));
  EXPECT_EQ(m->hooks.size(), 4u);
  EXPECT_EQ(m->hooks.at("after_install"), "./bin/migrate --check");
  EXPECT_EQ(m->hooks.at("before_stop"), "echo stopping");
  EXPECT_EQ(m->hook_timeout, Millis(120'000));
  EXPECT_EQ(m->health.kind, HealthKind::http);
  EXPECT_EQ(m->health.target, "http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health");
  EXPECT_EQ(m->health.timeout, Millis(45'000));
  EXPECT_EQ(m->health.healthy_for, Millis(3'000));
  EXPECT_EQ(m->health.interval, Millis(250));
}

TEST(ParseManifest, MinimalGetsTheDefaults) {
  auto m = parse_manifest("start: ./run\n");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->start, "./run");
  EXPECT_FALSE(m->port.has_value());
  EXPECT_TRUE(m->env.empty());
  EXPECT_TRUE(m->hooks.empty());
  EXPECT_EQ(m->stop_timeout, Millis(10'000));
  EXPECT_EQ(m->hook_timeout, Millis(300'000));
  EXPECT_EQ(m->health.kind, HealthKind::none);
  EXPECT_EQ(m->health.target, "");
  EXPECT_EQ(m->health.timeout, Millis(30'000));
  EXPECT_EQ(m->health.healthy_for, Millis(2'000));
  EXPECT_EQ(m->health.interval, Millis(500));
}

TEST(ParseManifest, RestartWithStopAndOtherChecks) {
  auto m = parse_manifest(
      "restart: systemctl restart billing\nstop: systemctl stop billing\n"
      "health:\n  tcp: ${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}\n");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->restart, "systemctl restart billing");
  EXPECT_EQ(m->stop, "systemctl stop billing");
  EXPECT_EQ(m->health.kind, HealthKind::tcp);
  EXPECT_EQ(m->health.target, "${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}");

  auto c = parse_manifest("start: ./run\nhealth: {command: ./bin/check, timeout: 5}\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->health.kind, HealthKind::command);
  EXPECT_EQ(c->health.target, "./bin/check");
  EXPECT_EQ(c->health.timeout, Millis(5'000));  // a plain number is seconds
}

TEST(ParseManifest, BlockScalarCommandsAreTrimmed) {
  auto m = parse_manifest("start: |\n  ./bin/server\n    --flag\n");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->start, "./bin/server\n  --flag");
}

TEST(ParseManifest, NoWayToStart) {
  const auto msg = Refusal("port: 8080\nhealth: {http: 'http://x/health'}\n");
  EXPECT_EQ(msg,
            "slipway.yaml line 1: names no way to start the app: set start: (a process the agent "
            "supervises) or restart: (a command)");
}

TEST(ParseManifest, BothStartAndRestart) {
  const auto msg = Refusal("# comment\nstart: ./run\nrestart: systemctl restart x\n");
  EXPECT_THAT(msg, StartsWith("slipway.yaml line 3: "));
  EXPECT_THAT(msg, HasSubstr("both start: and restart:"));
}

TEST(ParseManifest, StopOnlyWithRestart) {
  EXPECT_THAT(
      Refusal("start: ./run\nstop: ./stop\n"),
      AllOf(StartsWith("slipway.yaml line 2: "), HasSubstr("stop: applies only with restart")));
}

TEST(ParseManifest, EmptyAndNonMappingDocuments) {
  EXPECT_THAT(Refusal(""), StartsWith("slipway.yaml line 1: is empty"));
  EXPECT_THAT(Refusal("# only a comment\n"), StartsWith("slipway.yaml line 1: is empty"));
  EXPECT_THAT(Refusal("- start\n- ./run\n"),
              StartsWith("slipway.yaml line 1: the top level must be a mapping"));
  EXPECT_THAT(Refusal("just text\n"), StartsWith("slipway.yaml line 1: the top level must be"));
  EXPECT_THAT(Refusal("start: ./a\n---\nstart: ./b\n"),
              StartsWith("slipway.yaml line 3: holds more than one YAML document"));
}

// Found by fuzz/fuzz_manifest (corpus/manifest/regression-tag-comma): yaml-cpp 0.7's LoadAll
// never returns on a node property (tag or anchor) followed by ',' at the top level, making empty
// documents without end. The parser must answer instead of hanging the server's push.
TEST(ParseManifest, TagOrAnchorBeforeCommaIsRefusedNotAHang) {
  for (const char* text : {"!;,A", "!,", "! ,", "!<x>,", "&a ,", "start: ./a\n!x ,\n"}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(Refusal(text), StartsWith("slipway.yaml line "));
  }
}

TEST(ParseManifest, SyntaxErrorsCarryTheirLine) {
  EXPECT_THAT(Refusal("start: ./run\nhooks: {after_install: [1,\n"),
              StartsWith("slipway.yaml line 3: not valid YAML"));
  EXPECT_THAT(Refusal("start: ./run\n  bad indent: x\n"), StartsWith("slipway.yaml line 2: "));
  EXPECT_THAT(Refusal("start: ./run\n\tport: 1\n"),
              StartsWith("slipway.yaml line 2: not valid YAML: illegal tab"));
  EXPECT_THAT(Refusal("start: a: b\n"), StartsWith("slipway.yaml line 1: not valid YAML"));
}

TEST(ParseManifest, UnknownKeysAreNamed) {
  EXPECT_EQ(Refusal("start: ./run\nstrat: ./typo\n"),
            "slipway.yaml line 2: unknown key 'strat' (known keys: start, restart, stop, port, "
            "env, stop_timeout, hooks, hook_timeout, health, drain, undrain)");
  EXPECT_THAT(Refusal("start: ./run\nhooks:\n  after_instal: ./x\n"),
              AllOf(StartsWith("slipway.yaml line 3: "), HasSubstr("unknown hook 'after_instal'"),
                    HasSubstr("after_install, before_stop, before_start, after_start")));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: http://x/\n  retries: 3\n"),
              AllOf(StartsWith("slipway.yaml line 4: "), HasSubstr("unknown key 'retries'")));
}

TEST(ParseManifest, DuplicateKeys) {
  EXPECT_THAT(Refusal("start: ./a\nport: 1\nstart: ./b\n"),
              AllOf(StartsWith("slipway.yaml line 3: "), HasSubstr("'start' appears twice")));
  EXPECT_THAT(Refusal("start: ./a\nenv:\n  A: 1\n  A: 2\n"),
              AllOf(StartsWith("slipway.yaml line 4: "), HasSubstr("'A' appears twice")));
}

TEST(ParseManifest, HealthChecks) {
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: http://x/\n  tcp: x:1\n"),
              AllOf(StartsWith("slipway.yaml line 4: "), HasSubstr("more than one check")));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  command: ./c\n  http: http://x/\n"),
              HasSubstr("more than one check (command and http)"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  timeout: 5s\n"),
              AllOf(StartsWith("slipway.yaml line 2: "), HasSubstr("names no check")));
  EXPECT_THAT(Refusal("start: ./run\nhealth: ./check\n"), HasSubstr("health: must be a mapping"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: x/health\n"),
              HasSubstr("not an http:// URL"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: https://x/health\n"),
              HasSubstr("https:// health checks are not supported yet"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  tcp: localhost\n"), HasSubstr("not HOST:PORT"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  command: ''\n"),
              HasSubstr("health.command: is empty"));
}

TEST(ParseManifest, Durations) {
  EXPECT_THAT(Refusal("start: ./run\nstop_timeout: soon\n"),
              AllOf(StartsWith("slipway.yaml line 2: stop_timeout: duration 'soon' is not valid")));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: http://x/\n  interval: 5 parsecs\n"),
              AllOf(StartsWith("slipway.yaml line 4: health.interval: ")));
  EXPECT_THAT(Refusal("start: ./run\nhook_timeout: 0s\n"),
              HasSubstr("hook_timeout: must be longer than zero"));
  EXPECT_THAT(Refusal("start: ./run\nhealth:\n  http: http://x/\n  timeout: [1, 2]\n"),
              HasSubstr("health.timeout: must be a single value, not a list"));
  auto zero = parse_manifest("start: ./run\nhealth: {http: 'http://x/', healthy_for: 0s}\n");
  ASSERT_TRUE(zero) << zero.error().message;
  EXPECT_EQ(zero->health.healthy_for, Millis(0));
}

TEST(ParseManifest, Port) {
  EXPECT_EQ(parse_manifest("start: ./r\nport: 1\n")->port, 1);
  EXPECT_EQ(parse_manifest("start: ./r\nport: '65535'\n")->port, 65535);
  EXPECT_THAT(Refusal("start: ./r\nport: 0\n"),
              AllOf(StartsWith("slipway.yaml line 2: "), HasSubstr("not between 1 and 65535")));
  EXPECT_THAT(Refusal("start: ./r\nport: 65536\n"), HasSubstr("not between 1 and 65535"));
  EXPECT_THAT(Refusal("start: ./r\nport: -5\n"), HasSubstr("not between 1 and 65535"));
  EXPECT_THAT(Refusal("start: ./r\nport: http\n"), HasSubstr("'http' is not a number"));
  EXPECT_THAT(Refusal("start: ./r\nport: 80.5\n"), HasSubstr("is not a number"));
  EXPECT_THAT(Refusal("start: ./r\nport: 99999999999999999999999\n"), HasSubstr("not a number"));
}

TEST(ParseManifest, Env) {
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  1BAD: x\n"),
              AllOf(StartsWith("slipway.yaml line 3: "),
                    HasSubstr("'1BAD' is not a valid environment variable name")));
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  A-B: x\n"), HasSubstr("'A-B' is not a valid"));
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  'A=B': x\n"), HasSubstr("'A=B' is not a valid"));
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  SLIPWAY_PORT: '1'\n"), HasSubstr("set by the agent"));
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  A: {nested: 1}\n"),
              HasSubstr("env.A: must be a single value, not a mapping"));
  EXPECT_THAT(Refusal("start: ./r\nenv:\n  A:\n"), HasSubstr("env.A: has no value"));
  EXPECT_THAT(Refusal("start: ./r\nenv: [A, B]\n"), HasSubstr("env: must be a mapping"));
  auto ok = parse_manifest("start: ./r\nenv:\n  _X1: 'a b'\n  lower_case: 2\n");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->env.at("_X1"), "a b");
  EXPECT_EQ(ok->env.at("lower_case"), "2");
}

TEST(ParseManifest, StringsMustBeNonEmptyScalars) {
  EXPECT_EQ(Refusal("start: ''\n"), "slipway.yaml line 1: start: is empty");
  EXPECT_EQ(Refusal("start: '   '\n"), "slipway.yaml line 1: start: is empty");
  EXPECT_EQ(Refusal("\nstart:\n"), "slipway.yaml line 2: start: has no value");
  EXPECT_THAT(Refusal("start: [./a, ./b]\n"),
              HasSubstr("start: must be a single value, not a list"));
  EXPECT_THAT(Refusal("start: {cmd: ./a}\n"), HasSubstr("not a mapping"));
  EXPECT_THAT(Refusal("restart: ''\n"), HasSubstr("restart: is empty"));
  EXPECT_THAT(Refusal("start: ./r\nhooks:\n  after_start: ''\n"),
              AllOf(StartsWith("slipway.yaml line 3: "), HasSubstr("hooks.after_start: is empty")));
  EXPECT_THAT(Refusal("start: ./r\nhooks: [a]\n"), HasSubstr("hooks: must be a mapping"));
  EXPECT_THAT(Refusal("start: ./r\n[a]: b\n"), HasSubstr("keys must be plain words"));
}

TEST(ManifestJson, RoundTrip) {
  auto m = parse_manifest(R"(restart: systemctl restart x
stop: systemctl stop x
port: 9000
env: {A: '1', B: two}
stop_timeout: 3s
hooks: {after_install: ./migrate, after_start: ./notify}
hook_timeout: 90s
health: {command: ./check, timeout: 1m, healthy_for: 0s, interval: 100ms}
)");
  ASSERT_TRUE(m) << m.error().message;
  const json::value j = manifest_to_json(*m);
  const auto& o = j.as_object();
  EXPECT_EQ(o.at("restart").as_string(), "systemctl restart x");
  EXPECT_EQ(o.at("port").as_int64(), 9000);
  EXPECT_EQ(o.at("stop_timeout_ms").as_int64(), 3000);
  EXPECT_EQ(o.at("hook_timeout_ms").as_int64(), 90'000);
  const auto& h = o.at("health").as_object();
  EXPECT_EQ(h.at("kind").as_string(), "command");
  EXPECT_EQ(h.at("target").as_string(), "./check");
  EXPECT_EQ(h.at("timeout_ms").as_int64(), 60'000);
  EXPECT_EQ(h.at("healthy_for_ms").as_int64(), 0);
  EXPECT_EQ(h.at("interval_ms").as_int64(), 100);

  // Through text, as it travels.
  auto back = manifest_from_json(boost::json::parse(boost::json::serialize(j)));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->start, m->start);
  EXPECT_EQ(back->restart, m->restart);
  EXPECT_EQ(back->stop, m->stop);
  EXPECT_EQ(back->port, m->port);
  EXPECT_EQ(back->env, m->env);
  EXPECT_EQ(back->stop_timeout, m->stop_timeout);
  EXPECT_EQ(back->hooks, m->hooks);
  EXPECT_EQ(back->hook_timeout, m->hook_timeout);
  EXPECT_EQ(back->health.kind, m->health.kind);
  EXPECT_EQ(back->health.target, m->health.target);
  EXPECT_EQ(back->health.timeout, m->health.timeout);
  EXPECT_EQ(back->health.healthy_for, m->health.healthy_for);
  EXPECT_EQ(back->health.interval, m->health.interval);
  EXPECT_EQ(boost::json::serialize(manifest_to_json(*back)), boost::json::serialize(j));
}

TEST(ManifestJson, MinimalRoundTripHasNoPort) {
  auto m = parse_manifest("start: ./run\n");
  ASSERT_TRUE(m);
  const json::value j = manifest_to_json(*m);
  EXPECT_FALSE(j.as_object().contains("port"));
  EXPECT_EQ(j.at("health").at("kind").as_string(), "none");
  auto back = manifest_from_json(j);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->start, "./run");
  EXPECT_FALSE(back->port.has_value());
  EXPECT_EQ(back->health.kind, HealthKind::none);
}

TEST(ManifestJson, FromJsonIsStrict) {
  auto refuse = [](std::string_view text) {
    auto m = manifest_from_json(boost::json::parse(text));
    EXPECT_FALSE(m) << text;
    if (m) return std::string();
    EXPECT_EQ(m.error().code, Errc::invalid_argument);
    return m.error().message;
  };
  EXPECT_THAT(refuse(R"({"start":"./r","colour":"red"})"), HasSubstr("unknown field 'colour'"));
  EXPECT_THAT(refuse(R"({"start":5})"), HasSubstr("'start' must be a string"));
  EXPECT_THAT(refuse(R"({"start":"./r","port":"80"})"), HasSubstr("'port' must be an integer"));
  EXPECT_THAT(refuse(R"({"start":"./r","port":0})"), HasSubstr("not between 1 and 65535"));
  EXPECT_THAT(refuse(R"({"start":"./r","stop_timeout_ms":-1})"), HasSubstr("stop_timeout_ms"));
  EXPECT_THAT(refuse(R"({"start":"./r","env":{"A":1}})"), HasSubstr("'env'"));
  EXPECT_THAT(refuse(R"({"start":"./r","env":{"1A":"x"}})"), HasSubstr("not a valid environment"));
  EXPECT_THAT(refuse(R"({"start":"./r","hooks":{"nope":"x"}})"), HasSubstr("unknown hook 'nope'"));
  EXPECT_THAT(refuse(R"({"start":"./r","hooks":{"after_start":""}})"), HasSubstr("empty command"));
  EXPECT_THAT(refuse(R"({"port":80})"), HasSubstr("names no way to start the app"));
  EXPECT_THAT(refuse(R"({"start":"./a","restart":"./b"})"), HasSubstr("both start: and restart:"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":{"kind":"ping","target":"x"}})"),
              HasSubstr("unknown health kind 'ping'"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":{"kind":"http"}})"), HasSubstr("has no target"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":{"kind":"http","target":"x","extra":1}})"),
              HasSubstr("unknown field 'extra'"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":{"target":"x"}})"),
              HasSubstr("'kind' is required"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":{"kind":"tcp","target":"x:1","interval_ms":0}})"),
              HasSubstr("interval_ms"));
  EXPECT_THAT(refuse(R"({"start":"./r","health":[]})"), HasSubstr("'health' must be an object"));
  EXPECT_THAT(refuse(R"(["start"])"), HasSubstr("must be a JSON object"));
}

TEST(HealthKindName, Names) {
  EXPECT_EQ(health_kind_name(HealthKind::none), "none");
  EXPECT_EQ(health_kind_name(HealthKind::http), "http");
  EXPECT_EQ(health_kind_name(HealthKind::tcp), "tcp");
  EXPECT_EQ(health_kind_name(HealthKind::command), "command");
}

}  // namespace
}  // namespace slipway::artifacts

namespace slipway::artifacts {
namespace {

TEST(ParseManifestLb, DrainAndUndrainAsACommandOrAMapping) {
  auto m = parse_manifest(
               "start: ./run\n"
               "drain: ./lb out $SLIPWAY_TARGET_NODE\n"
               "undrain:\n  command: ./lb in\n  on: role=lb\n  timeout: 5s\n")
               .value();
  ASSERT_TRUE(m.drain);
  EXPECT_EQ(m.drain->command, "./lb out $SLIPWAY_TARGET_NODE");
  EXPECT_EQ(m.drain->on, "");
  EXPECT_EQ(m.drain->timeout, Millis(30'000));
  ASSERT_TRUE(m.undrain);
  EXPECT_EQ(m.undrain->on, "role=lb");
  EXPECT_EQ(m.undrain->timeout, Millis(5'000));
  // Through the stored JSON and back.
  auto back = manifest_from_json(manifest_to_json(m)).value();
  ASSERT_TRUE(back.undrain);
  EXPECT_EQ(back.undrain->command, "./lb in");
  EXPECT_EQ(back.undrain->on, "role=lb");
  EXPECT_EQ(back.undrain->timeout, Millis(5'000));
  EXPECT_EQ(back.drain->command, m.drain->command);
  EXPECT_FALSE(parse_manifest("start: ./run\n").value().drain);
}

TEST(ParseManifestLb, BadDrainsAreRefusedWithTheirLine) {
  for (const char* bad :
       {"start: ./run\ndrain:\n", "start: ./run\ndrain: ''\n",
        "start: ./run\ndrain:\n  on: role=lb\n", "start: ./run\ndrain:\n  command: x\n  where: y\n",
        "start: ./run\nundrain:\n  command: x\n  timeout: soon\n",
        "start: ./run\nundrain: [a, b]\n"}) {
    auto m = parse_manifest(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message.find("line "), std::string::npos) << m.error().message;
  }
  auto j = manifest_from_json(parse_json(R"({"start":"x","drain":{"command":""}})", "t").value());
  EXPECT_FALSE(j);
  j = manifest_from_json(parse_json(R"({"start":"x","drain":{"command":"a","x":1}})", "t").value());
  EXPECT_FALSE(j);
}

}  // namespace
}  // namespace slipway::artifacts
