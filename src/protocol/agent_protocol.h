// The agent protocol: JSON text messages over one WebSocket per agent (GET /api/v1/agent/ws).
//
// Agent -> server
//   hello      {type, name, env, roles[], zone, tags{}, address, agent_version, apps[AppState],
//               credential?}
//              first message on every connection; the server answers welcome or closes (with
//              the reason). credential: the node's own credential from its enrollment (absent on
//              the first connection of a name); a name that has one is refused without it.
//   heartbeat  {type, apps[AppState]?}     every heartbeat_ms; apps only when something changed
//   step       {type, action, step, status, output, started_at, duration_ms}
//   result     {type, action, ok, app, version, healthy, reason, reverted_to, downloaded, apps[]}
//   exec_result {type, action, exit_code, signal, timed_out, output, started_at, duration_ms}
//              the outcome of one exec; exit_code -1 when killed by a signal or timed out, 127
//              when the command could not be started (output says why); output is the last
//              64 KiB of standard output and error, interleaved
// Server -> agent
//   welcome    {type, node, heartbeat_ms, server_version, credential?}
//              credential: only on enrollment (the first hello of a name), the node's own
//              credential ("slwc_" and 64 hex digits); the agent keeps it and presents it in every
//              later hello. The server keeps only its SHA-256.
//   install    {type, action, deploy, app, version, sha256, size, url, env{}, keep_releases}
//              (the agent reads the manifest from the release itself: slipway.yaml); env is
//              the app's config and secrets for the node's environment, given to the app
//              and its templates (config/*.tmpl)
//   deactivate {type, action, deploy, app}   stop the app and remove its `current` link
//   ping       {type}
//   exec       {type, action, argv[], env{}, timeout_ms}   run argv[0] with these arguments (no
//              shell: execvp semantics), with env on top of the few variables the agent
//              passes on (agent/process.h child_environment), in the agent's
//              root directory; killed (its whole process group) after timeout_ms. Unlike the
//              other server messages, unknown fields are refused: a field an older agent does
//              not know could change what runs (a user, a directory), so it must not be ignored.
//
// `action` identifies one command to one node; the agent echoes it in every step and result of
// that command. Timestamps are milliseconds since the epoch. Unknown message types are refused.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"

namespace slipway::protocol {

// What a node reports about one app.
struct AppState {
  std::string app;
  std::string version;  // the `current` release; empty when none
  bool healthy = false;
  bool running = false;  // the supervised process is up (or, for restart: apps, true when active)
  int port = 0;
  std::vector<std::string> releases;  // on disk, oldest first
  std::string last_healthy;           // the last version that passed its health check
};

struct Hello {
  std::string name;
  std::string env;
  std::vector<std::string> roles;
  std::string zone;
  std::map<std::string, std::string> tags;
  std::string address;
  std::string agent_version;
  std::vector<AppState> apps;
  std::string credential{};  // empty when the agent has none yet
};

struct Welcome {
  std::string node;
  int64_t heartbeat_ms = 5000;
  std::string server_version;
  std::string credential{};  // set on enrollment only
  // The node waits for an admin's approval (slipway nodes approve): the server sends it nothing
  // until then. Absent (false) from servers that do not know approval.
  bool pending = false;
};

// A node credential: "slwc_" and 64 lower-case hex digits.
inline constexpr std::string_view kNodeCredentialPrefix = "slwc_";
bool is_node_credential(std::string_view s);
std::string new_node_credential();

struct Heartbeat {
  std::optional<std::vector<AppState>> apps;
};

struct InstallCommand {
  std::string action;
  int64_t deploy = 0;
  std::string app;
  std::string version;
  std::string sha256;
  uint64_t size = 0;
  std::string url;  // path on the server ("/api/v1/blobs/<sha256>") or absolute URL
  // The app's per-environment config, secrets in clear (variable names only; never logged).
  std::map<std::string, std::string> env;
  int keep_releases = 5;
};

struct DeactivateCommand {
  std::string action;
  int64_t deploy = 0;
  std::string app;
};

struct Ping {};

// The server refuses this agent's hello, or cuts an admitted agent off (revoked, moved), and
// says why, in full: a WebSocket close reason holds at most 123 bytes. The connection closes
// right after. At most kMaxDisconnectReason bytes.
struct Disconnect {
  std::string reason;
};
inline constexpr size_t kMaxDisconnectReason = 4096;

enum class StepStatus { started, ok, failed, skipped };
std::string_view step_status_name(StepStatus s);
std::optional<StepStatus> step_status_from_name(std::string_view s);

struct StepEvent {
  std::string action;
  std::string step;  // "download", "verify", "unpack", "hook:after_install", "stop", "switch",
                     // "start", "health", "revert", ...
  StepStatus status = StepStatus::started;
  std::string output;
  TimeMs started_at = 0;
  int64_t duration_ms = 0;
};

struct InstallResult {
  std::string action;
  bool ok = false;
  std::string app;
  std::string version;  // what is current on the node now (empty: nothing)
  bool healthy = false;
  std::string reason;       // why it failed
  std::string reverted_to;  // the version the node went back to by itself, if it did
  bool downloaded = false;  // whether artifact bytes were fetched from the server
  std::vector<AppState> apps;
};

// Limits of an exec command, checked by the decoder (and by the server's API, which takes argv
// from users): at most 64 arguments of at most 4 KiB each and 128 KiB together, none with a NUL
// byte; at most 64 environment variables (names [A-Za-z_][A-Za-z0-9_]*, values up to 4 KiB); a
// timeout of 1 ms to 24 h. The agent sends at most kExecMaxOutput bytes of output.
inline constexpr size_t kExecMaxArgs = 64;
inline constexpr size_t kExecMaxArgBytes = 4096;
inline constexpr size_t kExecMaxArgvBytes = 128 * 1024;
inline constexpr size_t kExecMaxEnv = 64;
inline constexpr int64_t kExecMaxTimeoutMs = 24 * 3'600'000;
inline constexpr size_t kExecMaxOutput = 64 * 1024;

struct ExecCommand {
  std::string action;
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;
  int64_t timeout_ms = 60'000;
};

struct ExecResult {
  std::string action;
  int exit_code = -1;  // -1: killed by a signal or timed out; 127: could not be started
  int signal = 0;
  bool timed_out = false;
  std::string output;
  TimeMs started_at = 0;
  int64_t duration_ms = 0;
};

// Ok, or an invalid_argument error naming the rule argv breaks (see the limits above).
Status validate_exec_argv(const std::vector<std::string>& argv);

using AgentMessage = std::variant<Hello, Heartbeat, StepEvent, InstallResult, ExecResult>;
using ServerMessage =
    std::variant<Welcome, InstallCommand, DeactivateCommand, Ping, ExecCommand, Disconnect>;

std::string encode(const AgentMessage& m);
std::string encode(const ServerMessage& m);
// Strict: unknown types, unknown fields, wrong types and invalid names are invalid_argument.
Result<AgentMessage> decode_agent_message(std::string_view text);
Result<ServerMessage> decode_server_message(std::string_view text);

json::value app_state_to_json(const AppState& s);
Result<AppState> app_state_from_json(const json::value& v);

}  // namespace slipway::protocol
