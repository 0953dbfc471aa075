// Roles, access levels, scopes and the token table the listener authenticates with.
#include "server/access.h"

#include <gtest/gtest.h>

#include "server/http.h"
#include "server/tokens.h"

namespace slipway::server {
namespace {

Principal token_of(Role role, std::vector<std::string> envs = {},
                   std::vector<std::string> apps = {}) {
  Principal p;
  p.kind = Principal::Kind::token;
  p.role = role;
  p.envs = std::move(envs);
  p.apps = std::move(apps);
  p.name = "t";
  return p;
}

TEST(Access, RolesAreOrderedAndAgentsReachOnlyAgentRoutes) {
  Principal none;
  Principal agent;
  agent.kind = Principal::Kind::agent;
  const auto viewer = token_of(Role::viewer);
  const auto publisher = token_of(Role::publisher);
  const auto deployer = token_of(Role::deployer);
  const auto admin = token_of(Role::admin);
  struct Want {
    Access need;
    bool none, agent, viewer, publisher, deployer, admin;
  };
  for (const auto& w : {Want{Access::public_, true, true, true, true, true, true},
                        Want{Access::agent, false, true, false, false, false, true},
                        Want{Access::viewer, false, false, true, true, true, true},
                        Want{Access::publisher, false, false, false, true, true, true},
                        Want{Access::deployer, false, false, false, false, true, true},
                        Want{Access::admin, false, false, false, false, false, true}}) {
    SCOPED_TRACE(access_name(w.need));
    EXPECT_EQ(access_allowed(none, w.need), w.none);
    EXPECT_EQ(access_allowed(agent, w.need), w.agent);
    EXPECT_EQ(access_allowed(viewer, w.need), w.viewer);
    EXPECT_EQ(access_allowed(publisher, w.need), w.publisher);
    EXPECT_EQ(access_allowed(deployer, w.need), w.deployer);
    EXPECT_EQ(access_allowed(admin, w.need), w.admin);
  }
}

TEST(Access, RolesParse) {
  EXPECT_EQ(parse_role("viewer").value(), Role::viewer);
  EXPECT_EQ(parse_role("publisher").value(), Role::publisher);
  EXPECT_EQ(parse_role("deployer").value(), Role::deployer);
  EXPECT_EQ(parse_role("admin").value(), Role::admin);
  EXPECT_EQ(role_name(Role::publisher), "publisher");
  for (const char* bad : {"", "Admin", "root", "admin ", "viewer\n"}) {
    auto r = parse_role(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  }
  EXPECT_EQ(role_name(Role::deployer), "deployer");
}

TEST(Scope, AnUnscopedTokenCoversEverything) {
  const auto p = token_of(Role::deployer);
  EXPECT_TRUE(authorize_scope(p, "production", "web"));
  EXPECT_TRUE(authorize_scope(p, kAll, kAll));
  EXPECT_TRUE(authorize_scope(p, "", ""));
}

TEST(Scope, AnEnvScopedTokenCoversOnlyItsEnvironments) {
  const auto p = token_of(Role::deployer, {"staging", "qa"});
  EXPECT_TRUE(authorize_scope(p, "staging", "web"));
  EXPECT_TRUE(authorize_scope(p, "qa", kAll)) << "every app of its own environment";
  EXPECT_TRUE(authorize_scope(p, "", "web")) << "no environment involved (a push)";
  auto prod = authorize_scope(p, "production", "web");
  ASSERT_FALSE(prod);
  EXPECT_EQ(prod.error().code, Errc::forbidden);
  EXPECT_NE(prod.error().message.find("'production'"), std::string::npos) << prod.error().message;
  EXPECT_FALSE(authorize_scope(p, kAll, "web")) << "every environment is more than its scope";
  EXPECT_FALSE(authorize_scope(p, "Staging", "web")) << "names are exact";
}

TEST(Scope, AnAppScopedTokenCoversOnlyItsApps) {
  const auto p = token_of(Role::deployer, {}, {"web"});
  EXPECT_TRUE(authorize_scope(p, "production", "web"));
  EXPECT_TRUE(authorize_scope(p, "production", "")) << "no app involved (reading a node)";
  EXPECT_FALSE(authorize_scope(p, "staging", "api"));
  auto every = authorize_scope(p, "staging", kAll);  // a run, a whole-env freeze, lb
  ASSERT_FALSE(every);
  EXPECT_EQ(every.error().code, Errc::forbidden);
  EXPECT_FALSE(in_scope(p, "staging", "api"));
  EXPECT_TRUE(in_scope(p, "staging", "web"));
}

TEST(Scope, NoTokenIsUnauthenticatedAndAuthorizeRecordsTheTarget) {
  Request req;
  auto st = authorize(req, "staging", "web");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::unauthenticated);
  EXPECT_EQ(req.audit_target, "env=staging app=web");
  req.principal = token_of(Role::viewer);
  EXPECT_TRUE(authorize(req, "staging", "web"));
  EXPECT_EQ(req.audit_target, "env=staging app=web") << "recorded once";
  EXPECT_TRUE(authorize(req, "qa", "web"));
  EXPECT_EQ(req.audit_target, "env=staging app=web; env=qa app=web");
}

TEST(Scope, OnlyATokenValidInEveryEnvironmentPushes) {
  EXPECT_TRUE(authorize_push(token_of(Role::publisher), "web"));
  EXPECT_TRUE(authorize_push(token_of(Role::deployer), "web"));
  EXPECT_TRUE(authorize_push(token_of(Role::deployer, {}, {"web"}), "web"));
  auto other_app = authorize_push(token_of(Role::publisher, {}, {"api"}), "web");
  ASSERT_FALSE(other_app);
  EXPECT_EQ(other_app.error().code, Errc::forbidden);
  auto p = token_of(Role::deployer, {"staging"}, {"web"});
  p.name = "ci";
  auto staging = authorize_push(p, "web");
  ASSERT_FALSE(staging);
  EXPECT_EQ(staging.error().code, Errc::forbidden);
  EXPECT_EQ(staging.error().message,
            "token 'ci' is scoped to environments staging: pushing a version makes it deployable "
            "everywhere; use a token valid in every environment of the app, or one with the "
            "publisher role");
  Principal none;
  EXPECT_EQ(authorize_push(none, "web").error().code, Errc::unauthenticated);
}

TEST(Scope, AnObjectOutsideTheScopeIsRefusedWithoutNamingItsPlace) {
  auto p = token_of(Role::deployer, {"staging"});
  p.name = "ci";
  EXPECT_TRUE(authorize_object(p, "deploy #3", "staging", "web"));
  auto prod = authorize_object(p, "deploy #4", "production", "web");
  ASSERT_FALSE(prod);
  EXPECT_EQ(prod.error().code, Errc::forbidden);
  EXPECT_EQ(prod.error().message,
            "deploy #4 is outside the scope of token 'ci' (environments staging)");
  Request req;
  req.principal = p;
  EXPECT_FALSE(authorize_object(req, "deploy #4", "production", "web"));
  EXPECT_EQ(req.audit_target, "env=production app=web") << "the audit log has the whole target";
  Principal none;
  EXPECT_EQ(authorize_object(none, "deploy #4", "production", "web").error().code,
            Errc::unauthenticated);
}

TEST(Tokens, SecretsAreLongRandomAndStoredAsHashes) {
  const auto a = new_token_secret();
  const auto b = new_token_secret();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("slwt_", 0), 0u);
  EXPECT_EQ(a.size(), 5u + 64u);
  EXPECT_EQ(token_hash(a).size(), 64u);
  EXPECT_NE(token_hash(a), token_hash(b));
  EXPECT_EQ(token_hash(a), token_hash(std::string(a)));
  EXPECT_EQ(token_hash(a).find(a), std::string::npos);
}

store::TokenRecord record(int64_t id, const std::string& name, const std::string& secret) {
  store::TokenRecord t;
  t.id = id;
  t.name = name;
  t.hash = token_hash(secret);
  t.role = "deployer";
  t.envs = {"staging"};
  t.created_at = 1'000;
  return t;
}

TEST(Tokens, TheCacheFindsAValidTokenByHash) {
  TokenCache cache;
  cache.load({record(1, "ci", "slwt_one"), record(2, "ops", "slwt_two")});
  auto p = cache.lookup("slwt_two", 5'000);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->kind, Principal::Kind::token);
  EXPECT_EQ(p->name, "ops");
  EXPECT_EQ(p->role, Role::deployer);
  EXPECT_EQ(p->envs, std::vector<std::string>{"staging"});
  EXPECT_EQ(p->token_id, 2);
  auto used = cache.take_used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0], (std::pair<int64_t, TimeMs>{2, 5'000}));
  EXPECT_TRUE(cache.take_used().empty());
  EXPECT_EQ(cache.find_name("ci")->id, 1);
  EXPECT_EQ(cache.find_id(2)->name, "ops");
  EXPECT_EQ(cache.find_id(3), nullptr);
}

TEST(Tokens, UnknownExpiredAndRevokedTokensAreRefusedWithAReason) {
  TokenCache cache;
  auto expiring = record(1, "short", "slwt_short");
  expiring.expires_at = 10'000;
  auto revoked = record(2, "gone", "slwt_gone");
  revoked.revoked_at = 3'000;
  revoked.revoked_by = "alice";
  cache.load({expiring, revoked});

  EXPECT_TRUE(cache.lookup("slwt_short", 9'999));
  auto expired = cache.lookup("slwt_short", 10'000);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, Errc::unauthenticated);
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);

  auto gone = cache.lookup("slwt_gone", 4'000);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::unauthenticated);
  EXPECT_NE(gone.error().message.find("revoked"), std::string::npos);
  EXPECT_NE(gone.error().message.find("alice"), std::string::npos);

  for (const char* bad : {"", "slwt_", "slwt_shorT", "slwt_short ", "\x01\x02", "Bearer x"}) {
    auto r = cache.lookup(bad, 5'000);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::unauthenticated);
    EXPECT_EQ(r.error().message, "the token is not valid");
  }
}

TEST(Tokens, JsonNeverShowsTheSecretOrHash) {
  auto t = record(7, "ci", "slwt_secret");
  const std::string text = to_json(token_to_json(t));
  EXPECT_EQ(text.find(t.hash), std::string::npos) << text;
  EXPECT_EQ(text.find("slwt_secret"), std::string::npos) << text;
  EXPECT_NE(text.find("\"name\":\"ci\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"revoked\":false"), std::string::npos) << text;
}

}  // namespace
}  // namespace slipway::server
