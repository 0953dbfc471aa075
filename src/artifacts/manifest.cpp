#include "artifacts/manifest.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "common/strings.h"

namespace slipway::artifacts {

namespace {

constexpr std::string_view kTopKeys[] = {"start",  "restart",      "stop",   "port",
                                         "env",    "stop_timeout", "hooks",  "hook_timeout",
                                         "health", "drain",        "undrain"};
constexpr std::string_view kLbKeys[] = {"command", "on", "timeout"};
constexpr std::string_view kHealthKeys[] = {"http",    "tcp",         "command",
                                            "timeout", "healthy_for", "interval"};

template <size_t N>
bool one_of(std::string_view key, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), key) != std::end(set);
}

template <size_t N>
std::string list_of(const std::string_view (&set)[N]) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += set[i];
  }
  return out;
}

// The rules shared by the YAML parser and the JSON decoder; each returns a reason, or "".

std::string check_env_name(std::string_view name) {
  if (name.empty()) return "an environment variable name is empty";
  const bool ok_first =
      (name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_';
  const bool ok_rest = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!ok_first || !ok_rest) {
    return fmt::format(
        "env: '{}' is not a valid environment variable name (letters, digits and '_', not "
        "starting with a digit)",
        excerpt(name));
  }
  if (name.starts_with("SLIPWAY_")) {
    return fmt::format("env: '{}' is set by the agent and cannot be overridden", excerpt(name));
  }
  return {};
}

std::string check_port(int64_t port) {
  if (port < 1 || port > 65535) return fmt::format("port: {} is not between 1 and 65535", port);
  return {};
}

std::string check_health_target(HealthKind kind, std::string_view target) {
  if (kind == HealthKind::http && target.starts_with("https://")) {
    // The agent's HTTP client speaks plain HTTP only (TLS comes with the security work); refuse
    // at push time rather than fail every health check later.
    return fmt::format(
        "health.http: '{}': https:// health checks are not supported yet; probe "
        "the app over http:// on its node address",
        excerpt(target));
  }
  if (kind == HealthKind::http && !target.starts_with("http://")) {
    return fmt::format("health.http: '{}' is not an http:// URL", excerpt(target));
  }
  if (kind == HealthKind::tcp && target.find(':') == std::string_view::npos) {
    return fmt::format("health.tcp: '{}' is not HOST:PORT", excerpt(target));
  }
  return {};
}

// The rules that involve several fields.
std::string check_whole(const Manifest& m) {
  if (m.start.empty() && m.restart.empty()) {
    return "names no way to start the app: set start: (a process the agent supervises) or "
           "restart: (a command)";
  }
  if (!m.start.empty() && !m.restart.empty()) {
    return "sets both start: and restart:; use start: for a process the agent supervises, or "
           "restart: for a command when something else supervises the app";
  }
  if (!m.stop.empty() && m.restart.empty()) {
    return "stop: applies only with restart: (a process started with start: is stopped with "
           "SIGTERM, then SIGKILL after stop_timeout)";
  }
  return {};
}

class YamlError {
 public:
  YamlError(int line, std::string reason) : line_(line), reason_(std::move(reason)) {}
  Error error() const {
    return err(Errc::invalid_argument, fmt::format("slipway.yaml line {}: {}", line_, reason_));
  }

 private:
  int line_;
  std::string reason_;
};

int line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() || m.line < 0 ? 1 : m.line + 1;
}

// Builds a Manifest from the YAML tree; throws YamlError (caught in parse_manifest) so that each
// check reads as one line.
class ManifestBuilder {
 public:
  Manifest build(const YAML::Node& root) {
    if (!root.IsMap()) fail(root, "the top level must be a mapping of keys (start:, health:, ...)");
    std::set<std::string> seen;
    int start_line = 0;  // 0: the key is absent
    int restart_line = 0;
    int stop_line = 0;
    for (const auto& kv : root) {
      const std::string key = key_of(kv.first, seen, "");
      const YAML::Node& value = kv.second;
      if (!one_of(key, kTopKeys)) {
        fail(kv.first,
             fmt::format("unknown key '{}' (known keys: {})", excerpt(key), list_of(kTopKeys)));
      }
      if (key == "start") {
        m_.start = command(kv.first, value, key);
        start_line = line_of(kv.first);
      } else if (key == "restart") {
        m_.restart = command(kv.first, value, key);
        restart_line = line_of(kv.first);
      } else if (key == "stop") {
        m_.stop = command(kv.first, value, key);
        stop_line = line_of(kv.first);
      } else if (key == "port") {
        m_.port = port(kv.first, value);
      } else if (key == "env") {
        env(kv.first, value);
      } else if (key == "stop_timeout") {
        m_.stop_timeout = duration(kv.first, value, key, false);
      } else if (key == "hooks") {
        hooks(kv.first, value);
      } else if (key == "hook_timeout") {
        m_.hook_timeout = duration(kv.first, value, key, false);
      } else if (key == "health") {
        health(kv.first, value);
      } else if (key == "drain") {
        m_.drain = lb_command(kv.first, value, key);
      } else if (key == "undrain") {
        m_.undrain = lb_command(kv.first, value, key);
      }
    }
    if (auto reason = check_whole(m_); !reason.empty()) {
      // Point at the key at fault when there is one; a missing key is the whole document's fault.
      int line = 1;
      if (start_line && restart_line) {
        line = std::max(start_line, restart_line);
      } else if (start_line && stop_line) {
        line = stop_line;
      }
      throw YamlError(line, reason);
    }
    return std::move(m_);
  }

 private:
  [[noreturn]] static void fail(const YAML::Node& at, std::string reason) {
    throw YamlError(line_of(at), std::move(reason));
  }

  // A mapping key: a non-empty scalar that the mapping has not seen yet.
  static std::string key_of(const YAML::Node& k, std::set<std::string>& seen,
                            std::string_view where) {
    if (!k.IsScalar()) fail(k, fmt::format("{}keys must be plain words", where));
    std::string key = k.Scalar();
    if (!seen.insert(key).second) {
      fail(k, fmt::format("{}'{}' appears twice", where, excerpt(key)));
    }
    return key;
  }

  static std::string scalar(const YAML::Node& key, const YAML::Node& value, std::string_view what) {
    if (value.IsNull()) fail(key, fmt::format("{}: has no value", what));
    if (!value.IsScalar()) {
      fail(key, fmt::format("{}: must be a single value, not a {}", what,
                            value.IsMap() ? "mapping" : "list"));
    }
    return value.Scalar();
  }

  // A command for /bin/sh -c: a non-empty string, surrounding white space removed (block scalars
  // end with a newline).
  static std::string command(const YAML::Node& key, const YAML::Node& value,
                             std::string_view what) {
    std::string s(trim(scalar(key, value, what)));
    if (s.empty()) fail(key, fmt::format("{}: is empty", what));
    return s;
  }

  static Millis duration(const YAML::Node& key, const YAML::Node& value, std::string_view what,
                         bool zero_ok) {
    const std::string text(trim(scalar(key, value, what)));
    auto d = parse_duration(text);
    if (!d) fail(key, fmt::format("{}: {}", what, d.error().message));
    if (!zero_ok && d->count() == 0) fail(key, fmt::format("{}: must be longer than zero", what));
    return *d;
  }

  static int port(const YAML::Node& key, const YAML::Node& value) {
    const std::string text(trim(scalar(key, value, "port")));
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      fail(key, fmt::format("port: '{}' is not a number", excerpt(text)));
    }
    if (auto reason = check_port(n); !reason.empty()) fail(key, reason);
    return static_cast<int>(n);
  }

  void env(const YAML::Node& key, const YAML::Node& value) {
    if (value.IsNull()) return;  // "env:" with nothing under it
    if (!value.IsMap()) fail(key, "env: must be a mapping of NAME: value");
    std::set<std::string> seen;
    for (const auto& kv : value) {
      const std::string name = key_of(kv.first, seen, "env: ");
      if (auto reason = check_env_name(name); !reason.empty()) fail(kv.first, reason);
      // An explicitly empty value is allowed ("FOO: ''"); a missing one is not.
      m_.env[name] = scalar(kv.first, kv.second, "env." + excerpt(name));
    }
  }

  void hooks(const YAML::Node& key, const YAML::Node& value) {
    if (value.IsNull()) return;
    if (!value.IsMap()) fail(key, "hooks: must be a mapping of hook name: command");
    std::set<std::string> seen;
    for (const auto& kv : value) {
      const std::string name = key_of(kv.first, seen, "hooks: ");
      if (!one_of(name, kHookNames)) {
        fail(kv.first, fmt::format("hooks: unknown hook '{}' (known hooks: {})", excerpt(name),
                                   list_of(kHookNames)));
      }
      m_.hooks[name] = command(kv.first, kv.second, "hooks." + name);
    }
  }

  // drain: COMMAND, or drain: {command: ..., on: SELECTOR, timeout: 30s}
  static LbCommand lb_command(const YAML::Node& key, const YAML::Node& value,
                              const std::string& what) {
    LbCommand c;
    if (!value.IsMap()) {
      c.command = command(key, value, what);
      return c;
    }
    std::set<std::string> seen;
    for (const auto& kv : value) {
      const std::string name = key_of(kv.first, seen, what + ": ");
      if (!one_of(name, kLbKeys)) {
        fail(kv.first, fmt::format("{}: unknown key '{}' (known keys: {})", what, excerpt(name),
                                   list_of(kLbKeys)));
      }
      if (name == "command") {
        c.command = command(kv.first, kv.second, what + ".command");
      } else if (name == "on") {
        c.on = command(kv.first, kv.second, what + ".on");
      } else {
        c.timeout = duration(kv.first, kv.second, what + ".timeout", false);
      }
    }
    if (c.command.empty()) fail(key, fmt::format("{}: names no command", what));
    return c;
  }

  void health(const YAML::Node& key, const YAML::Node& value) {
    if (!value.IsMap()) {
      fail(key, "health: must be a mapping (http:, tcp: or command:, and timeout:, ...)");
    }
    std::set<std::string> seen;
    std::string probe;  // the check named so far
    for (const auto& kv : value) {
      const std::string name = key_of(kv.first, seen, "health: ");
      if (!one_of(name, kHealthKeys)) {
        fail(kv.first, fmt::format("health: unknown key '{}' (known keys: {})", excerpt(name),
                                   list_of(kHealthKeys)));
      }
      const std::string what = "health." + name;
      if (name == "http" || name == "tcp" || name == "command") {
        if (!probe.empty()) {
          fail(kv.first,
               fmt::format("health: names more than one check ({} and {}); pick one", probe, name));
        }
        probe = name;
        m_.health.kind = name == "http"  ? HealthKind::http
                         : name == "tcp" ? HealthKind::tcp
                                         : HealthKind::command;
        m_.health.target = command(kv.first, kv.second, what);
        if (auto reason = check_health_target(m_.health.kind, m_.health.target); !reason.empty()) {
          fail(kv.first, reason);
        }
      } else if (name == "timeout") {
        m_.health.timeout = duration(kv.first, kv.second, what, false);
      } else if (name == "healthy_for") {
        m_.health.healthy_for = duration(kv.first, kv.second, what, true);
      } else if (name == "interval") {
        m_.health.interval = duration(kv.first, kv.second, what, false);
      }
    }
    if (probe.empty()) fail(key, "health: names no check; set one of http:, tcp: or command:");
  }

  Manifest m_;
};

// Counts the documents of a YAML stream, building nothing, and finds where the second one's
// content starts (the line of its first node, as LoadAll's nodes would say).
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents = 0;
  int second_line = 1;

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second_line = line(mark);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node_at(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node_at(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node_at(mark);
  }
  void OnMapEnd() override {}

 private:
  static int line(const YAML::Mark& mark) { return mark.line < 0 ? 1 : mark.line + 1; }
  void node_at(const YAML::Mark& mark) {
    if (documents == 2 && !second_seen_) {
      second_seen_ = true;
      second_line = line(mark);
    }
  }
  bool second_seen_ = false;
};

}  // namespace

std::string_view health_kind_name(HealthKind kind) {
  switch (kind) {
    case HealthKind::none:
      return "none";
    case HealthKind::http:
      return "http";
    case HealthKind::tcp:
      return "tcp";
    case HealthKind::command:
      return "command";
  }
  return "none";
}

Result<Manifest> parse_manifest(std::string_view yaml_text) {
  // yaml-cpp reports problems by throwing; nothing of that leaves this function.
  try {
    const std::string text(yaml_text);
    // Count the documents first, stopping at the second: YAML::LoadAll never returns on some
    // inputs ("!x ,", "&a ,": yaml-cpp 0.7 leaves the ',' unread and makes an empty document of
    // it, forever), so it is not used.
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.documents == 0) {
      return YamlError(1,
                       "is empty; it must at least say how to start the app (start: or restart:)")
          .error();
    }
    if (counter.documents > 1) {
      return YamlError(counter.second_line, "holds more than one YAML document").error();
    }
    return ManifestBuilder().build(YAML::Load(text));
  } catch (const YamlError& e) {
    return e.error();
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() || e.mark.line < 0 ? 1 : e.mark.line + 1;
    return YamlError(line, fmt::format("not valid YAML: {}", e.msg)).error();
  } catch (const std::exception& e) {
    return YamlError(1, fmt::format("cannot be read: {}", e.what())).error();
  }
}

json::value manifest_to_json(const Manifest& m) {
  json::object o;
  o["start"] = m.start;
  o["restart"] = m.restart;
  o["stop"] = m.stop;
  if (m.port) o["port"] = *m.port;
  json::object env;
  for (const auto& [k, v] : m.env)
    env[k] = v;
  o["env"] = std::move(env);
  o["stop_timeout_ms"] = m.stop_timeout.count();
  json::object hooks;
  for (const auto& [k, v] : m.hooks)
    hooks[k] = v;
  o["hooks"] = std::move(hooks);
  o["hook_timeout_ms"] = m.hook_timeout.count();
  json::object health;
  health["kind"] = health_kind_name(m.health.kind);
  health["target"] = m.health.target;
  health["timeout_ms"] = m.health.timeout.count();
  health["healthy_for_ms"] = m.health.healthy_for.count();
  health["interval_ms"] = m.health.interval.count();
  o["health"] = std::move(health);
  for (const auto& [name, c] : {std::pair{"drain", &m.drain}, std::pair{"undrain", &m.undrain}}) {
    if (*c) {
      o[name] = json::object{
          {"command", (*c)->command}, {"on", (*c)->on}, {"timeout_ms", (*c)->timeout.count()}};
    }
  }
  return o;
}

Result<Manifest> manifest_from_json(const json::value& v) {
  auto bad = [](std::string reason) {
    return err(Errc::invalid_argument, fmt::format("manifest: {}", reason));
  };
  auto duration = [&](JsonReader& r, std::string_view key, Millis fallback,
                      bool zero_ok) -> Result<Millis> {
    const int64_t ms = r.i64_or(key, fallback.count());
    if (ms < 0 || (!zero_ok && ms == 0)) {
      return bad(fmt::format("field '{}' must be {}", key, zero_ok ? "0 or more" : "above 0"));
    }
    return Millis(ms);
  };

  Manifest m;
  JsonReader r(v, "manifest");
  m.start = r.str_or("start", "");
  m.restart = r.str_or("restart", "");
  m.stop = r.str_or("stop", "");
  if (auto port = r.opt_i64("port")) {
    if (auto reason = check_port(*port); !reason.empty()) return bad(reason);
    m.port = static_cast<int>(*port);
  }
  m.env = r.str_map("env");
  m.hooks = r.str_map("hooks");
  auto stop_timeout = duration(r, "stop_timeout_ms", m.stop_timeout, false);
  auto hook_timeout = duration(r, "hook_timeout_ms", m.hook_timeout, false);
  const json::object* health = r.opt_object("health");
  const json::object* lb[2] = {r.opt_object("drain"), r.opt_object("undrain")};
  if (auto st = r.finish(); !st) return st.error();
  for (int i = 0; i < 2; ++i) {
    if (!lb[i]) continue;
    const json::value lv(*lb[i]);
    JsonReader l(lv, i == 0 ? "manifest.drain" : "manifest.undrain");
    LbCommand c;
    c.command = l.str("command");
    c.on = l.str_or("on", "");
    auto timeout = duration(l, "timeout_ms", c.timeout, false);
    if (auto st = l.finish(); !st) return st.error();
    if (!timeout) return timeout.error();
    if (c.command.empty()) return bad("a drain or undrain command is empty");
    c.timeout = *timeout;
    (i == 0 ? m.drain : m.undrain) = std::move(c);
  }
  if (!stop_timeout) return stop_timeout.error();
  if (!hook_timeout) return hook_timeout.error();
  m.stop_timeout = *stop_timeout;
  m.hook_timeout = *hook_timeout;

  for (const auto& [name, value] : m.env) {
    if (auto reason = check_env_name(name); !reason.empty()) return bad(reason);
  }
  for (const auto& [name, command] : m.hooks) {
    if (!one_of(name, kHookNames)) return bad(fmt::format("unknown hook '{}'", excerpt(name)));
    if (command.empty()) return bad(fmt::format("hook '{}' has an empty command", excerpt(name)));
  }

  if (health) {
    const json::value hv(*health);
    JsonReader h(hv, "manifest.health");
    const std::string kind = h.str("kind");
    m.health.target = h.str_or("target", "");
    auto timeout = duration(h, "timeout_ms", m.health.timeout, false);
    auto healthy_for = duration(h, "healthy_for_ms", m.health.healthy_for, true);
    auto interval = duration(h, "interval_ms", m.health.interval, false);
    if (auto st = h.finish(); !st) return st.error();
    if (!timeout) return timeout.error();
    if (!healthy_for) return healthy_for.error();
    if (!interval) return interval.error();
    m.health.timeout = *timeout;
    m.health.healthy_for = *healthy_for;
    m.health.interval = *interval;
    if (kind == "none") {
      m.health.kind = HealthKind::none;
      if (!m.health.target.empty()) return bad("health of kind 'none' has a target");
    } else if (kind == "http" || kind == "tcp" || kind == "command") {
      m.health.kind = kind == "http"  ? HealthKind::http
                      : kind == "tcp" ? HealthKind::tcp
                                      : HealthKind::command;
      if (m.health.target.empty()) {
        return bad(fmt::format("health of kind '{}' has no target", kind));
      }
      if (auto reason = check_health_target(m.health.kind, m.health.target); !reason.empty()) {
        return bad(reason);
      }
    } else {
      return bad(
          fmt::format("unknown health kind '{}' (none, http, tcp or command)", excerpt(kind)));
    }
  }
  if (auto reason = check_whole(m); !reason.empty()) return bad(reason);
  return m;
}

}  // namespace slipway::artifacts
