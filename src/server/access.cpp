#include "server/access.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/strings.h"

namespace slipway::server {

std::string_view role_name(Role r) {
  switch (r) {
    case Role::viewer:
      return "viewer";
    case Role::publisher:
      return "publisher";
    case Role::deployer:
      return "deployer";
    case Role::admin:
      return "admin";
  }
  return "viewer";
}

Result<Role> parse_role(std::string_view text) {
  if (text == "viewer") return Role::viewer;
  if (text == "publisher") return Role::publisher;
  if (text == "deployer") return Role::deployer;
  if (text == "admin") return Role::admin;
  return err(
      Errc::invalid_argument,
      fmt::format("'{}' is not a role (admin, deployer, publisher or viewer)", text.substr(0, 32)));
}

std::string_view access_name(Access a) {
  switch (a) {
    case Access::public_:
      return "public";
    case Access::agent:
      return "agent";
    case Access::viewer:
      return "viewer";
    case Access::publisher:
      return "publisher";
    case Access::deployer:
      return "deployer";
    case Access::admin:
      return "admin";
  }
  return "admin";
}

bool access_allowed(const Principal& p, Access need) {
  switch (need) {
    case Access::public_:
      return true;
    case Access::agent:
      return p.kind == Principal::Kind::agent ||
             (p.kind == Principal::Kind::token && p.role == Role::admin);
    case Access::viewer:
      return p.kind == Principal::Kind::token;
    case Access::publisher:
      return p.kind == Principal::Kind::token && p.role >= Role::publisher;
    case Access::deployer:
      return p.kind == Principal::Kind::token && p.role >= Role::deployer;
    case Access::admin:
      return p.kind == Principal::Kind::token && p.role == Role::admin;
  }
  return false;
}

namespace {

bool covers(const std::vector<std::string>& scope, std::string_view value) {
  if (scope.empty() || value.empty()) return true;  // unscoped, or the dimension does not apply
  if (value == kAll) return false;
  return std::find(scope.begin(), scope.end(), value) != scope.end();
}

}  // namespace

bool in_scope(const Principal& p, std::string_view env, std::string_view app) {
  if (p.kind != Principal::Kind::token) return p.kind == Principal::Kind::agent;
  return covers(p.envs, env) && covers(p.apps, app);
}

Status authorize_scope(const Principal& p, std::string_view env, std::string_view app) {
  if (p.kind == Principal::Kind::none) {
    return err(Errc::unauthenticated, "a valid token is required (Authorization: Bearer TOKEN)");
  }
  if (!covers(p.envs, env)) {
    return err(Errc::forbidden,
               env == kAll ? fmt::format("token '{}' is scoped to environment(s) {}: it may not "
                                         "act on every environment",
                                         p.name, join(p.envs, ","))
                           : fmt::format("token '{}' is scoped to environment(s) {}, not '{}'",
                                         p.name, join(p.envs, ","), env));
  }
  if (!covers(p.apps, app)) {
    return err(Errc::forbidden,
               app == kAll ? fmt::format("token '{}' is scoped to app(s) {}: it may not act on "
                                         "every app",
                                         p.name, join(p.apps, ","))
                           : fmt::format("token '{}' is scoped to app(s) {}, not '{}'", p.name,
                                         join(p.apps, ","), app));
  }
  return {};
}

Status authorize_push(const Principal& p, std::string_view app) {
  if (p.kind == Principal::Kind::token && !p.envs.empty()) {
    return err(Errc::forbidden,
               fmt::format("token '{}' is scoped to environments {}: pushing a version makes it "
                           "deployable everywhere; use a token valid in every environment of the "
                           "app, or one with the publisher role",
                           p.name, join(p.envs, ",")));
  }
  return authorize_scope(p, "", app);
}

Status authorize_object(const Principal& p, std::string_view what, std::string_view env,
                        std::string_view app) {
  auto st = authorize_scope(p, env, app);
  if (st || st.error().code != Errc::forbidden) return st;
  std::string scope;
  if (!p.envs.empty()) scope = "environments " + join(p.envs, ",");
  if (!p.apps.empty()) scope += (scope.empty() ? "apps " : ", apps ") + join(p.apps, ",");
  return err(Errc::forbidden,
             fmt::format("{} is outside the scope of token '{}' ({})", what, p.name, scope));
}

}  // namespace slipway::server
