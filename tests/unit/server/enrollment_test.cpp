// The enrollment rules (server/enrollment.h): which hello a join token may enroll, what an
// enrolled node may claim, and the table the listener authenticates agents with.
#include "server/enrollment.h"

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace slipway::server {
namespace {

store::JoinTokenRecord token(std::string env, std::vector<std::string> roles = {}) {
  store::JoinTokenRecord t;
  t.id = 7;
  t.name = env + "-web";
  t.env = std::move(env);
  t.roles = std::move(roles);
  return t;
}

store::NodeCredential enrolled(std::string env, std::vector<std::string> roles) {
  store::NodeCredential c;
  c.node = "web-1";
  c.hash = std::string(64, 'a');
  c.env = std::move(env);
  c.roles = std::move(roles);
  return c;
}

std::string message(const Status& st) {
  return st ? std::string() : st.error().message;
}

TEST(Enrollment, AJoinTokenEnrollsIntoItsEnvironmentAndRolesOnly) {
  const auto staging = token("staging", {"web", "api"});
  EXPECT_TRUE(check_enrollment(&staging, "staging", {"web"}, false, 1));
  EXPECT_TRUE(check_enrollment(&staging, "staging", {"api", "web"}, false, 1));
  EXPECT_TRUE(check_enrollment(&staging, "staging", {}, false, 1));
  // Its own environment even when protected: that is what a scoped token is for.
  EXPECT_TRUE(check_enrollment(&staging, "staging", {"web"}, true, 1));

  auto st = check_enrollment(&staging, "production", {"web"}, false, 1);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::forbidden);
  EXPECT_NE(message(st).find("'staging-web' enrolls nodes into environment staging only, not "
                             "production"),
            std::string::npos)
      << message(st);
  st = check_enrollment(&staging, "staging", {"web", "db"}, false, 1);
  ASSERT_FALSE(st);
  EXPECT_NE(message(st).find("roles web,api only, not 'db'"), std::string::npos) << message(st);

  // No roles on the token: any.
  const auto any = token("staging");
  EXPECT_TRUE(check_enrollment(&any, "staging", {"db", "lb"}, false, 1));
}

TEST(Enrollment, TheDefaultJoinTokenEnrollsIntoUnprotectedEnvironmentsOnly) {
  EXPECT_TRUE(check_enrollment(nullptr, "staging", {"web"}, false, 1));
  const auto st = check_enrollment(nullptr, "production", {"web"}, true, 1);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::forbidden);
  EXPECT_NE(message(st).find("environment production is protected"), std::string::npos)
      << message(st);
  EXPECT_NE(message(st).find("join-token create --env production"), std::string::npos)
      << message(st);
}

TEST(Enrollment, ExpiredUsedUpAndRevokedTokensEnrollNothingAndSayWhy) {
  auto t = token("staging");
  t.expires_at = 100;
  EXPECT_EQ(join_token_unusable(t, 99), "");
  EXPECT_NE(join_token_unusable(t, 100).find("expired at"), std::string::npos);
  const auto st = check_enrollment(&t, "staging", {}, false, 100);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::unauthenticated);

  t = token("staging");
  t.max_uses = 2;
  t.uses = 1;
  EXPECT_EQ(join_token_unusable(t, 1), "");
  t.uses = 2;
  EXPECT_NE(join_token_unusable(t, 1).find("used up (2 of 2 enrollments)"), std::string::npos);
  EXPECT_FALSE(check_enrollment(&t, "staging", {}, false, 1));

  t = token("staging");
  t.revoked_at = 50;
  t.revoked_by = "alice";
  EXPECT_NE(join_token_unusable(t, 60).find("revoked at"), std::string::npos);
  EXPECT_NE(join_token_unusable(t, 60).find("by alice"), std::string::npos);

  EXPECT_EQ(join_token_to_json(t, 60).at("state").as_string(), "revoked");
}

TEST(Enrollment, AnEnrolledNodeClaimsItsEnvironmentAndEnrolledRolesOnly) {
  const auto c = enrolled("staging", {"api", "web"});
  EXPECT_TRUE(check_claim(c, "staging", {"api", "web"}));
  EXPECT_TRUE(check_claim(c, "staging", {"web"}));  // fewer roles: fine
  EXPECT_TRUE(check_claim(c, "staging", {}));

  auto st = check_claim(c, "production", {"api"});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::forbidden);
  EXPECT_NE(message(st).find("enrolled in environment staging"), std::string::npos) << message(st);
  EXPECT_NE(message(st).find("claims environment production"), std::string::npos) << message(st);
  EXPECT_NE(message(st).find("restart the agent with --env staging --roles api,web"),
            std::string::npos)
      << message(st);
  EXPECT_NE(message(st).find("slipway nodes move web-1"), std::string::npos) << message(st);

  st = check_claim(c, "staging", {"api", "db"});
  ASSERT_FALSE(st);
  EXPECT_NE(message(st).find("claims role 'db'"), std::string::npos) << message(st);

  // Not bound yet (enrolled before schema 11): the caller binds it.
  EXPECT_TRUE(check_claim(enrolled("", {}), "production", {"db"}));
}

TEST(Enrollment, TheTableFindsTokensAndNodesByTheirSecretsOnly) {
  Enrollment e;
  const std::string join_secret = new_join_token_secret();
  EXPECT_TRUE(join_secret.starts_with("slwj_"));
  EXPECT_EQ(join_secret.size(), 69u);
  EXPECT_NE(new_join_token_secret(), join_secret);
  auto t = token("staging");
  t.hash = sha256_hex(join_secret);
  auto c = enrolled("staging", {"api"});
  const std::string credential = "slwc_" + std::string(64, '1');
  c.hash = sha256_hex(credential);
  e.load({t}, {c}, {store::EnvRecord{"production", true, "alice", 1}});

  ASSERT_NE(e.join_token_for(join_secret), nullptr);
  EXPECT_EQ(e.join_token_for(join_secret)->name, "staging-web");
  EXPECT_EQ(e.join_token_for(t.hash), nullptr);  // the hash is not the secret
  EXPECT_EQ(e.join_token_named("staging-web")->id, 7);
  ASSERT_NE(e.node_for(credential), nullptr);
  EXPECT_EQ(e.node_for(credential)->node, "web-1");
  EXPECT_EQ(e.node_for(c.hash), nullptr);
  EXPECT_TRUE(e.is_protected("production"));
  EXPECT_FALSE(e.is_protected("staging"));

  e.count_use(7, 42);
  EXPECT_EQ(e.join_token_named("staging-web")->uses, 1);
  EXPECT_EQ(e.join_token_named("staging-web")->last_used, 42);

  // A move keeps the credential; a revocation forgets it.
  c.env = "production";
  e.put_node(c);
  EXPECT_EQ(e.node_for(credential)->env, "production");
  c.revoked_at = 5;
  c.hash.clear();
  e.put_node(c);
  EXPECT_EQ(e.node_for(credential), nullptr);
  EXPECT_EQ(e.node_named("web-1"), nullptr);

  e.put_env(store::EnvRecord{"production", false, "bob", 2});
  EXPECT_FALSE(e.is_protected("production"));
}

}  // namespace
}  // namespace slipway::server
