// API tokens: the secret's form and hash, the in-memory table the listener authenticates with
// (by hash: one SHA-256 and one hash-map lookup per request, never the database), and what a
// token looks like in the API (never its secret or hash).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"
#include "common/names.h"
#include "server/access.h"
#include "store/store.h"

namespace slipway::server {

inline constexpr std::string_view kTokenPrefix = "slwt_";

// A new secret: "slwt_" and 32 random bytes (256 bits) in hex.
std::string new_token_secret();
// What is stored and looked up: the lower-case hex SHA-256 of the whole secret.
std::string token_hash(std::string_view secret);

// What token requests (API tokens, join tokens) share: a list of names of `kind` under `key`
// (at most 32, each checked against the names grammar; sorted, without duplicates), and a ttl
// ("" = never: 0) as the time it ends, from `now` (more than 0, at most ten years).
Result<std::vector<std::string>> name_list(JsonReader& r, std::string_view key, NameKind kind);
Result<TimeMs> expiry_from_ttl(const std::string& ttl, TimeMs now);

// The life of a token as the API shows it (API tokens and join tokens alike): created_at,
// created_by, expires_at, last_used, revoked, revoked_at, revoked_by; times RFC 3339 or null.
json::object token_life_json(TimeMs created_at, const std::string& created_by, TimeMs expires_at,
                             TimeMs last_used, TimeMs revoked_at, const std::string& revoked_by);
template <class Record>
json::object token_life_json(const Record& t) {
  return token_life_json(t.created_at, t.created_by, t.expires_at, t.last_used, t.revoked_at,
                         t.revoked_by);
}

// The principal of a stored token (role parsed; an unknown role reads as viewer).
Principal token_principal(const store::TokenRecord& t);

// A token as the API shows it: id, name, role, envs, apps, created_at, created_by, expires_at,
// last_used, revoked, revoked_at, revoked_by. Never the secret or the hash.
json::object token_to_json(const store::TokenRecord& t);

class TokenCache {
 public:
  void load(std::vector<store::TokenRecord> all);
  void put(store::TokenRecord t);  // insert or replace (by hash)
  const store::TokenRecord* find_id(int64_t id) const;
  const store::TokenRecord* find_name(std::string_view name) const;

  // The principal of a presented secret: unauthenticated when no token has its hash, or the
  // token expired (at `now`) or was revoked, with a message saying which.
  Result<Principal> lookup(std::string_view secret, TimeMs now);

  // The last-use times recorded since the previous call (to persist now and then).
  std::vector<std::pair<int64_t, TimeMs>> take_used();

 private:
  std::unordered_map<std::string, store::TokenRecord> by_hash_;
  std::map<int64_t, TimeMs> used_;
};

}  // namespace slipway::server
