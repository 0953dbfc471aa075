#include "engine/config.h"

#include <gtest/gtest.h>

namespace slipway::engine {
namespace {

using K = ConfigChangeKind;

ConfigVersion version(int64_t v, std::vector<ConfigChange> changes) {
  return ConfigVersion{v, std::move(changes), "alice", 0};
}

std::string text(const std::vector<ConfigChange>& changes) {
  std::string out;
  for (const auto& c : changes)
    out += std::string(config_change_name(c.kind)) + " " + c.key + (c.secret ? "*" : "") + ";";
  return out;
}

TEST(ConfigKeys, EnvironmentVariableNamesOnly) {
  for (const auto* ok : {"A", "_", "db_url", "PORT2", "X_Y_Z"})
    EXPECT_TRUE(validate_config_key(ok)) << ok;
  for (const auto* bad : {"", "1A", "A-B", "A B", "A=B", "é", "A\nB", "SLIPWAY_PORT", "SLIPWAY_"})
    EXPECT_FALSE(validate_config_key(bad)) << bad;
  EXPECT_FALSE(validate_config_key(std::string(1, '\0')));
  EXPECT_TRUE(validate_config_key(std::string(kMaxConfigKey, 'K')));
  EXPECT_FALSE(validate_config_key(std::string(kMaxConfigKey + 1, 'K')));
  EXPECT_TRUE(validate_config_key("SLIPWAYX"));
}

TEST(ConfigValues, BoundedAndWithoutNul) {
  EXPECT_TRUE(validate_config_value("K", ""));
  EXPECT_TRUE(validate_config_value("K", std::string(kMaxConfigValue, 'v')));
  auto big = validate_config_value("K", std::string(kMaxConfigValue + 1, 'v'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::too_large);
  EXPECT_FALSE(validate_config_value("K", std::string("a\0b", 3)));
}

TEST(ConfigDiff, NetChangePerKey) {
  const auto net = net_config_changes({
      version(2, {{"A", false, K::added}, {"B", false, K::changed}, {"C", true, K::added}}),
      version(3, {{"A", false, K::changed}, {"C", true, K::removed}, {"D", false, K::removed}}),
      version(4, {{"D", false, K::added}, {"E", true, K::changed}, {"B", false, K::removed}}),
  });
  // A added then changed: added. B changed then removed: removed. C added then removed: nothing.
  // D removed then added: changed. E changed: changed (a secret).
  EXPECT_EQ(text(net), "added A;removed B;changed D;changed E*;");
}

TEST(ConfigDiff, NothingBetweenTheSameVersion) {
  EXPECT_TRUE(net_config_changes({}).empty());
}

TEST(ConfigDiff, ChangesRoundTripThroughJson) {
  const std::vector<ConfigChange> in{{"A", false, K::added}, {"S", true, K::removed}};
  auto out = config_changes_from_json(to_json(in));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(text(*out), text(in));
  auto bad = parse_json(R"([{"key":"A","secret":false,"change":"exploded"}])", "t");
  EXPECT_FALSE(config_changes_from_json(*bad));
  auto extra = parse_json(R"([{"key":"A","secret":false,"change":"added","value":"x"}])", "t");
  EXPECT_FALSE(config_changes_from_json(*extra));
}

}  // namespace
}  // namespace slipway::engine
