// Enrollment: what lets a machine become a node of an environment, and what a node may claim to
// be once it is one. An environment is a security boundary, so a node's environment and roles are
// fixed by its enrollment, not by its hello:
//
//   - A join token (`slwj_` + 64 hex, only its SHA-256 kept) is scoped to one environment and
//     optionally to roles; it enrolls new nodes there until it expires, is used up or is revoked.
//     The server's own DATA_DIR/join.token (the "default" join token) enrolls into any
//     environment that is not protected, never into a protected one.
//   - An enrolled node (its credential `slwc_` + 64 hex, only its SHA-256 kept) may claim only
//     the environment and roles recorded at its enrollment (`slipway nodes move` changes them).
//     Its agent authenticates every HTTP request (the WebSocket upgrade, downloads) with that
//     credential, so it keeps working after its join token is gone: a join token only enrolls.
//
// The checks are pure functions (unit-tested); `Enrollment` holds what the listener looks up on
// every agent request (by hash, in memory: no database call on the I/O thread), kept up to date
// by the routes that change it. Used from the server's I/O thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"
#include "store/store.h"

namespace slipway::server {

inline constexpr std::string_view kJoinTokenPrefix = "slwj_";
// The name enrollments and the audit log give the server's DATA_DIR/join.token; no join token
// may be created with it.
inline constexpr std::string_view kDefaultJoinToken = "default";

// A new join token secret: "slwj_" and 32 random bytes (256 bits) in hex.
std::string new_join_token_secret();

// Why the join token cannot enroll anything at `now` (revoked, expired, used up), "" when it can.
std::string join_token_unusable(const store::JoinTokenRecord& t, TimeMs now);

// Whether a new node claiming `env` and `roles` may enroll through `token` (nullptr: the server's
// default join token) at `now`, `env_protected` saying whether `env` is protected. forbidden with
// the reason when not (an unusable token: unauthenticated).
Status check_enrollment(const store::JoinTokenRecord* token, std::string_view env,
                        const std::vector<std::string>& roles, bool env_protected, TimeMs now);

// Whether an enrolled node may claim `env` and `roles`: its enrollment's environment, and only
// roles its enrollment lists (fewer is fine). forbidden with the reason, which says how to go on
// (restart the agent with the enrolled flags, or `slipway nodes move`). An enrollment not bound
// yet (env "") accepts any claim; the caller binds it.
Status check_claim(const store::NodeCredential& c, std::string_view env,
                   const std::vector<std::string>& roles);

// A join token as the API shows it: id, name, env, roles, approve, uses, max_uses, created_at,
// created_by, expires_at, last_used, revoked, revoked_at, revoked_by, state (active, expired,
// used up, revoked). Never the secret or the hash.
json::object join_token_to_json(const store::JoinTokenRecord& t, TimeMs now);

class Enrollment {
 public:
  void load(std::vector<store::JoinTokenRecord> tokens,
            const std::vector<store::NodeCredential>& nodes,
            const std::vector<store::EnvRecord>& envs);

  // Join tokens, by hash (insert or replace).
  void put_join_token(store::JoinTokenRecord t);
  const store::JoinTokenRecord* join_token_named(std::string_view name) const;
  // The join token whose secret this is (looked up by its hash); nullptr when none.
  const store::JoinTokenRecord* join_token_for(std::string_view secret) const;
  // Counts an enrollment through join token `id` at `at`.
  void count_use(int64_t id, TimeMs at);
  std::vector<store::JoinTokenRecord> join_tokens() const;  // oldest first

  // Node credentials: a revoked one (empty hash) is forgotten.
  void put_node(store::NodeCredential c);
  void forget_node(const std::string& node);
  // The enrolled node whose credential this is; nullptr when none.
  const store::NodeCredential* node_for(std::string_view credential) const;
  const store::NodeCredential* node_named(const std::string& node) const;

  bool is_protected(std::string_view env) const;
  void put_env(const store::EnvRecord& e);
  const std::map<std::string, store::EnvRecord, std::less<>>& envs() const { return envs_; }

 private:
  std::unordered_map<std::string, store::JoinTokenRecord> join_by_hash_;
  std::map<std::string, store::NodeCredential> nodes_;         // by name
  std::unordered_map<std::string, std::string> node_by_hash_;  // credential hash -> name
  std::map<std::string, store::EnvRecord, std::less<>> envs_;
};

}  // namespace slipway::server
