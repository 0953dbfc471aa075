// Strict decoding of JSON objects: wrong types, missing required fields and unknown fields are
// errors that name the field (and the object they were found in).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include "common/error.h"

namespace slipway {

namespace json = boost::json;

// Parses text as JSON, with a depth limit; the error names `what` ("request body", ...). The
// value's memory comes from `sp` (default: the heap); a caller that parses many small messages
// can pass a json::monotonic_resource on its stack.
Result<json::value> parse_json(std::string_view text, std::string_view what,
                               json::storage_ptr sp = {});

// Reads fields from one object. Every getter marks its key as known and, on a type error,
// remembers the first error and returns a default; finish() returns that error, or an error for
// the first field no getter asked for (unless unknown fields are allowed).
class JsonReader {
 public:
  JsonReader(const json::value& v, std::string context);

  std::string str(std::string_view key);  // required
  std::optional<std::string> opt_str(std::string_view key);
  std::string str_or(std::string_view key, std::string fallback);
  int64_t i64(std::string_view key);  // required
  std::optional<int64_t> opt_i64(std::string_view key);
  int64_t i64_or(std::string_view key, int64_t fallback);
  bool boolean_or(std::string_view key, bool fallback);
  std::vector<std::string> str_list(std::string_view key);           // missing -> empty
  std::map<std::string, std::string> str_map(std::string_view key);  // missing -> empty
  const json::object* opt_object(std::string_view key);
  const json::array* opt_array(std::string_view key);
  const json::value* opt_value(std::string_view key);

  // Marks a key as known without reading it.
  void allow(std::string_view key);
  bool ok() const { return !error_.has_value(); }
  Status finish(bool allow_unknown = false);

 private:
  const json::value* find(std::string_view key);
  void fail(std::string_view key, std::string_view expected);

  const json::object* obj_ = nullptr;
  std::string context_;
  std::set<std::string, std::less<>> known_;
  std::optional<Error> error_;
};

// Serialises with keys in insertion order (boost::json::serialize).
std::string to_json(const json::value& v);

}  // namespace slipway
