// Per-environment configuration of an app: the grammar of its keys and values, the record of each
// change (a new version of the (env, app) config), and the net change between two versions.
// Plain values are kept in clear; secret values are sealed (common/secret_box.h) by the server and
// never leave it except to agents, in install commands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"

namespace slipway::engine {

// Keys are environment-variable names ([A-Za-z_][A-Za-z0-9_]*) of at most kMaxConfigKey
// characters, not starting with SLIPWAY_ (Slipway's own variables); values are at most
// kMaxConfigValue bytes without NUL; an (env, app) holds at most kMaxConfigEntries keys.
inline constexpr size_t kMaxConfigKey = 128;
inline constexpr size_t kMaxConfigValue = 16 * 1024;
inline constexpr size_t kMaxConfigEntries = 200;
// All keys and values of an (env, app) together, as stored (a secret sealed takes about twice its
// size): they travel in one install message, which the agent reads up to 1 MiB.
inline constexpr size_t kMaxConfigBytes = 512 * 1024;

Status validate_config_key(std::string_view key);
Status validate_config_value(std::string_view key, std::string_view value);

enum class ConfigChangeKind { added, changed, removed };
std::string_view config_change_name(ConfigChangeKind k);

struct ConfigChange {
  std::string key;
  bool secret = false;
  ConfigChangeKind kind = ConfigChangeKind::added;
};

// One version of an (env, app) config: what changed from the one before, and who changed it.
struct ConfigVersion {
  int64_t version = 0;
  std::vector<ConfigChange> changes;
  std::string actor;
  TimeMs at = 0;
};

// The net effect of `versions` (in increasing order) per key, sorted by key: added then removed
// is nothing, added then changed is added, removed then added is changed, and so on.
std::vector<ConfigChange> net_config_changes(const std::vector<ConfigVersion>& versions);

json::value to_json(const ConfigChange& c);
json::value to_json(const std::vector<ConfigChange>& changes);
// Strict (for the store's JSON column).
Result<std::vector<ConfigChange>> config_changes_from_json(const json::value& v);

}  // namespace slipway::engine
