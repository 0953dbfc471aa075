#include "server/targets.h"

#include <charconv>

#include <fmt/format.h>

#include "common/names.h"

namespace slipway::server {

namespace {

Result<inventory::Selector> target_terms(const std::string& role, const std::string& zone,
                                         const std::string& selector) {
  inventory::Selector out;
  if (!selector.empty()) {
    auto sel = inventory::Selector::parse(selector);
    if (!sel) return sel.error();
    for (const auto& t : sel->terms()) {
      if (t.key == "env" && !t.is_tag) {
        return err(Errc::invalid_argument, "give the environment with env, not in the selector");
      }
    }
    out = std::move(*sel);
  }
  if (!role.empty()) {
    if (auto st = validate_name(NameKind::role, role); !st) return st.error();
    out.add(inventory::eq_term("role", role));
  }
  if (!zone.empty()) {
    if (auto st = validate_name(NameKind::zone, zone); !st) return st.error();
    out.add(inventory::eq_term("zone", zone));
  }
  return out;
}

}  // namespace

TargetFields TargetFields::read(JsonReader& r) {
  TargetFields f;
  f.role = r.str_or("role", "");
  f.zone = r.str_or("zone", "");
  f.selector = r.str_or("selector", "");
  f.batch = r.opt_str("batch");
  return f;
}

Result<TargetFields::Checked> TargetFields::check() const {
  Checked c;
  auto terms = target_terms(role, zone, selector);
  if (!terms) return terms.error();
  c.extra = std::move(*terms);
  if (batch) {
    auto b = engine::BatchSize::parse(*batch);
    if (!b) return b.error();
    c.batch = *b;
  }
  return c;
}

std::string node_list(const std::vector<std::string>& names, size_t max) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i)
    out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += fmt::format(" and {} more", names.size() - max);
  return out;
}

void add_left_out(json::object& o, std::string_view key, const std::vector<std::string>& names) {
  if (names.empty()) return;
  json::array a;
  for (const auto& n : names)
    a.emplace_back(n);
  o[key] = std::move(a);
}

Result<int64_t> parse_id(const std::string& s, std::string_view what) {
  return parse_path_id(s, what);
}

Result<Paging> parse_paging(const Request& req, std::string_view what, int fallback) {
  Paging p;
  p.limit = fallback;
  if (auto l = req.query_or("limit"); !l.empty()) {
    auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), p.limit);
    if (ec != std::errc() || end != l.data() + l.size() || p.limit < 1 || p.limit > 1000) {
      return err(Errc::invalid_argument, "limit must be 1..1000");
    }
  }
  if (auto b = req.query_or("before"); !b.empty()) {
    auto id = parse_id(b, what);
    if (!id) return id.error();
    p.before = *id;
  }
  return p;
}

Result<EnvPage> parse_env_paging(const Request& req, std::string_view what) {
  EnvPage q;
  q.env = req.query_or("env");
  if (!q.env.empty()) {
    if (auto st = validate_name(NameKind::env, q.env); !st) return st.error();
  }
  auto paging = parse_paging(req, what);
  if (!paging) return paging.error();
  q.paging = *paging;
  return q;
}

}  // namespace slipway::server
