#include "server/tokens.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/crypto.h"
#include "common/duration.h"

namespace slipway::server {

std::string new_token_secret() {
  return std::string(kTokenPrefix) + random_hex(32);
}

std::string token_hash(std::string_view secret) {
  return sha256_hex(secret);
}

namespace {

constexpr size_t kMaxNameListEntries = 32;
constexpr int64_t kMaxTtlMs = 10LL * 366 * 24 * 3600 * 1000;  // ten years

}  // namespace

Result<std::vector<std::string>> name_list(JsonReader& r, std::string_view key, NameKind kind) {
  auto list = r.str_list(key);
  if (list.size() > kMaxNameListEntries) {
    return err(Errc::invalid_argument,
               fmt::format("at most {} entries in {}", kMaxNameListEntries, key));
  }
  for (const auto& v : list) {
    if (auto st = validate_name(kind, v); !st) return st.error();
  }
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  return list;
}

Result<TimeMs> expiry_from_ttl(const std::string& ttl, TimeMs now) {
  if (ttl.empty()) return TimeMs{0};
  auto d = parse_duration(ttl);
  if (!d) return err(Errc::invalid_argument, "ttl: " + d.error().message);
  if (d->count() <= 0 || d->count() > kMaxTtlMs) {
    return err(
        Errc::invalid_argument,
        fmt::format("ttl '{}' must be more than 0 and at most ten years", ttl.substr(0, 64)));
  }
  return now + d->count();
}

Principal token_principal(const store::TokenRecord& t) {
  Principal p;
  p.kind = Principal::Kind::token;
  auto role = parse_role(t.role);
  p.role = role ? *role : Role::viewer;
  p.envs = t.envs;
  p.apps = t.apps;
  p.name = t.name;
  p.token_id = t.id;
  return p;
}

namespace {

json::value time_or_null(TimeMs t) {
  return t == 0 ? json::value(nullptr) : json::value(format_time(t));
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

}  // namespace

json::object token_life_json(TimeMs created_at, const std::string& created_by, TimeMs expires_at,
                             TimeMs last_used, TimeMs revoked_at, const std::string& revoked_by) {
  return json::object{{"created_at", time_or_null(created_at)},
                      {"created_by", created_by},
                      {"expires_at", time_or_null(expires_at)},
                      {"last_used", time_or_null(last_used)},
                      {"revoked", revoked_at != 0},
                      {"revoked_at", time_or_null(revoked_at)},
                      {"revoked_by", revoked_by}};
}

json::object token_to_json(const store::TokenRecord& t) {
  json::object o{{"id", t.id},
                 {"name", t.name},
                 {"role", t.role},
                 {"envs", strings(t.envs)},
                 {"apps", strings(t.apps)}};
  for (auto& [k, v] : token_life_json(t))
    o[k] = std::move(v);
  return o;
}

void TokenCache::load(std::vector<store::TokenRecord> all) {
  by_hash_.clear();
  for (auto& t : all)
    put(std::move(t));
}

void TokenCache::put(store::TokenRecord t) {
  std::string h = t.hash;
  by_hash_[std::move(h)] = std::move(t);
}

const store::TokenRecord* TokenCache::find_id(int64_t id) const {
  for (const auto& entry : by_hash_) {
    if (entry.second.id == id) return &entry.second;
  }
  return nullptr;
}

const store::TokenRecord* TokenCache::find_name(std::string_view name) const {
  for (const auto& entry : by_hash_) {
    if (entry.second.name == name) return &entry.second;
  }
  return nullptr;
}

Result<Principal> TokenCache::lookup(std::string_view secret, TimeMs now) {
  auto it = by_hash_.find(token_hash(secret));
  if (it == by_hash_.end()) return err(Errc::unauthenticated, "the token is not valid");
  auto& t = it->second;
  if (t.revoked_at != 0) {
    return err(Errc::unauthenticated, fmt::format("token '{}' was revoked at {} UTC by {}", t.name,
                                                  format_time_short(t.revoked_at), t.revoked_by));
  }
  if (t.expires_at != 0 && now >= t.expires_at) {
    return err(Errc::unauthenticated, fmt::format("token '{}' expired at {} UTC", t.name,
                                                  format_time_short(t.expires_at)));
  }
  t.last_used = now;
  used_[t.id] = now;
  return token_principal(t);
}

std::vector<std::pair<int64_t, TimeMs>> TokenCache::take_used() {
  std::vector<std::pair<int64_t, TimeMs>> out(used_.begin(), used_.end());
  used_.clear();
  return out;
}

}  // namespace slipway::server
