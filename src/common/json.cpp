#include "common/json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace slipway {

Result<json::value> parse_json(std::string_view text, std::string_view what, json::storage_ptr sp) {
  json::parse_options opts;
  opts.max_depth = 32;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, std::move(sp), opts);
  if (ec) {
    return err(Errc::invalid_argument, fmt::format("{} is not valid JSON: {}", what, ec.message()));
  }
  return v;
}

JsonReader::JsonReader(const json::value& v, std::string context) : context_(std::move(context)) {
  obj_ = v.if_object();
  if (!obj_) {
    error_ = err(Errc::invalid_argument, fmt::format("{} must be a JSON object", context_));
  }
}

const json::value* JsonReader::find(std::string_view key) {
  known_.emplace(key);
  if (!obj_) return nullptr;
  const auto* v = obj_->if_contains(key);
  if (v && v->is_null()) return nullptr;
  return v;
}

void JsonReader::fail(std::string_view key, std::string_view expected) {
  if (error_) return;
  error_ = err(Errc::invalid_argument,
               fmt::format("{}: field '{}' must be {}", context_, key, expected));
}

std::string JsonReader::str(std::string_view key) {
  const auto* v = find(key);
  if (!v) {
    if (!error_) {
      error_ =
          err(Errc::invalid_argument, fmt::format("{}: field '{}' is required", context_, key));
    }
    return {};
  }
  if (!v->is_string()) {
    fail(key, "a string");
    return {};
  }
  return std::string(v->get_string());
}

std::optional<std::string> JsonReader::opt_str(std::string_view key) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    fail(key, "a string");
    return std::nullopt;
  }
  return std::string(v->get_string());
}

std::string JsonReader::str_or(std::string_view key, std::string fallback) {
  auto v = opt_str(key);
  return v ? *v : std::move(fallback);
}

std::optional<int64_t> JsonReader::opt_i64(std::string_view key) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->get_uint64());
  }
  fail(key, "an integer");
  return std::nullopt;
}

int64_t JsonReader::i64(std::string_view key) {
  const bool present = obj_ && obj_->if_contains(key) && !obj_->at(key).is_null();
  auto v = opt_i64(key);
  if (!present && !error_) {
    error_ = err(Errc::invalid_argument, fmt::format("{}: field '{}' is required", context_, key));
  }
  return v.value_or(0);
}

int64_t JsonReader::i64_or(std::string_view key, int64_t fallback) {
  return opt_i64(key).value_or(fallback);
}

bool JsonReader::boolean_or(std::string_view key, bool fallback) {
  const auto* v = find(key);
  if (!v) return fallback;
  if (!v->is_bool()) {
    fail(key, "true or false");
    return fallback;
  }
  return v->get_bool();
}

std::vector<std::string> JsonReader::str_list(std::string_view key) {
  std::vector<std::string> out;
  const auto* v = find(key);
  if (!v) return out;
  if (!v->is_array()) {
    fail(key, "an array of strings");
    return out;
  }
  for (const auto& e : v->get_array()) {
    if (!e.is_string()) {
      fail(key, "an array of strings");
      return {};
    }
    out.emplace_back(e.get_string());
  }
  return out;
}

std::map<std::string, std::string> JsonReader::str_map(std::string_view key) {
  std::map<std::string, std::string> out;
  const auto* v = find(key);
  if (!v) return out;
  if (!v->is_object()) {
    fail(key, "an object of strings");
    return out;
  }
  for (const auto& [k, e] : v->get_object()) {
    if (!e.is_string()) {
      fail(key, "an object of strings");
      return {};
    }
    out.emplace(std::string(k), std::string(e.get_string()));
  }
  return out;
}

const json::object* JsonReader::opt_object(std::string_view key) {
  const auto* v = find(key);
  if (!v) return nullptr;
  if (!v->is_object()) {
    fail(key, "an object");
    return nullptr;
  }
  return &v->get_object();
}

const json::array* JsonReader::opt_array(std::string_view key) {
  const auto* v = find(key);
  if (!v) return nullptr;
  if (!v->is_array()) {
    fail(key, "an array");
    return nullptr;
  }
  return &v->get_array();
}

const json::value* JsonReader::opt_value(std::string_view key) {
  return find(key);
}

void JsonReader::allow(std::string_view key) {
  known_.emplace(key);
}

Status JsonReader::finish(bool allow_unknown) {
  if (error_) return *error_;
  if (!allow_unknown && obj_) {
    for (const auto& [k, v] : *obj_) {
      if (!known_.contains(std::string_view(k))) {
        return err(Errc::invalid_argument, fmt::format("{}: unknown field '{}'", context_,
                                                       std::string_view(k).substr(0, 64)));
      }
    }
  }
  return {};
}

std::string to_json(const json::value& v) {
  return json::serialize(v);
}

}  // namespace slipway
