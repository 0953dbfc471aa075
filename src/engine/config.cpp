#include "engine/config.h"

#include <map>

#include <fmt/format.h>

#include "common/strings.h"

namespace slipway::engine {

Status validate_config_key(std::string_view key) {
  bool ok = !key.empty() && key.size() <= kMaxConfigKey;
  for (size_t i = 0; ok && i < key.size(); ++i) {
    const char c = key[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    ok = alpha || (i > 0 && c >= '0' && c <= '9');
  }
  if (!ok) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a config key: an environment-variable name "
                           "([A-Za-z_][A-Za-z0-9_]*) of at most {} characters",
                           excerpt(key, 64), kMaxConfigKey));
  }
  if (key.substr(0, 8) == "SLIPWAY_") {
    return err(Errc::invalid_argument,
               fmt::format("'{}': names starting with SLIPWAY_ are Slipway's own", key));
  }
  return {};
}

Status validate_config_value(std::string_view key, std::string_view value) {
  if (value.size() > kMaxConfigValue) {
    return err(Errc::too_large, fmt::format("the value of {} is {} bytes; at most {}", key,
                                            value.size(), kMaxConfigValue));
  }
  if (value.find('\0') != std::string_view::npos) {
    return err(Errc::invalid_argument, fmt::format("the value of {} holds a NUL byte", key));
  }
  return {};
}

std::string_view config_change_name(ConfigChangeKind k) {
  switch (k) {
    case ConfigChangeKind::added:
      return "added";
    case ConfigChangeKind::changed:
      return "changed";
    case ConfigChangeKind::removed:
      return "removed";
  }
  return "changed";
}

std::vector<ConfigChange> net_config_changes(const std::vector<ConfigVersion>& versions) {
  struct Net {
    bool existed_before = false;  // before the first change seen
    bool exists_after = false;
    bool touched = false;  // changed in place at least once (or removed and added)
    bool secret = false;
  };
  std::map<std::string, Net> net;
  for (const auto& v : versions) {
    for (const auto& c : v.changes) {
      auto [it, fresh] = net.try_emplace(c.key);
      Net& n = it->second;
      if (fresh) {
        n.existed_before = c.kind != ConfigChangeKind::added;
        n.exists_after = n.existed_before;
      }
      if (c.kind == ConfigChangeKind::removed) {
        n.exists_after = false;
      } else {
        if (n.exists_after || c.kind == ConfigChangeKind::changed) n.touched = true;
        if (!n.exists_after && n.existed_before) n.touched = true;
        n.exists_after = true;
      }
      n.secret = n.secret || c.secret;
    }
  }
  std::vector<ConfigChange> out;
  for (const auto& [key, n] : net) {
    if (n.existed_before && n.exists_after) {
      if (n.touched) out.push_back({key, n.secret, ConfigChangeKind::changed});
    } else if (n.exists_after) {
      out.push_back({key, n.secret, ConfigChangeKind::added});
    } else if (n.existed_before) {
      out.push_back({key, n.secret, ConfigChangeKind::removed});
    }
  }
  return out;
}

json::value to_json(const ConfigChange& c) {
  return json::object{
      {"key", c.key}, {"secret", c.secret}, {"change", std::string(config_change_name(c.kind))}};
}

json::value to_json(const std::vector<ConfigChange>& changes) {
  json::array a;
  for (const auto& c : changes)
    a.push_back(to_json(c));
  return a;
}

Result<std::vector<ConfigChange>> config_changes_from_json(const json::value& v) {
  if (!v.is_array()) return err(Errc::invalid_argument, "config changes must be an array");
  std::vector<ConfigChange> out;
  for (const auto& e : v.get_array()) {
    JsonReader r(e, "config change");
    ConfigChange c;
    c.key = r.str("key");
    c.secret = r.boolean_or("secret", false);
    const std::string kind = r.str("change");
    if (auto st = r.finish(); !st) return st.error();
    if (kind == "added") {
      c.kind = ConfigChangeKind::added;
    } else if (kind == "changed") {
      c.kind = ConfigChangeKind::changed;
    } else if (kind == "removed") {
      c.kind = ConfigChangeKind::removed;
    } else {
      return err(Errc::invalid_argument, "config change: unknown change " + excerpt(kind));
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace slipway::engine
