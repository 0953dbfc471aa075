#include "server/enrollment.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/strings.h"
#include "server/tokens.h"

namespace slipway::server {

std::string new_join_token_secret() {
  return std::string(kJoinTokenPrefix) + random_hex(32);
}

std::string join_token_unusable(const store::JoinTokenRecord& t, TimeMs now) {
  if (t.revoked_at != 0) {
    return fmt::format("join token '{}' was revoked at {} UTC by {}", t.name,
                       format_time_short(t.revoked_at), t.revoked_by);
  }
  if (t.expires_at != 0 && now >= t.expires_at) {
    return fmt::format("join token '{}' expired at {} UTC", t.name,
                       format_time_short(t.expires_at));
  }
  if (t.max_uses != 0 && t.uses >= t.max_uses) {
    return fmt::format("join token '{}' is used up ({} of {} enrollments)", t.name, t.uses,
                       t.max_uses);
  }
  return {};
}

namespace {

std::string roles_text(const std::vector<std::string>& roles) {
  return roles.empty() ? std::string("none") : join(roles, ",");
}

// The first of `roles` that `allowed` does not list ("" when none).
std::string first_outside(const std::vector<std::string>& roles,
                          const std::vector<std::string>& allowed) {
  for (const auto& r : roles) {
    if (std::find(allowed.begin(), allowed.end(), r) == allowed.end()) return r;
  }
  return {};
}

}  // namespace

Status check_enrollment(const store::JoinTokenRecord* token, std::string_view env,
                        const std::vector<std::string>& roles, bool env_protected, TimeMs now) {
  if (!token) {
    if (env_protected) {
      return err(Errc::forbidden,
                 fmt::format("environment {} is protected: it accepts new nodes only through a "
                             "join token scoped to it (slipway join-token create --env {}), not "
                             "the server's default join token",
                             env, env));
    }
    return {};
  }
  if (auto why = join_token_unusable(*token, now); !why.empty())
    return err(Errc::unauthenticated, why);
  if (env != token->env) {
    return err(Errc::forbidden,
               fmt::format("join token '{}' enrolls nodes into environment {} only, not {}",
                           token->name, token->env, env));
  }
  if (!token->roles.empty()) {
    if (auto outside = first_outside(roles, token->roles); !outside.empty()) {
      return err(Errc::forbidden,
                 fmt::format("join token '{}' enrolls nodes with roles {} only, not '{}'",
                             token->name, roles_text(token->roles), outside));
    }
  }
  return {};
}

Status check_claim(const store::NodeCredential& c, std::string_view env,
                   const std::vector<std::string>& roles) {
  if (c.env.empty()) return {};  // enrolled before environments were bound: bound now
  const std::string outside = first_outside(roles, c.roles);
  if (env == c.env && outside.empty()) return {};
  const std::string claimed =
      env != c.env ? fmt::format("environment {}", env) : fmt::format("role '{}'", outside);
  return err(Errc::forbidden,
             fmt::format("node {} is enrolled in environment {} with roles {}, but its agent "
                         "claims {}: restart the agent with --env {}{} (or have an admin run "
                         "`slipway nodes move {} --env ...`)",
                         c.node, c.env, roles_text(c.roles), claimed, c.env,
                         c.roles.empty() ? "" : " --roles " + join(c.roles, ","), c.node));
}

json::object join_token_to_json(const store::JoinTokenRecord& t, TimeMs now) {
  json::array roles;
  for (const auto& r : t.roles)
    roles.emplace_back(r);
  std::string state = "active";
  if (t.revoked_at != 0) {
    state = "revoked";
  } else if (t.expires_at != 0 && now >= t.expires_at) {
    state = "expired";
  } else if (t.max_uses != 0 && t.uses >= t.max_uses) {
    state = "used up";
  }
  json::object o{{"id", t.id},
                 {"name", t.name},
                 {"env", t.env},
                 {"roles", std::move(roles)},
                 {"approve", t.approve},
                 {"uses", t.uses},
                 {"max_uses", t.max_uses}};
  for (auto& [k, v] : token_life_json(t))
    o[k] = std::move(v);
  o["state"] = state;
  return o;
}

void Enrollment::load(std::vector<store::JoinTokenRecord> tokens,
                      const std::vector<store::NodeCredential>& nodes,
                      const std::vector<store::EnvRecord>& envs) {
  join_by_hash_.clear();
  nodes_.clear();
  node_by_hash_.clear();
  envs_.clear();
  for (auto& t : tokens)
    put_join_token(std::move(t));
  for (const auto& n : nodes)
    put_node(n);
  for (const auto& e : envs)
    put_env(e);
}

void Enrollment::put_join_token(store::JoinTokenRecord t) {
  std::string hash = t.hash;
  join_by_hash_.insert_or_assign(std::move(hash), std::move(t));
}

const store::JoinTokenRecord* Enrollment::join_token_named(std::string_view name) const {
  for (const auto& [hash, t] : join_by_hash_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const store::JoinTokenRecord* Enrollment::join_token_for(std::string_view secret) const {
  auto it = join_by_hash_.find(sha256_hex(secret));
  return it == join_by_hash_.end() ? nullptr : &it->second;
}

void Enrollment::count_use(int64_t id, TimeMs at) {
  for (auto& [hash, t] : join_by_hash_) {
    if (t.id == id) {
      ++t.uses;
      t.last_used = at;
    }
  }
}

std::vector<store::JoinTokenRecord> Enrollment::join_tokens() const {
  std::vector<store::JoinTokenRecord> out;
  for (const auto& [hash, t] : join_by_hash_)
    out.push_back(t);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

void Enrollment::put_node(store::NodeCredential c) {
  forget_node(c.node);
  if (c.revoked_at != 0 || c.hash.empty()) return;
  node_by_hash_[c.hash] = c.node;
  std::string name = c.node;
  nodes_[std::move(name)] = std::move(c);
}

void Enrollment::forget_node(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  node_by_hash_.erase(it->second.hash);
  nodes_.erase(it);
}

const store::NodeCredential* Enrollment::node_for(std::string_view credential) const {
  auto it = node_by_hash_.find(sha256_hex(credential));
  if (it == node_by_hash_.end()) return nullptr;
  return node_named(it->second);
}

const store::NodeCredential* Enrollment::node_named(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : &it->second;
}

bool Enrollment::is_protected(std::string_view env) const {
  auto it = envs_.find(env);
  return it != envs_.end() && it->second.is_protected;
}

void Enrollment::put_env(const store::EnvRecord& e) {
  envs_.insert_or_assign(e.name, e);
}

}  // namespace slipway::server
