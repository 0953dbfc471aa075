#include <gtest/gtest.h>

#include "unit/store/store_fixture.h"

namespace slipway::store {
namespace {

using ConfigStoreTest = FreshStoreTest;

std::string kinds(const engine::ConfigVersion& cv) {
  std::string out;
  for (const auto& c : cv.changes)
    out += std::string(engine::config_change_name(c.kind)) + " " + c.key + ";";
  return out;
}

TEST_F(ConfigStoreTest, AnEmptyConfigIsVersionZero) {
  auto c = store_->get_config("prod", "web");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->version, 0);
  EXPECT_TRUE(c->entries.empty());
}

TEST_F(ConfigStoreTest, EachChangeIsAVersionWithWhatChanged) {
  auto v1 = store_->change_config(
      "prod", "web", {{"B", false, "1"}, {"A", false, "x"}, {"S", true, "v1:sealed"}}, "alice", 10);
  ASSERT_TRUE(v1) << v1.error().message;
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(kinds(*v1), "added B;added A;added S;");
  auto v2 = store_->change_config("prod", "web", {{"A", false, "y"}, {"B", false, std::nullopt}},
                                  "bob", 20);
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(kinds(*v2), "changed A;removed B;");
  // The same plain value again changes nothing: no new version.
  auto same = store_->change_config("prod", "web", {{"A", false, "y"}}, "bob", 30);
  ASSERT_TRUE(same);
  EXPECT_EQ(same->version, 2);
  EXPECT_TRUE(same->changes.empty());

  auto c = store_->get_config("prod", "web").value();
  EXPECT_EQ(c.version, 2);
  ASSERT_EQ(c.entries.size(), 2u);
  EXPECT_EQ(c.entries[0].key, "A");
  EXPECT_EQ(c.entries[0].value, "y");
  EXPECT_EQ(c.entries[0].updated_by, "bob");
  EXPECT_EQ(c.entries[1].key, "S");
  EXPECT_TRUE(c.entries[1].secret);
  EXPECT_EQ(c.entries[1].value, "v1:sealed");

  auto versions = store_->config_versions("prod", "web", 0, 2).value();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].actor, "alice");
  EXPECT_EQ(kinds(versions[1]), "changed A;removed B;");
  EXPECT_EQ(store_->config_versions("prod", "web", 1, 2).value().size(), 1u);
  // Other scopes are apart.
  EXPECT_EQ(store_->get_config("staging", "web").value().version, 0);
  EXPECT_EQ(store_->get_config("prod", "api").value().entries.size(), 0u);
}

TEST_F(ConfigStoreTest, AFailedChangeLeavesNothingBehind) {
  ASSERT_TRUE(store_->change_config("prod", "web", {{"S", true, "v1:x"}}, "a", 1));
  // Unsetting a key that is not there, or a secret as plain config, is not_found.
  auto missing = store_->change_config("prod", "web",
                                       {{"A", false, "1"}, {"NOPE", false, std::nullopt}}, "a", 2);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  auto wrong_kind = store_->change_config("prod", "web", {{"S", false, std::nullopt}}, "a", 2);
  ASSERT_FALSE(wrong_kind);
  EXPECT_EQ(wrong_kind.error().code, Errc::not_found);
  // A secret cannot silently become plain config.
  auto demote = store_->change_config("prod", "web", {{"S", false, "clear"}}, "a", 2);
  ASSERT_FALSE(demote);
  EXPECT_EQ(demote.error().code, Errc::conflict);
  auto c = store_->get_config("prod", "web").value();
  EXPECT_EQ(c.version, 1);
  ASSERT_EQ(c.entries.size(), 1u);
  EXPECT_EQ(c.entries[0].value, "v1:x");
}

TEST_F(ConfigStoreTest, TheNumberOfKeysIsBounded) {
  std::vector<ConfigEdit> edits;
  for (size_t i = 0; i < engine::kMaxConfigEntries; ++i)
    edits.push_back({"K" + std::to_string(i), false, "v"});
  ASSERT_TRUE(store_->change_config("prod", "web", edits, "a", 1));
  auto more = store_->change_config("prod", "web", {{"ONE_MORE", false, "v"}}, "a", 2);
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error().code, Errc::failed_precondition);
  EXPECT_TRUE(store_->change_config("prod", "web", {{"K0", false, "changed"}}, "a", 3));
}

// Every key and value travels in one install message, which the agent reads up to 1 MiB.
TEST_F(ConfigStoreTest, TheTotalSizeIsBoundedAndARefusedChangeLeavesNothing) {
  const std::string big(engine::kMaxConfigValue, 'x');
  std::vector<ConfigEdit> edits;
  for (size_t i = 0; i * big.size() < engine::kMaxConfigBytes - big.size(); ++i)
    edits.push_back({"K" + std::to_string(i), false, big});
  ASSERT_TRUE(store_->change_config("prod", "web", edits, "a", 1));
  const auto before = store_->get_config("prod", "web").value();
  auto more =
      store_->change_config("prod", "web", {{"ONE", false, big}, {"TWO", false, big}}, "a", 2);
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error().code, Errc::too_large);
  const auto after = store_->get_config("prod", "web").value();
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(after.entries.size(), before.entries.size());
}

TEST_F(ConfigStoreTest, ADeployKeepsItsConfigVersion) {
  engine::Deploy d;
  d.id = 5;
  d.app = "web";
  d.env = "prod";
  d.version = "1.0.0";
  d.config_version = 7;
  ASSERT_TRUE(store_->save_deploy(d));
  auto back = store_->get_deploy(5).value();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->config_version, 7);
}

// What a key rotation goes through: every sealed value (config secrets, hooks' credentials),
// replaced in place in one transaction; plain values untouched; a missing place refuses.
TEST_F(ConfigStoreTest, SealedValuesAreListedAndReplacedInPlace) {
  ASSERT_TRUE(store_->change_config("prod", "web", {{"A", false, "plain"}, {"S", true, "v1:old-s"}},
                                    "alice", 10));
  ASSERT_TRUE(store_->change_config("dev", "api", {{"T", true, "v1:old-t"}}, "alice", 10));
  NotifyHookRecord hook;
  hook.name = "ci";
  hook.kind = "webhook";
  hook.target = "https://example.test/hook";
  hook.events = {"deploy.finished"};
  hook.secret = "v1:old-h";
  ASSERT_TRUE(store_->insert_notify_hook(hook));
  hook.name = "mail";
  hook.kind = "email";
  hook.secret = "";
  ASSERT_TRUE(store_->insert_notify_hook(hook));

  auto values = store_->list_sealed_values();
  ASSERT_TRUE(values) << values.error().message;
  ASSERT_EQ(values->size(), 3u) << "secrets and the webhook's; no plain value, no e-mail hook";
  for (auto& v : *values)
    v.sealed = "v1:new-" + v.sealed.substr(7);
  ASSERT_TRUE(store_->replace_sealed_values(*values, {{"secrets/key_check", "v1:check"}}));
  EXPECT_EQ(store_->get_meta("secrets/key_check").value().value_or(""), "v1:check");
  const auto prod = store_->get_config("prod", "web").value();
  ASSERT_EQ(prod.entries.size(), 2u);
  EXPECT_EQ(prod.entries[0].value, "plain");
  EXPECT_EQ(prod.entries[1].value, "v1:new-s");
  EXPECT_EQ(prod.version, 1) << "a rotation is not a config change";
  EXPECT_EQ(store_->get_config("dev", "api").value().entries[0].value, "v1:new-t");
  EXPECT_EQ(store_->list_notify_hooks().value()[0].secret, "v1:new-h");

  // All or none: a place that does not exist refuses the whole change.
  std::vector<SealedValue> gone = *values;
  gone.front().sealed = "v1:newer";
  gone.push_back({SealedValue::Kind::config, "prod", "web", "NOPE", "", "v1:x"});
  auto st = store_->replace_sealed_values(gone, {{"secrets/key_check", "v1:other"}});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::not_found);
  EXPECT_EQ(store_->get_config("dev", "api").value().entries[0].value, "v1:new-t");
  EXPECT_EQ(store_->get_meta("secrets/key_check").value().value_or(""), "v1:check");
}

}  // namespace
}  // namespace slipway::store
