// What the API handlers that pick nodes or name records share: the node-picking terms of a
// request (deploys, rollbacks, runs), lists of node names for messages, ids in paths, and the
// paging of listings. Internal to the server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "engine/deploy.h"
#include "inventory/selector.h"
#include "server/http.h"

namespace slipway::server {

// The node-picking fields of a request body: read them before the reader's finish() (so that
// they count as known), check them after (check()).
struct TargetFields {
  std::string role;
  std::string zone;
  std::string selector;
  std::optional<std::string> batch;

  static TargetFields read(JsonReader& r);
  // The terms beyond env checked against the names grammar: invalid_argument for a bad one, for
  // env inside the selector, or for a bad batch size.
  struct Checked {
    inventory::Selector extra;  // beyond env
    std::optional<engine::BatchSize> batch;
  };
  Result<Checked> check() const;
};

// "a, b, c and 5 more".
std::string node_list(const std::vector<std::string>& names, size_t max = 8);

// Sets o[key] to the names, unless there are none: the nodes a request matched and left out
// (lost_nodes_left_out, quarantined_nodes_left_out).
void add_left_out(json::object& o, std::string_view key, const std::vector<std::string>& names);

// A positive id from a path segment; the error names `what` ("deploy", "run").
Result<int64_t> parse_id(const std::string& s, std::string_view what);

// ?limit= (1..1000, default `fallback`) and ?before= (an id, 0 when absent) of a listing.
struct Paging {
  int limit = 50;
  int64_t before = 0;
};
Result<Paging> parse_paging(const Request& req, std::string_view what, int fallback = 50);

// ?env= ("" = any; else checked against the names grammar) and the paging of a listing.
struct EnvPage {
  std::string env;
  Paging paging;
};
Result<EnvPage> parse_env_paging(const Request& req, std::string_view what);

}  // namespace slipway::server
