#include <iostream>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"

namespace slipway::cli {

client::ApiClient make_client(const ClientFlags& f) {
  client::ClientConfig c;
  c.server = f.server;
  c.token = f.token;
  c.ca_cert = f.ca_cert;
  c.user = client::default_user();
  return client::ApiClient(c);
}

int fail(const Error& e) {
  std::cerr << paint("error:", Color::red) << " " << e.message << "\n";
  if (e.code == Errc::unauthenticated) {
    std::cerr << "hint: give the admin token with --token or SLIPWAY_TOKEN (the server wrote it to "
                 "DATA_DIR/admin.token)\n";
  }
  return exit_code(e.code);
}

void warn_left_out(const json::value& created, std::string_view what) {
  if (!created.is_object()) return;
  const std::pair<const char*, const char*> kinds[] = {
      {"lost_nodes_left_out", "are lost"},
      {"quarantined_nodes_left_out", "are quarantined (slipway nodes release NAME)"}};
  for (const auto& [key, why] : kinds) {
    const auto* v = created.as_object().if_contains(key);
    if (!v || !v->is_array() || v->as_array().empty()) continue;
    std::string names;
    for (const auto& n : v->as_array()) {
      if (n.is_string()) names += (names.empty() ? "" : ", ") + std::string(n.as_string());
    }
    std::cerr << paint("warning:", Color::yellow) << " "
              << fmt::format("{} matching node(s) {} and left out of this {}: {}\n",
                             v->as_array().size(), why, what, names);
  }
}

namespace {
void pretty(std::ostream& os, const json::value& jv, std::string& indent) {
  switch (jv.kind()) {
    case json::kind::object: {
      const auto& obj = jv.get_object();
      if (obj.empty()) {
        os << "{}";
        return;
      }
      os << "{\n";
      indent.append(2, ' ');
      size_t i = 0;
      for (const auto& [k, v] : obj) {
        os << indent << json::serialize(json::value(k)) << ": ";
        pretty(os, v, indent);
        if (++i < obj.size()) os << ",";
        os << "\n";
      }
      indent.resize(indent.size() - 2);
      os << indent << "}";
      return;
    }
    case json::kind::array: {
      const auto& arr = jv.get_array();
      if (arr.empty()) {
        os << "[]";
        return;
      }
      os << "[\n";
      indent.append(2, ' ');
      for (size_t i = 0; i < arr.size(); ++i) {
        os << indent;
        pretty(os, arr[i], indent);
        if (i + 1 < arr.size()) os << ",";
        os << "\n";
      }
      indent.resize(indent.size() - 2);
      os << indent << "]";
      return;
    }
    default:
      os << json::serialize(jv);
  }
}
}  // namespace

Status add_targeting(json::object& body, const std::string& role, const std::string& zone,
                     const std::string& selector, const std::string& batch) {
  if (!role.empty()) body["role"] = role;
  if (!zone.empty()) body["zone"] = zone;
  if (!selector.empty()) body["selector"] = selector;
  if (!batch.empty()) {
    if (auto b = engine::BatchSize::parse(batch); !b) return b.error();
    body["batch"] = batch;
  }
  return {};
}

void print_json(const json::value& v) {
  std::string indent;
  pretty(std::cout, v, indent);
  std::cout << "\n";
}

}  // namespace slipway::cli
