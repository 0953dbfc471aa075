// Names at every entry point of the API: app names, versions, node names, environments, roles,
// zones and tags go through one grammar (common/names.h), so none of them can become a path or a
// query. Each hostile name -- a path separator, dot-dot, a control character, a newline, an
// over-long name -- is tried in every JSON body, path parameter and query parameter that takes a
// name, and must be refused with 400 and a JSON error, the server staying up. (The agent's hello
// is tried in hostile_agent_test.cpp; ApiTest.InvalidNames covers deploy bodies and artifact
// URLs.)
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

struct Hostile {
  std::string what;
  std::string name;
};

const std::vector<Hostile>& hostile_names() {
  static const std::vector<Hostile> names = {
      {"a path separator", "a/b"},
      {"a backslash", "a\\b"},
      {"dot-dot", ".."},
      {"a leading dot-dot", "../etc"},
      {"a control character", "a\x01z"},
      {"a newline", "a\nb"},
      {"an escape", "a\x1b[31m"},
      {"over-long", std::string(200, 'a')},
  };
  return names;
}

// Percent-encodes everything but unreserved characters.
std::string pct(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

class HostileNamesTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    start_lab(1);
  }
  void expect_400(const net::HttpResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 400) << what << ": " << r.body;
    auto v = parse_json(r.body, what);
    ASSERT_TRUE(v && v->is_object() && v->as_object().contains("error")) << what << ": " << r.body;
  }
  // `body` with `field` (a dotted path into nested objects: "stages.0.app") set to `value`.
  static json::value with(json::value body, const std::string& field, const json::value& value) {
    json::value* at = &body;
    size_t start = 0;
    for (;;) {
      const size_t dot = field.find('.', start);
      const std::string key = field.substr(start, dot - start);
      if (dot == std::string::npos) {
        at->as_object()[key] = value;
        return body;
      }
      json::value* next = nullptr;
      if (at->is_array()) {
        next = &at->as_array().at(std::stoul(key));
      } else {
        next = &at->as_object()[key];
      }
      at = next;
      start = dot + 1;
    }
  }
};

TEST_F(HostileNamesTest, JsonBodiesRefuseHostileNames) {
  struct Route {
    std::string method;
    std::string target;
    json::value body;
    std::vector<std::string> fields;
  };
  const std::vector<Route> routes = {
      {"POST",
       "/api/v1/rollbacks",
       json::object{{"app", "web"}, {"env", "staging"}},
       {"app", "env", "to", "role", "zone"}},
      {"POST",
       "/api/v1/runs",
       json::object{{"env", "staging"}, {"argv", json::array{"true"}}},
       {"env", "role", "zone"}},
      {"POST",
       "/api/v1/freezes",
       json::object{{"env", "staging"}, {"until", "2099-01-01T00:00:00Z"}, {"reason", "x"}},
       {"env", "app"}},
      {"POST", "/api/v1/freezes/lift", json::object{{"env", "staging"}}, {"env", "app"}},
      {"POST",
       "/api/v1/plans",
       json::object{{"env", "staging"},
                    {"app", "web"},
                    {"stages", json::array{json::object{{"name", "one"}}}}},
       {"env", "app", "version", "stages.0.name", "stages.0.app", "stages.0.version",
        "stages.0.role", "stages.0.zone"}},
  };
  for (const auto& r : routes) {
    for (const auto& field : r.fields) {
      for (const auto& h : hostile_names()) {
        const auto body = with(r.body, field, json::value(h.name));
        expect_400(http(r.method, r.target, to_json(body)),
                   fmt::format("{} {} with {} in {}", r.method, r.target, h.what, field));
      }
    }
  }
  // Names inside other values: a zone order, a canary tag, selectors.
  for (const auto& h : hostile_names()) {
    const json::value deploy = json::object{{"app", "web"}, {"env", "staging"}};
    expect_400(http("POST", "/api/v1/deploys",
                    to_json(with(with(deploy, "strategy", "zones"), "zones",
                                 json::array{json::value(h.name)}))),
               "zones with " + h.what);
    expect_400(http("POST", "/api/v1/deploys",
                    to_json(with(with(deploy, "strategy", "canary"), "canary",
                                 json::value("tag:" + h.name + "=x")))),
               "canary tag key with " + h.what);
    expect_400(http("POST", "/api/v1/deploys",
                    to_json(with(with(deploy, "strategy", "canary"), "canary",
                                 json::value("tag:team=" + h.name)))),
               "canary tag value with " + h.what);
    expect_400(http("POST", "/api/v1/deploys",
                    to_json(with(deploy, "selector", json::value("team=" + h.name)))),
               "selector value with " + h.what);
    expect_400(http("PUT", "/api/v1/envs/staging/lb",
                    to_json(json::object{
                        {"drain", json::object{{"command", "true"}, {"on", "role=" + h.name}}}})),
               "lb on-selector with " + h.what);
  }
  auto s = http("GET", "/api/v1/stats");
  EXPECT_EQ(s.status, 200) << s.body;
}

TEST_F(HostileNamesTest, PathAndQueryParametersRefuseHostileNames) {
  for (const auto& h : hostile_names()) {
    const std::string n = pct(h.name);
    const std::vector<std::pair<std::string, std::string>> requests = {
        {"GET", "/api/v1/nodes/" + n},
        {"POST", "/api/v1/nodes/" + n + "/release"},
        {"GET", "/api/v1/envs/" + n + "/lb"},
        {"DELETE", "/api/v1/envs/" + n + "/lb"},
        {"GET", "/api/v1/artifacts/" + n},
        {"GET", "/api/v1/artifacts/web/" + n},
        {"GET", "/api/v1/artifacts/web/" + n + "/download"},
        {"GET", "/api/v1/nodes?env=" + n},
        {"GET", "/api/v1/nodes?role=" + n},
        {"GET", "/api/v1/nodes?zone=" + n},
        {"GET", "/api/v1/nodes?selector=team%3D" + n},
        {"GET", "/api/v1/status?env=" + n},
        {"GET", "/api/v1/status?app=" + n},
        {"GET", "/api/v1/deploys?app=" + n},
        {"GET", "/api/v1/deploys?env=" + n},
        {"GET", "/api/v1/runs?env=" + n},
        {"GET", "/api/v1/plans?env=" + n},
        {"GET", "/api/v1/freezes?env=" + n},
        {"GET", "/api/v1/freezes?env=staging&app=" + n},
    };
    for (const auto& [method, target] : requests) {
      expect_400(http(method, target), fmt::format("{} {} ({})", method, target, h.what));
    }
  }
  auto s = http("GET", "/api/v1/stats");
  EXPECT_EQ(s.status, 200) << s.body;
}

}  // namespace
}  // namespace slipway::e2e
