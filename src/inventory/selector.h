// Selectors pick nodes, the way the talk queried Chef by role and environment:
//
//   env=production role=api zone=eu-1a        terms separated by spaces or commas, all must hold
//   role!=worker                               not equal (a node matches when no role equals)
//   zone in (a, b)     zone notin (c)           set membership
//   canary             !canary                 a tag exists / does not exist
//   tag:team=payments                          an explicit tag (any key that is not env, role,
//                                              zone or name is a tag as well)
//
// Keys: env, role (matches any of the node's roles), zone, name, and tags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "inventory/node.h"

namespace slipway::inventory {

class Selector {
 public:
  enum class Op { eq, ne, in, notin, exists, not_exists };
  struct Term {
    std::string key;  // "env", "role", "zone", "name", or a tag key
    bool is_tag = false;
    Op op = Op::eq;
    std::vector<std::string> values;
  };

  Selector() = default;
  // invalid_argument with the position and reason on bad syntax or invalid names.
  static Result<Selector> parse(std::string_view text);

  Selector& add(Term t);
  bool matches(const Node& n) const;
  bool empty() const { return terms_.empty(); }
  const std::vector<Term>& terms() const { return terms_; }
  // Canonical text; parse(to_string()) gives an equal selector.
  std::string to_string() const;

 private:
  std::vector<Term> terms_;
};

Selector::Term eq_term(std::string key, std::string value);

}  // namespace slipway::inventory
