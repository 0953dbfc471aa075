#include "protocol/agent_protocol.h"

#include <algorithm>
#include <array>
#include <type_traits>

#include <boost/json/monotonic_resource.hpp>
#include <fmt/format.h>

#include "common/crypto.h"
#include "common/names.h"
#include "common/strings.h"

namespace slipway::protocol {

namespace {

json::array str_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

json::object str_object(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m)
    o[k] = v;
  return o;
}

json::array apps_array(const std::vector<AppState>& apps) {
  json::array a;
  for (const auto& s : apps)
    a.push_back(app_state_to_json(s));
  return a;
}

Result<std::vector<AppState>> apps_from(const json::array* arr) {
  std::vector<AppState> out;
  if (!arr) return out;
  if (arr->size() > 1000) return err(Errc::invalid_argument, "too many apps in one message");
  for (const auto& v : *arr) {
    auto s = app_state_from_json(v);
    if (!s) return s.error();
    out.push_back(std::move(*s));
  }
  return out;
}

Status check(NameKind kind, const std::string& v) {
  return validate_name(kind, v);
}

bool is_env_name(std::string_view k) {
  if (k.empty() || k.size() > 128 || (k[0] >= '0' && k[0] <= '9')) return false;
  for (const char c : k) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status validate_exec_env(const std::map<std::string, std::string>& env) {
  if (env.size() > kExecMaxEnv) {
    return err(Errc::invalid_argument,
               fmt::format("exec: at most {} environment variables", kExecMaxEnv));
  }
  for (const auto& [k, v] : env) {
    if (!is_env_name(k)) {
      return err(Errc::invalid_argument,
                 fmt::format("exec: '{}' is not an environment variable name",
                             std::string_view(k).substr(0, 32)));
    }
    if (v.size() > kExecMaxArgBytes || v.find('\0') != std::string::npos) {
      return err(Errc::invalid_argument,
                 fmt::format("exec: the value of {} is over {} bytes or holds a NUL byte", k,
                             kExecMaxArgBytes));
    }
  }
  return {};
}

}  // namespace

Status validate_exec_argv(const std::vector<std::string>& argv) {
  if (argv.empty() || argv.front().empty()) {
    return err(Errc::invalid_argument, "argv must name a command (argv[0] is empty or missing)");
  }
  if (argv.size() > kExecMaxArgs) {
    return err(Errc::invalid_argument, fmt::format("argv has {} elements; at most {} are allowed",
                                                   argv.size(), kExecMaxArgs));
  }
  size_t total = 0;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].size() > kExecMaxArgBytes) {
      return err(Errc::invalid_argument,
                 fmt::format("argv[{}] has {} bytes; at most {} are allowed", i, argv[i].size(),
                             kExecMaxArgBytes));
    }
    if (argv[i].find('\0') != std::string::npos) {
      return err(Errc::invalid_argument, fmt::format("argv[{}] holds a NUL byte", i));
    }
    total += argv[i].size();
  }
  if (total > kExecMaxArgvBytes) {
    return err(
        Errc::invalid_argument,
        fmt::format("argv has {} bytes in all; at most {} are allowed", total, kExecMaxArgvBytes));
  }
  return {};
}

std::string_view step_status_name(StepStatus s) {
  switch (s) {
    case StepStatus::started:
      return "started";
    case StepStatus::ok:
      return "ok";
    case StepStatus::failed:
      return "failed";
    case StepStatus::skipped:
      return "skipped";
  }
  return "started";
}

std::optional<StepStatus> step_status_from_name(std::string_view s) {
  if (s == "started") return StepStatus::started;
  if (s == "ok") return StepStatus::ok;
  if (s == "failed") return StepStatus::failed;
  if (s == "skipped") return StepStatus::skipped;
  return std::nullopt;
}

json::value app_state_to_json(const AppState& s) {
  return json::object{{"app", s.app},
                      {"version", s.version},
                      {"healthy", s.healthy},
                      {"running", s.running},
                      {"port", s.port},
                      {"releases", str_array(s.releases)},
                      {"last_healthy", s.last_healthy}};
}

Result<AppState> app_state_from_json(const json::value& v) {
  JsonReader r(v, "app state");
  AppState s;
  s.app = r.str("app");
  s.version = r.str_or("version", "");
  s.healthy = r.boolean_or("healthy", false);
  s.running = r.boolean_or("running", false);
  const int64_t port = r.i64_or("port", 0);
  s.releases = r.str_list("releases");
  s.last_healthy = r.str_or("last_healthy", "");
  if (auto st = r.finish(); !st) return st.error();
  if (auto st = check(NameKind::app, s.app); !st) return st.error();
  if (!s.version.empty()) {
    if (auto st = check(NameKind::version, s.version); !st) return st.error();
  }
  // Checked before narrowing: 2^32 + 80 must not pass as port 80.
  if (port < 0 || port > 65535) return err(Errc::invalid_argument, "app state: bad port");
  s.port = static_cast<int>(port);
  if (s.releases.size() > 1000) return err(Errc::invalid_argument, "app state: too many releases");
  return s;
}

bool is_node_credential(std::string_view s) {
  constexpr std::string_view kPrefix = kNodeCredentialPrefix;
  if (s.size() != kPrefix.size() + 64 || s.substr(0, kPrefix.size()) != kPrefix) return false;
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(kPrefix.size()), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string new_node_credential() {
  return std::string(kNodeCredentialPrefix) + random_hex(32);
}

std::string encode(const AgentMessage& m) {
  json::object o;
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Hello>) {
          o = {{"type", "hello"},
               {"name", msg.name},
               {"env", msg.env},
               {"roles", str_array(msg.roles)},
               {"zone", msg.zone},
               {"tags", str_object(msg.tags)},
               {"address", msg.address},
               {"agent_version", msg.agent_version},
               {"apps", apps_array(msg.apps)}};
          if (!msg.credential.empty()) o["credential"] = msg.credential;
        } else if constexpr (std::is_same_v<T, Heartbeat>) {
          o = {{"type", "heartbeat"}};
          if (msg.apps) o["apps"] = apps_array(*msg.apps);
        } else if constexpr (std::is_same_v<T, StepEvent>) {
          o = {{"type", "step"},
               {"action", msg.action},
               {"step", msg.step},
               {"status", step_status_name(msg.status)},
               {"output", valid_utf8(msg.output)},  // process output is bytes
               {"started_at", msg.started_at},
               {"duration_ms", msg.duration_ms}};
        } else if constexpr (std::is_same_v<T, InstallResult>) {
          o = {{"type", "result"},
               {"action", msg.action},
               {"ok", msg.ok},
               {"app", msg.app},
               {"version", msg.version},
               {"healthy", msg.healthy},
               {"reason", valid_utf8(msg.reason)},
               {"reverted_to", msg.reverted_to},
               {"downloaded", msg.downloaded},
               {"apps", apps_array(msg.apps)}};
        } else if constexpr (std::is_same_v<T, ExecResult>) {
          o = {{"type", "exec_result"},        {"action", msg.action},
               {"exit_code", msg.exit_code},   {"signal", msg.signal},
               {"timed_out", msg.timed_out},   {"output", valid_utf8(msg.output)},
               {"started_at", msg.started_at}, {"duration_ms", msg.duration_ms}};
        }
      },
      m);
  return to_json(o);
}

std::string encode(const ServerMessage& m) {
  json::object o;
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Welcome>) {
          o = {{"type", "welcome"},
               {"node", msg.node},
               {"heartbeat_ms", msg.heartbeat_ms},
               {"server_version", msg.server_version}};
          if (!msg.credential.empty()) o["credential"] = msg.credential;
          if (msg.pending) o["pending"] = true;
          if (msg.pending) o["pending"] = true;
        } else if constexpr (std::is_same_v<T, InstallCommand>) {
          o = {{"type", "install"},          {"action", msg.action},
               {"deploy", msg.deploy},       {"app", msg.app},
               {"version", msg.version},     {"sha256", msg.sha256},
               {"size", msg.size},           {"url", msg.url},
               {"env", str_object(msg.env)}, {"keep_releases", msg.keep_releases}};
        } else if constexpr (std::is_same_v<T, DeactivateCommand>) {
          o = {{"type", "deactivate"},
               {"action", msg.action},
               {"deploy", msg.deploy},
               {"app", msg.app}};
        } else if constexpr (std::is_same_v<T, Ping>) {
          o = {{"type", "ping"}};
        } else if constexpr (std::is_same_v<T, ExecCommand>) {
          o = {{"type", "exec"},
               {"action", msg.action},
               {"argv", str_array(msg.argv)},
               {"env", str_object(msg.env)},
               {"timeout_ms", msg.timeout_ms}};
        } else if constexpr (std::is_same_v<T, Disconnect>) {
          o = {{"type", "disconnect"}, {"reason", msg.reason}};
        }
      },
      m);
  return to_json(o);
}

Result<AgentMessage> decode_agent_message(std::string_view text) {
  // The most frequent messages (steps, heartbeats) are small: parse them without the heap.
  std::array<unsigned char, 4096> scratch;
  json::monotonic_resource mr(scratch.data(), scratch.size());
  auto parsed = parse_json(text, "agent message", &mr);
  if (!parsed) return parsed.error();
  JsonReader r(*parsed, "agent message");
  const std::string type = r.str("type");
  if (!r.ok()) {
    if (auto st = r.finish(true); !st) return st.error();
  }
  if (type == "hello") {
    Hello h;
    h.name = r.str("name");
    h.env = r.str("env");
    h.roles = r.str_list("roles");
    h.zone = r.str_or("zone", "");
    h.tags = r.str_map("tags");
    h.address = r.str_or("address", "");
    h.agent_version = r.str_or("agent_version", "");
    h.credential = r.str_or("credential", "");
    auto apps = apps_from(r.opt_array("apps"));
    if (auto st = r.finish(); !st) return st.error();
    if (!apps) return apps.error();
    h.apps = std::move(*apps);
    if (auto st = check(NameKind::node, h.name); !st) return st.error();
    if (auto st = check(NameKind::env, h.env); !st) return st.error();
    if (h.roles.size() > 64) return err(Errc::invalid_argument, "hello: too many roles");
    for (const auto& role : h.roles) {
      if (auto st = check(NameKind::role, role); !st) return st.error();
    }
    if (!h.zone.empty()) {
      if (auto st = check(NameKind::zone, h.zone); !st) return st.error();
    }
    if (h.tags.size() > 64) return err(Errc::invalid_argument, "hello: too many tags");
    for (const auto& [k, v] : h.tags) {
      if (auto st = check(NameKind::tag_key, k); !st) return st.error();
      if (auto st = check(NameKind::tag_value, v); !st) return st.error();
    }
    if (h.address.size() > 64 || h.agent_version.size() > 64) {
      return err(Errc::invalid_argument, "hello: address or agent_version too long");
    }
    if (!h.credential.empty() && !is_node_credential(h.credential)) {
      return err(Errc::invalid_argument, "hello: malformed credential");
    }
    return AgentMessage{std::move(h)};
  }
  if (type == "heartbeat") {
    Heartbeat hb;
    const auto* arr = r.opt_array("apps");
    if (auto st = r.finish(); !st) return st.error();
    if (arr) {
      auto apps = apps_from(arr);
      if (!apps) return apps.error();
      hb.apps = std::move(*apps);
    }
    return AgentMessage{std::move(hb)};
  }
  if (type == "step") {
    StepEvent e;
    e.action = r.str("action");
    e.step = r.str("step");
    const std::string status = r.str("status");
    e.output = r.str_or("output", "");
    e.started_at = r.i64_or("started_at", 0);
    e.duration_ms = r.i64_or("duration_ms", 0);
    if (auto st = r.finish(); !st) return st.error();
    auto s = step_status_from_name(status);
    if (!s) {
      return err(Errc::invalid_argument,
                 fmt::format("step: unknown status '{}'", std::string_view(status).substr(0, 32)));
    }
    e.status = *s;
    if (e.action.size() > 128 || e.step.size() > 128) {
      return err(Errc::invalid_argument, "step: action or step name too long");
    }
    return AgentMessage{std::move(e)};
  }
  if (type == "result") {
    InstallResult res;
    res.action = r.str("action");
    res.ok = r.boolean_or("ok", false);
    res.app = r.str("app");
    res.version = r.str_or("version", "");
    res.healthy = r.boolean_or("healthy", false);
    res.reason = r.str_or("reason", "");
    res.reverted_to = r.str_or("reverted_to", "");
    res.downloaded = r.boolean_or("downloaded", false);
    auto apps = apps_from(r.opt_array("apps"));
    if (auto st = r.finish(); !st) return st.error();
    if (!apps) return apps.error();
    res.apps = std::move(*apps);
    if (auto st = check(NameKind::app, res.app); !st) return st.error();
    for (const auto* v : {&res.version, &res.reverted_to}) {
      if (v->empty()) continue;
      if (auto st = check(NameKind::version, *v); !st) return st.error();
    }
    return AgentMessage{std::move(res)};
  }
  if (type == "exec_result") {
    ExecResult res;
    res.action = r.str("action");
    const int64_t code = r.i64("exit_code");
    const int64_t sig = r.i64_or("signal", 0);
    res.timed_out = r.boolean_or("timed_out", false);
    res.output = r.str_or("output", "");
    res.started_at = r.i64_or("started_at", 0);
    res.duration_ms = r.i64_or("duration_ms", 0);
    if (auto st = r.finish(); !st) return st.error();
    if (res.action.empty() || res.action.size() > 128) {
      return err(Errc::invalid_argument, "exec_result: action empty or too long");
    }
    // Checked before narrowing: 2^32 must not pass as 0.
    if (code < -1 || code > 255) return err(Errc::invalid_argument, "exec_result: bad exit_code");
    if (sig < 0 || sig > 128) return err(Errc::invalid_argument, "exec_result: bad signal");
    res.exit_code = static_cast<int>(code);
    res.signal = static_cast<int>(sig);
    // The agent cuts output to kExecMaxOutput, plus a note of what it cut.
    if (res.output.size() > kExecMaxOutput + 256) {
      return err(Errc::invalid_argument, "exec_result: output too long");
    }
    if (res.started_at < 0 || res.duration_ms < 0) {
      return err(Errc::invalid_argument, "exec_result: negative time");
    }
    return AgentMessage{std::move(res)};
  }
  return err(Errc::invalid_argument,
             fmt::format("agent message: unknown type '{}'", std::string_view(type).substr(0, 32)));
}

Result<ServerMessage> decode_server_message(std::string_view text) {
  std::array<unsigned char, 4096> scratch;
  json::monotonic_resource mr(scratch.data(), scratch.size());
  auto parsed = parse_json(text, "server message", &mr);
  if (!parsed) return parsed.error();
  JsonReader r(*parsed, "server message");
  const std::string type = r.str("type");
  if (!r.ok()) {
    if (auto st = r.finish(true); !st) return st.error();
  }
  if (type == "welcome") {
    Welcome w;
    w.node = r.str("node");
    w.heartbeat_ms = r.i64_or("heartbeat_ms", 5000);
    w.server_version = r.str_or("server_version", "");
    w.credential = r.str_or("credential", "");
    w.pending = r.boolean_or("pending", false);
    if (auto st = r.finish(true); !st) return st.error();  // newer servers may add fields
    if (!w.credential.empty() && !is_node_credential(w.credential)) {
      return err(Errc::invalid_argument, "welcome: malformed credential");
    }
    if (w.heartbeat_ms < 100 || w.heartbeat_ms > 3'600'000) {
      return err(Errc::invalid_argument, "welcome: heartbeat_ms out of range");
    }
    return ServerMessage{std::move(w)};
  }
  if (type == "install") {
    InstallCommand c;
    c.action = r.str("action");
    c.deploy = r.i64_or("deploy", 0);
    c.app = r.str("app");
    c.version = r.str("version");
    c.sha256 = r.str("sha256");
    const int64_t size = r.i64_or("size", 0);
    c.url = r.str("url");
    c.env = r.str_map("env");
    const int64_t keep = r.i64_or("keep_releases", 5);
    if (auto st = r.finish(true); !st) return st.error();
    if (auto st = check(NameKind::app, c.app); !st) return st.error();
    if (auto st = check(NameKind::version, c.version); !st) return st.error();
    // The digest names a file on the agent: 64 lower-case hex digits and nothing else.
    if (!is_sha256_hex(c.sha256)) return err(Errc::invalid_argument, "install: bad sha256");
    if (size < 0) return err(Errc::invalid_argument, "install: size must not be negative");
    // The per-environment config: variable names only, and never a value in the error.
    for (const auto& [k, v] : c.env) {
      if (!is_env_name(k) || v.find('\0') != std::string::npos) {
        return err(Errc::invalid_argument,
                   fmt::format("install: env.{} is not a variable name, or its value holds NUL",
                               std::string_view(k).substr(0, 32)));
      }
    }
    c.size = static_cast<uint64_t>(size);
    // Checked before narrowing to int: 2^32 + 5 must not pass as 5.
    if (keep < 1 || keep > 100) {
      return err(Errc::invalid_argument, "install: keep_releases must be 1..100");
    }
    c.keep_releases = static_cast<int>(keep);
    return ServerMessage{std::move(c)};
  }
  if (type == "deactivate") {
    DeactivateCommand c;
    c.action = r.str("action");
    c.deploy = r.i64_or("deploy", 0);
    c.app = r.str("app");
    if (auto st = r.finish(true); !st) return st.error();
    if (auto st = check(NameKind::app, c.app); !st) return st.error();
    return ServerMessage{std::move(c)};
  }
  if (type == "ping") {
    if (auto st = r.finish(true); !st) return st.error();
    return ServerMessage{Ping{}};
  }
  if (type == "disconnect") {
    Disconnect d;
    d.reason = r.str("reason");
    if (auto st = r.finish(true); !st) return st.error();
    if (d.reason.size() > kMaxDisconnectReason) {
      return err(Errc::invalid_argument, "disconnect: reason too long");
    }
    return ServerMessage{std::move(d)};
  }
  if (type == "exec") {
    ExecCommand c;
    c.action = r.str("action");
    c.argv = r.str_list("argv");
    c.env = r.str_map("env");
    c.timeout_ms = r.i64("timeout_ms");
    if (auto st = r.finish(); !st) return st.error();  // strict: see the header
    if (c.action.empty() || c.action.size() > 128) {
      return err(Errc::invalid_argument, "exec: action empty or too long");
    }
    if (auto st = validate_exec_argv(c.argv); !st) return st.error();
    if (auto st = validate_exec_env(c.env); !st) return st.error();
    if (c.timeout_ms < 1 || c.timeout_ms > kExecMaxTimeoutMs) {
      return err(Errc::invalid_argument, "exec: timeout_ms must be 1 ms to 24 h");
    }
    return ServerMessage{std::move(c)};
  }
  return err(Errc::invalid_argument, fmt::format("server message: unknown type '{}'",
                                                 std::string_view(type).substr(0, 32)));
}

}  // namespace slipway::protocol
