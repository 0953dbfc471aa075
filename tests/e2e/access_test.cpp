// Who may do what: every route of the server (as GET /api/v1/routes lists them) tried with no
// token, a viewer, a publisher, a deployer scoped to staging, a deployer scoped to another app, an
// admin, the agent join token, a node's credential, an expired and a revoked token; and the token
// and audit commands of the CLI.
//
// "Allowed" means the server did not answer 401 or 403 (the probes use ids and versions that make
// the handler answer at once: 404, 400, 412 are all "allowed"). A route that is not in kProbes
// fails the test: add a probe when you add a route.
#include <set>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/strings.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

// What a request touches, for the scope rules: an environment (or none), and the app "web", every
// app (a run, lb commands, a node's release) or none.
enum class AppScope { web, all, none };

struct Probe {
  std::string staging;  // the request's target, touching staging (and web)
  std::string staging_body;
  std::string production;  // the same on production ("" = the route names no environment)
  std::string production_body;
  AppScope app = AppScope::none;
  // What it does reaches every environment (a push: the version becomes deployable everywhere):
  // refused to a token scoped to environments.
  bool every_env = false;
  bool enrolls = false;  // an agent route a join token may use (it only enrolls a node)
};

struct Caller {
  std::string label;
  std::string token;  // "" = none
  // "", agent (a join token), node (a node's credential), viewer, publisher, deployer, admin,
  // dead (expired or revoked)
  std::string role;
  bool staging_only = false;
  bool other_app = false;  // scoped to the app "api"
};

class AccessTest : public E2eTest {
 protected:
  // POST /api/v1/tokens with the admin token; the secret.
  std::string create_token(const std::string& body) {
    auto r = http("POST", "/api/v1/tokens", body);
    if (r.status != 201) throw std::runtime_error("token create: " + r.body);
    return str(parse(r.body, "token"), "token");
  }

  int64_t created_id(const net::HttpResult& r, const std::string& what) {
    if (r.status != 201) throw std::runtime_error(what + ": " + r.body);
    return i64(parse(r.body, what), "id");
  }

  static std::string subst(std::string s, const std::map<std::string, std::string>& vars) {
    for (const auto& [k, v] : vars) {
      for (size_t at = s.find(k); at != std::string::npos; at = s.find(k, at + v.size()))
        s.replace(at, k.size(), v);
    }
    return s;
  }
};

// What `who` must get from a route of this access level with this probe: 0 for allowed (neither
// 401 nor 403), else 401 or 403.
int expected(const Caller& who, const std::string& access, const Probe& p, bool production) {
  if (access == "public") return 0;
  if (who.role.empty() || who.role == "dead") return 401;
  if (access == "agent") {
    if (who.role == "agent") return p.enrolls ? 0 : 403;
    return who.role == "node" || who.role == "admin" ? 0 : 403;
  }
  if (who.role == "agent" || who.role == "node") return 403;
  static const std::map<std::string, int> rank = {
      {"viewer", 1}, {"publisher", 2}, {"deployer", 3}, {"admin", 4}};
  if (rank.at(who.role) < rank.at(access)) return 403;
  if (who.staging_only && (production || p.every_env)) return 403;
  if (who.other_app && p.app != AppScope::none) return 403;
  return 0;
}

TEST_F(AccessTest, EveryRouteForEveryRoleAndScope) {
  start_lab(1);
  add_agent("prod-1", "production");
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);

  // Something of each kind in staging and in production, for the routes that take an id.
  std::map<std::string, std::string> vars = {{"{until}", format_time(now_ms() + 3'600'000)}};
  for (const std::string env : {"staging", "production"}) {
    const std::string E = env == "staging" ? "S" : "P";
    const auto d = created_id(
        http("POST", "/api/v1/deploys", fmt::format(R"({{"app":"web","env":"{}"}})", env)),
        "deploy " + env);
    wait_deploy_finished(d);
    vars["{deploy" + E + "}"] = std::to_string(d);
    vars["{freeze" + E + "}"] = std::to_string(
        created_id(http("POST", "/api/v1/freezes",
                        fmt::format(R"({{"env":"{}","app":"web","until":"{}","reason":"m"}})", env,
                                    format_time(now_ms() + 3'600'000))),
                   "freeze " + env));
    vars["{run" + E + "}"] = std::to_string(created_id(
        http("POST", "/api/v1/runs", fmt::format(R"({{"env":"{}","argv":["true"]}})", env)),
        "run " + env));
    vars["{plan" + E + "}"] =
        fmt::format("p{}", created_id(http("POST", "/api/v1/plans",
                                           fmt::format(R"({{"app":"web","env":"{}","force":true,)"
                                                       R"("stages":[{{"name":"all"}}]}})",
                                                       env)),
                                      "plan " + env));
  }

  const std::map<std::string, Probe> kProbes = {
      {"GET /healthz", {"/healthz", "", "", "", AppScope::none}},
      {"POST /api/v1/artifacts/{app}/{version}",
       {"/api/v1/artifacts/web/7.7.7", "not a tarball", "", "", AppScope::web, true}},
      {"GET /api/v1/artifacts", {"/api/v1/artifacts", "", "", "", AppScope::none}},
      {"GET /api/v1/artifacts/{app}", {"/api/v1/artifacts/web", "", "", "", AppScope::web}},
      {"GET /api/v1/artifacts/{app}/{version}",
       {"/api/v1/artifacts/web/1.0.0", "", "", "", AppScope::web}},
      {"GET /api/v1/artifacts/{app}/{version}/download",
       {"/api/v1/artifacts/web/7.7.7/download", "", "", "", AppScope::web}},
      {"GET /api/v1/blobs/{sha256}",
       {"/api/v1/blobs/" + std::string(64, '0'), "", "", "", AppScope::none}},
      {"POST /api/v1/deploys",
       {"/api/v1/deploys", R"({"app":"web","env":"staging","version":"9.9.9"})", "/api/v1/deploys",
        R"({"app":"web","env":"production","version":"9.9.9"})", AppScope::web}},
      {"POST /api/v1/rollbacks",
       {"/api/v1/rollbacks", R"({"app":"web","env":"staging","to":"9.9.9"})", "/api/v1/rollbacks",
        R"({"app":"web","env":"production","to":"9.9.9"})", AppScope::web}},
      {"POST /api/v1/deploys/preview",
       {"/api/v1/deploys/preview", R"({"app":"web","env":"staging","version":"9.9.9"})",
        "/api/v1/deploys/preview", R"({"app":"web","env":"production","version":"9.9.9"})",
        AppScope::web}},
      {"POST /api/v1/rollbacks/preview",
       {"/api/v1/rollbacks/preview", R"({"app":"web","env":"staging","to":"9.9.9"})",
        "/api/v1/rollbacks/preview", R"({"app":"web","env":"production","to":"9.9.9"})",
        AppScope::web}},
      {"GET /api/v1/artifacts/{app}/{version}/diff",
       {"/api/v1/artifacts/web/1.0.0/diff", "", "", "", AppScope::web}},
      {"GET /api/v1/metrics/delivery",
       {"/api/v1/metrics/delivery?env=staging&app=web&days=1", "",
        "/api/v1/metrics/delivery?env=production&app=web&days=1", "", AppScope::web}},
      {"GET /api/v1/whoami", {"/api/v1/whoami", "", "", "", AppScope::none}},
      {"GET /api/v1/deploys",
       {"/api/v1/deploys?env=staging&app=web", "", "/api/v1/deploys?env=production&app=web", "",
        AppScope::web}},
      {"GET /api/v1/deploys/{id}",
       {"/api/v1/deploys/{deployS}", "", "/api/v1/deploys/{deployP}", "", AppScope::web}},
      {"POST /api/v1/deploys/{id}/abort",
       {"/api/v1/deploys/{deployS}/abort", "", "/api/v1/deploys/{deployP}/abort", "",
        AppScope::web}},
      {"POST /api/v1/deploys/{id}/pause",
       {"/api/v1/deploys/{deployS}/pause", "", "/api/v1/deploys/{deployP}/pause", "",
        AppScope::web}},
      {"POST /api/v1/deploys/{id}/resume",
       {"/api/v1/deploys/{deployS}/resume", "", "/api/v1/deploys/{deployP}/resume", "",
        AppScope::web}},
      {"POST /api/v1/deploys/{id}/promote",
       {"/api/v1/deploys/{deployS}/promote", "", "/api/v1/deploys/{deployP}/promote", "",
        AppScope::web}},
      {"GET /api/v1/deploys/{id}/watch",
       {"/api/v1/deploys/{deployS}/watch", "", "/api/v1/deploys/{deployP}/watch", "",
        AppScope::web}},
      {"GET /api/v1/agent/ws", {"/api/v1/agent/ws", "", "", "", AppScope::none, false, true}},
      {"POST /api/v1/freezes",
       {"/api/v1/freezes", R"({"env":"staging","app":"web","until":"{until}","reason":"x"})",
        "/api/v1/freezes", R"({"env":"production","app":"web","until":"{until}","reason":"x"})",
        AppScope::web}},
      {"GET /api/v1/freezes",
       {"/api/v1/freezes?env=staging&app=web", "", "/api/v1/freezes?env=production&app=web", "",
        AppScope::web}},
      {"GET /api/v1/freezes/{id}",
       {"/api/v1/freezes/{freezeS}", "", "/api/v1/freezes/{freezeP}", "", AppScope::web}},
      {"POST /api/v1/freezes/lift",
       {"/api/v1/freezes/lift", R"({"id":{freezeS}})", "/api/v1/freezes/lift",
        R"({"id":{freezeP}})", AppScope::web}},
      {"DELETE /api/v1/freezes/{id}",
       {"/api/v1/freezes/{freezeS}", "", "/api/v1/freezes/{freezeP}", "", AppScope::web}},
      {"GET /api/v1/nodes",
       {"/api/v1/nodes?env=staging", "", "/api/v1/nodes?env=production", "", AppScope::none}},
      {"GET /api/v1/nodes/{name}",
       {"/api/v1/nodes/node-1", "", "/api/v1/nodes/prod-1", "", AppScope::none}},
      {"POST /api/v1/nodes/{name}/release",
       {"/api/v1/nodes/node-1/release", "", "/api/v1/nodes/prod-1/release", "", AppScope::all}},
      {"POST /api/v1/nodes/{name}/revoke",
       {"/api/v1/nodes/no-such-node/revoke", "{\"x\":1}", "", "", AppScope::all}},
      {"GET /api/v1/status",
       {"/api/v1/status?env=staging&app=web", "", "/api/v1/status?env=production&app=web", "",
        AppScope::web}},
      {"GET /api/v1/stats", {"/api/v1/stats", "", "", "", AppScope::none}},
      {"GET /api/v1/envs/{env}/lb",
       {"/api/v1/envs/staging/lb", "", "/api/v1/envs/production/lb", "", AppScope::none}},
      {"PUT /api/v1/envs/{env}/lb",
       {"/api/v1/envs/staging/lb", "{}", "/api/v1/envs/production/lb", "{}", AppScope::all}},
      {"DELETE /api/v1/envs/{env}/lb",
       {"/api/v1/envs/staging/lb", "", "/api/v1/envs/production/lb", "", AppScope::all}},
      {"POST /api/v1/plans",
       {"/api/v1/plans",
        R"({"app":"web","env":"staging","stages":[{"name":"a","version":"9.9.9"}]})",
        "/api/v1/plans",
        R"({"app":"web","env":"production","stages":[{"name":"a","version":"9.9.9"}]})",
        AppScope::web}},
      {"GET /api/v1/plans",
       {"/api/v1/plans?env=staging", "", "/api/v1/plans?env=production", "", AppScope::none}},
      {"GET /api/v1/plans/{id}",
       {"/api/v1/plans/{planS}", "", "/api/v1/plans/{planP}", "", AppScope::web}},
      {"POST /api/v1/plans/{id}/promote",
       {"/api/v1/plans/{planS}/promote", "", "/api/v1/plans/{planP}/promote", "", AppScope::web}},
      {"POST /api/v1/plans/{id}/abort",
       {"/api/v1/plans/{planS}/abort", "", "/api/v1/plans/{planP}/abort", "", AppScope::web}},
      {"POST /api/v1/runs",
       {"/api/v1/runs", R"({"env":"staging","role":"nomatch","argv":["true"]})", "/api/v1/runs",
        R"({"env":"production","role":"nomatch","argv":["true"]})", AppScope::all}},
      {"GET /api/v1/runs",
       {"/api/v1/runs?env=staging", "", "/api/v1/runs?env=production", "", AppScope::none}},
      {"GET /api/v1/runs/{id}",
       {"/api/v1/runs/{runS}", "", "/api/v1/runs/{runP}", "", AppScope::none}},
      {"GET /api/v1/envs/{env}/apps/{app}/config",
       {"/api/v1/envs/staging/apps/web/config", "", "/api/v1/envs/production/apps/web/config", "",
        AppScope::web}},
      {"PATCH /api/v1/envs/{env}/apps/{app}/config",
       {"/api/v1/envs/staging/apps/web/config", "{}", "/api/v1/envs/production/apps/web/config",
        "{}", AppScope::web}},
      {"GET /api/v1/envs/{env}/apps/{app}/secrets",
       {"/api/v1/envs/staging/apps/web/secrets", "", "/api/v1/envs/production/apps/web/secrets", "",
        AppScope::web}},
      {"PUT /api/v1/envs/{env}/apps/{app}/secrets/{key}",
       {"/api/v1/envs/staging/apps/web/secrets/K", "{}",
        "/api/v1/envs/production/apps/web/secrets/K", "{}", AppScope::web}},
      {"DELETE /api/v1/envs/{env}/apps/{app}/secrets/{key}",
       {"/api/v1/envs/staging/apps/web/secrets/NOPE", "",
        "/api/v1/envs/production/apps/web/secrets/NOPE", "", AppScope::web}},
      {"POST /api/v1/tokens", {"/api/v1/tokens", "{}", "", "", AppScope::none}},
      {"GET /api/v1/tokens", {"/api/v1/tokens", "", "", "", AppScope::none}},
      {"DELETE /api/v1/tokens/{ref}", {"/api/v1/tokens/nobody", "", "", "", AppScope::none}},
      {"GET /api/v1/audit", {"/api/v1/audit?limit=1", "", "", "", AppScope::none}},
      {"GET /api/v1/audit/verify", {"/api/v1/audit/verify", "", "", "", AppScope::none}},
      {"POST /api/v1/secrets/rotate-key",
       {"/api/v1/secrets/rotate-key", "", "", "", AppScope::none}},
      {"GET /api/v1/routes", {"/api/v1/routes", "", "", "", AppScope::none}},
      {"POST /api/v1/notify/hooks", {"/api/v1/notify/hooks", "{}", "", "", AppScope::none}},
      {"GET /api/v1/notify/hooks", {"/api/v1/notify/hooks", "", "", "", AppScope::none}},
      {"DELETE /api/v1/notify/hooks/{name}",
       {"/api/v1/notify/hooks/nobody", "", "", "", AppScope::none}},
      {"POST /api/v1/notify/hooks/{name}/test",
       {"/api/v1/notify/hooks/nobody/test", "", "", "", AppScope::none}},
      {"GET /api/v1/notify/deliveries",
       {"/api/v1/notify/deliveries?limit=1", "", "", "", AppScope::none}},
      {"POST /api/v1/join-tokens", {"/api/v1/join-tokens", "{}", "", "", AppScope::none}},
      {"GET /api/v1/join-tokens", {"/api/v1/join-tokens", "", "", "", AppScope::none}},
      {"DELETE /api/v1/join-tokens/{name}",
       {"/api/v1/join-tokens/nobody", "", "", "", AppScope::none}},
      {"GET /api/v1/envs", {"/api/v1/envs", "", "", "", AppScope::none}},
      {"POST /api/v1/envs/{env}/protect",
       {"/api/v1/envs/staging/protect", "{\"x\":1}", "/api/v1/envs/production/protect", "{\"x\":1}",
        AppScope::all}},
      {"POST /api/v1/envs/{env}/unprotect",
       {"/api/v1/envs/staging/unprotect", "{\"x\":1}", "/api/v1/envs/production/unprotect",
        "{\"x\":1}", AppScope::all}},
      {"POST /api/v1/nodes/{name}/move",
       {"/api/v1/nodes/no-such-node/move", "{\"env\":\"staging\"}", "", "", AppScope::all}},
      {"POST /api/v1/nodes/{name}/approve",
       {"/api/v1/nodes/no-such-node/approve", "", "", "", AppScope::all}},
  };

  const std::string expiring = create_token(R"({"role":"admin","name":"soon-gone","ttl":"1s"})");
  const std::string revoked = create_token(R"({"role":"admin","name":"revoked"})");
  ASSERT_EQ(http("DELETE", "/api/v1/tokens/revoked").status, 200);
  const std::string credential_file = read_file(node_root("node-1") / "agent.credential").value();
  const std::string node_credential(trim(credential_file));
  const std::vector<Caller> callers = {
      {"no token", "", ""},
      {"viewer", create_token(R"({"role":"viewer","name":"viewer"})"), "viewer"},
      {"publisher", create_token(R"({"role":"publisher","name":"publisher"})"), "publisher"},
      {"deployer for staging",
       create_token(R"({"role":"deployer","name":"staging-deployer","envs":["staging"]})"),
       "deployer", true},
      {"deployer for app api",
       create_token(R"({"role":"deployer","name":"api-deployer","apps":["api"]})"), "deployer",
       false, true},
      {"admin", create_token(R"({"role":"admin","name":"second-admin"})"), "admin"},
      {"bootstrap admin", info().admin_token, "admin"},
      {"agent join token", info().join_token, "agent"},
      {"node credential", node_credential, "node"},
      {"expired", expiring, "dead"},
      {"revoked", revoked, "dead"},
  };
  ASSERT_TRUE(
      wait_until([&] { return http("GET", "/api/v1/stats", "", {}, expiring).status == 401; },
                 Millis(10'000)));

  const auto routes = arr(get_json("/api/v1/routes"), "routes");
  ASSERT_GE(routes.size(), kProbes.size());
  std::set<std::string> seen;
  for (const auto& rv : routes) {
    const std::string key = str(rv, "method") + " " + str(rv, "pattern");
    const std::string access = str(rv, "access");
    EXPECT_FALSE(str(rv, "action").empty()) << key << " has no action label";
    seen.insert(key);
    auto it = kProbes.find(key);
    if (it == kProbes.end()) {
      ADD_FAILURE() << key << " (" << access
                    << ") has no probe in kProbes: add one, with its scope";
      continue;
    }
    const Probe& p = it->second;
    const std::string method = str(rv, "method");
    for (const auto& who : callers) {
      for (const bool production : {false, true}) {
        if (production && p.production.empty()) continue;
        const std::string target = subst(production ? p.production : p.staging, vars);
        const std::string body = subst(production ? p.production_body : p.staging_body, vars);
        const auto r = http(method, target, body, {}, who.token);
        const int want = expected(who, access, p, production);
        const std::string what = fmt::format("{} {} ({}) as {}: {} {}", method, target, access,
                                             who.label, r.status, r.body.substr(0, 300));
        if (want == 0) {
          EXPECT_NE(r.status, 401) << what;
          EXPECT_NE(r.status, 403) << what;
          EXPECT_NE(r.status, 500) << what;
        } else {
          EXPECT_EQ(r.status, want) << what;
        }
      }
    }
  }
  for (const auto& probe : kProbes) {
    EXPECT_TRUE(seen.contains(probe.first)) << probe.first << " is probed but not registered";
  }
  // The server kept working through all of it.
  EXPECT_EQ(http("GET", "/api/v1/stats").status, 200);
}

TEST_F(AccessTest, ScopedTokensSeeOnlyTheirScopeInListings) {
  start_lab(1);
  add_agent("prod-1", "production");
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(push(release("1.0.0", {.app = "api"}), "api", "1.0.0").exit_code, 0);
  for (const std::string env : {"staging", "production"}) {
    auto r = http("POST", "/api/v1/freezes",
                  fmt::format(R"({{"env":"{}","app":"web","until":"{}","reason":"m"}})", env,
                              format_time(now_ms() + 3'600'000)));
    ASSERT_EQ(r.status, 201) << r.body;
    r = http("POST", "/api/v1/runs", fmt::format(R"({{"env":"{}","argv":["true"]}})", env));
    ASSERT_EQ(r.status, 201) << r.body;
  }
  const std::string staging =
      create_token(R"({"role":"viewer","name":"staging-viewer","envs":["staging"]})");
  const std::string api = create_token(R"({"role":"viewer","name":"api-viewer","apps":["api"]})");

  auto names = [&](const std::string& target, const std::string& token, const char* list,
                   const char* key) {
    auto r = http("GET", target, "", {}, token);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    std::set<std::string> out;
    const auto answer = parse(r.body, target);
    for (const auto& e : arr(answer, list))
      out.insert(str(e, key));
    return out;
  };
  EXPECT_EQ(names("/api/v1/nodes", staging, "nodes", "name"), std::set<std::string>{"node-1"});
  EXPECT_EQ(names("/api/v1/nodes", api, "nodes", "name"),
            (std::set<std::string>{"node-1", "prod-1"}));
  EXPECT_EQ(names("/api/v1/freezes", staging, "freezes", "env"), std::set<std::string>{"staging"});
  EXPECT_TRUE(names("/api/v1/freezes", api, "freezes", "env").empty());
  EXPECT_EQ(names("/api/v1/runs", staging, "runs", "env"), std::set<std::string>{"staging"});
  EXPECT_EQ(names("/api/v1/artifacts", api, "apps", "app"), std::set<std::string>{"api"});
  EXPECT_EQ(names("/api/v1/artifacts", staging, "apps", "app"),
            (std::set<std::string>{"api", "web"}));
  // Naming what is out of scope is refused, not filtered to nothing.
  EXPECT_EQ(http("GET", "/api/v1/deploys?env=production", "", {}, staging).status, 403);
  EXPECT_EQ(http("GET", "/api/v1/status?app=web", "", {}, api).status, 403);
  EXPECT_EQ(http("GET", "/api/v1/nodes/prod-1", "", {}, staging).status, 403);
}

TEST_F(AccessTest, HostileTokenRequests) {
  start_lab(1);
  struct Case {
    std::string body;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", 400, "request body"},
      {"[]", 400, ""},
      {R"({"name":"x"})", 400, "field 'role' is required"},
      {R"({"role":"root"})", 400, "not a role"},
      {R"({"role":"viewer","bogus":1})", 400, "unknown field 'bogus'"},
      {R"({"role":"viewer","envs":"staging"})", 400, "envs"},
      {R"({"role":"viewer","envs":[1]})", 400, "envs"},
      {R"({"role":"viewer","envs":["../etc"]})", 400, "environment"},
      {R"({"role":"viewer","apps":["a b"]})", 400, "app name"},
      {R"({"role":"viewer","name":"a/b"})", 400, "token name"},
      {R"({"role":"viewer","name":"x\u0000y"})", 400, "token name"},
      {R"({"role":"viewer","name":")" + std::string(64, 'n') + R"("})", 400, "too long"},
      {R"({"role":"viewer","ttl":"soon"})", 400, "ttl"},
      {R"({"role":"viewer","ttl":"0s"})", 400, "ttl"},
      {R"({"role":"viewer","ttl":"9999d"})", 400, "ttl"},
      {R"({"role":"viewer","ttl":"99999999d"})", 400, "ttl"},
      {R"({"role":"admin","envs":["staging"]})", 400, "cannot be scoped"},
      {R"({"role":"publisher","envs":["staging"]})", 400, "cannot be scoped to environments"},
      {R"({"role":"viewer","name":1})", 400, "name"},
  };
  for (const auto& c : cases) {
    auto r = http("POST", "/api/v1/tokens", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find(c.message), std::string::npos) << c.body << " -> " << r.body;
  }
  ASSERT_EQ(http("POST", "/api/v1/tokens", R"({"role":"viewer","name":"dup"})").status, 201);
  EXPECT_EQ(http("POST", "/api/v1/tokens", R"({"role":"viewer","name":"dup"})").status, 409);
  EXPECT_EQ(http("DELETE", "/api/v1/tokens/dup").status, 200);
  EXPECT_EQ(http("DELETE", "/api/v1/tokens/dup").status, 409);
  EXPECT_EQ(http("DELETE", "/api/v1/tokens/999999").status, 404);
  const int dots = http("DELETE", "/api/v1/tokens/%2e%2e").status;
  EXPECT_TRUE(dots == 400 || dots == 404) << dots;
  for (const std::string q : {"?since=yesterday", "?since=2026-13-01T00:00:00Z", "?limit=0",
                              "?limit=-1", "?limit=10001", "?limit=1x", "?limit=99999999999"}) {
    EXPECT_EQ(http("GET", "/api/v1/audit" + q).status, 400) << q;
  }
  // Hostile bearer tokens: long, unknown, a hash instead of the secret, the bare prefix.
  for (const std::string& t : {std::string(8000, 'a'), "slwt_" + std::string(64, 'f'),
                               std::string(64, 'f'), std::string("slwt_")}) {
    EXPECT_EQ(http("GET", "/api/v1/stats", "", {}, t).status, 401);
  }
  EXPECT_EQ(http("GET", "/api/v1/stats").status, 200);
}

TEST_F(AccessTest, TokenAndAuditCommands) {
  start_lab(1);
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);

  auto r = cli({"token", "create", "--role", "deployer", "--env", "staging", "--app", "web,api",
                "--name", "ci", "--ttl", "30d"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("created token 'ci'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("environments staging, apps api,web"), std::string::npos) << r.out;
  const auto at = r.out.find("slwt_");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string secret = r.out.substr(at, r.out.find('\n', at) - at);
  ASSERT_EQ(secret.size(), 69u) << secret;

  const auto viewer = cli_json({"token", "create", "--role", "viewer", "--name", "watcher"});
  const std::string viewer_secret = str(viewer, "token");
  EXPECT_EQ(viewer_secret.rfind("slwt_", 0), 0u);
  EXPECT_EQ(str(viewer, "role"), "viewer");
  EXPECT_EQ(str(viewer, "expires_at"), "");

  r = cli({"token", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("ci"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("watcher"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deployer"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(secret), std::string::npos) << "the secret is never shown again";
  const auto listed = cli_json({"token", "list"});
  ASSERT_EQ(arr(listed, "tokens").size(), 2u);
  const std::string listed_text = to_json(listed);
  EXPECT_EQ(listed_text.find(secret), std::string::npos);
  EXPECT_EQ(listed_text.find("\"hash\""), std::string::npos) << listed_text;

  // The scoped deployer: staging yes, production no; the viewer changes nothing.
  auto as = [&](const std::string& token) {
    return std::map<std::string, std::string>{{"SLIPWAY_SERVER", info().server_url},
                                              {"SLIPWAY_TOKEN", token}};
  };
  const auto as_ci = as(secret);
  r = cli_env({"deploy", "web", "--env", "staging"}, as_ci);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli_env({"deploy", "web", "--env", "production"}, as_ci);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("scoped to environment(s) staging"), std::string::npos) << r.err;
  r = cli_env({"run", "--env", "production", "--", "true"}, as_ci);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli_env({"token", "list"}, as_ci);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli_env({"freeze", "--env", "staging", "--until", "1h", "--reason", "x"}, as(viewer_secret));
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("needs the deployer role"), std::string::npos) << r.err;

  r = cli({"token", "revoke", "ci"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("revoked token 'ci'"), std::string::npos) << r.out;
  r = cli_env({"status", "--env", "staging"}, as_ci);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("revoked"), std::string::npos) << r.err;
  r = cli({"token", "revoke", "../ci"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = cli({"token", "revoke", "nobody"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = cli({"token", "list"});
  EXPECT_NE(r.out.find("revoked by"), std::string::npos) << r.out;

  // The audit log: who did what, allowed or not; reads are not in it.
  r = cli({"audit"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* action : {"token.create", "token.revoke", "deploy.create", "artifact.push",
                             "run.create", "freeze.create"}) {
    EXPECT_NE(r.out.find(action), std::string::npos) << action << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find(secret), std::string::npos);
  const auto audit = cli_json({"audit"});
  bool refused_prod = false;
  for (const auto& e : arr(audit, "entries")) {
    EXPECT_NE(str(e, "action"), "deploy.list");
    EXPECT_NE(str(e, "method"), "GET");
    EXPECT_FALSE(str(e, "remote").empty());
    if (str(e, "action") == "deploy.create" && str(e, "token") == "ci" && i64(e, "status") == 403) {
      refused_prod = true;
      EXPECT_EQ(str(e, "error_code"), "forbidden");
      EXPECT_NE(str(e, "target").find("env=production app=web"), std::string::npos) << to_json(e);
    }
  }
  EXPECT_TRUE(refused_prod) << to_json(audit);
  EXPECT_EQ(to_json(audit).find(secret), std::string::npos);

  EXPECT_FALSE(arr(cli_json({"audit", "--since", "1h"}), "entries").empty());
  EXPECT_TRUE(arr(cli_json({"audit", "--since", "2099-01-01T00:00:00Z"}), "entries").empty());
  EXPECT_EQ(arr(cli_json({"audit", "--limit", "2"}), "entries").size(), 2u);
  r = cli({"audit", "--since", "yesterday"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = cli_env({"audit"}, as(viewer_secret));
  EXPECT_EQ(r.exit_code, 3) << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
