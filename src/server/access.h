// Who is calling and what they may do: the principal a request carries (from its bearer token),
// the access level every route declares, and the scope check every route that touches an
// environment or an app makes (authorize). Free of Beast and of the server's context.
//
// Roles are ordered: viewer < deployer < admin. A viewer reads; a deployer also changes what runs
// (push, deploy, rollback, promote, pause, resume, abort, run, freeze, lb, node release); an admin
// also manages tokens and reads the audit log. A token may be scoped to environments and/or apps
// (empty = all); admin tokens are never scoped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::server {

enum class Role { viewer, deployer, admin };

// What a route needs. public: anyone (no token); agent: the agent join token (or an admin);
// viewer, deployer, admin: an API token (or the bootstrap admin token) of at least that role.
enum class Access { public_, agent, viewer, deployer, admin };

std::string_view role_name(Role r);
Result<Role> parse_role(std::string_view text);
std::string_view access_name(Access a);

struct Principal {
  enum class Kind { none, agent, token };
  Kind kind = Kind::none;
  Role role = Role::viewer;
  std::vector<std::string> envs;  // empty = every environment
  std::vector<std::string> apps;  // empty = every app
  std::string name;               // the token's name ("admin" for the bootstrap token)
  int64_t token_id = 0;           // 0 for the bootstrap admin token and the join token
  // An agent (kind agent) authenticated by a join token: its name ("default": the server's
  // DATA_DIR/join.token), which only enrolls new nodes; or by a node's own credential: the node.
  std::string join_token;
  std::string node;
};

// Whether the principal's kind and role reach the route's access level (no scope involved).
bool access_allowed(const Principal& p, Access need);

// For authorize: the resource spans every environment (or app), so a token scoped on that
// dimension may not act on it (e.g. a run targets nodes of an environment, whatever app they
// host: an app-scoped token may not start one).
inline constexpr std::string_view kAll = "*";

// The one scope check: ok when the principal's scope covers `env` and `app`. An empty value means
// the dimension does not apply (an artifact has no environment); kAll means the resource covers
// every value of it. forbidden ("this token is scoped to ...") otherwise.
Status authorize_scope(const Principal& p, std::string_view env, std::string_view app);
// Whether the scope covers env and app (the same rule, for filtering listings).
bool in_scope(const Principal& p, std::string_view env, std::string_view app);

}  // namespace slipway::server
