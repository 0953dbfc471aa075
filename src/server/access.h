// Who is calling and what they may do: the principal a request carries (from its bearer token),
// the access level every route declares, and the scope check every route that touches an
// environment or an app makes (authorize). Free of Beast and of the server's context.
//
// Roles are ordered: viewer < publisher < deployer < admin. A viewer reads; a publisher also
// pushes artifacts (what CI uses: it cannot deploy); a deployer also changes what runs (deploy,
// rollback, promote, pause, resume, abort, run, freeze, lb, node release); an admin also manages
// tokens and reads the audit log. A token may be scoped to environments and/or apps (empty =
// all); admin tokens are never scoped, publisher tokens never to environments.
//
// Pushing is a release decision: a pushed version becomes deployable in every environment (a
// deploy without a version takes the newest), so only a token valid in every environment may push
// (authorize_push); an app scope still limits which apps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::server {

enum class Role { viewer, publisher, deployer, admin };

// What a route needs. public: anyone (no token); agent: the agent join token (or an admin);
// viewer, publisher, deployer, admin: an API token (or the bootstrap admin token) of at least
// that role.
enum class Access { public_, agent, viewer, publisher, deployer, admin };

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

// The scope check of a push of `app`: forbidden for a token scoped to environments (what it
// pushes would be deployable in the others too), then authorize_scope(p, "", app).
Status authorize_push(const Principal& p, std::string_view app);

// The scope check of an object addressed by id (`what`: "deploy #12"), with the object's own env
// and app: authorize_scope's answer, but a refusal names only the token's scope, never the
// object's env or app (a scoped token learns that the id exists, as the gaps in the ids it can
// see tell it anyway, and nothing about it).
Status authorize_object(const Principal& p, std::string_view what, std::string_view env,
                        std::string_view app);

}  // namespace slipway::server
