#include "server/http.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include <boost/url/parse.hpp>
#include <fmt/format.h>

#include "common/strings.h"

namespace slipway::server {

std::string Request::query_or(const std::string& key, const std::string& fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : it->second;
}

std::string Request::param(const std::string& key) const {
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

Response Response::json(int status, const json::value& v) {
  Response r;
  r.status = status;
  r.body = to_json(v);
  r.body += '\n';
  return r;
}

Response Response::error(const Error& e) {
  Response r = json(
      http_status(e.code),
      json::object{{"error", json::object{{"code", errc_name(e.code)}, {"message", e.message}}}});
  r.error_code = std::string(errc_name(e.code));
  r.error_message = e.message;
  return r;
}

void Router::add(std::string method, std::string_view pattern, Access access, std::string action,
                 Handler h, RouteKind kind) {
  if (kind == RouteKind::upload) {
    throw std::logic_error("an upload route is added with add_upload: " + std::string(pattern));
  }
  Route r;
  r.method = std::move(method);
  r.pattern = std::string(pattern);
  r.segments = split(pattern, '/');
  r.access = access;
  r.action = std::move(action);
  r.kind = kind;
  r.handler = std::move(h);
  routes_.push_back(std::move(r));
}

void Router::add_upload(std::string method, std::string_view pattern, Access access,
                        std::string action, BodyCheck admit, Handler h) {
  if (!admit) throw std::logic_error("an upload route needs a check: " + std::string(pattern));
  add(std::move(method), pattern, access, std::move(action), std::move(h));
  routes_.back().kind = RouteKind::upload;
  routes_.back().admit = std::move(admit);
}

const Route* Router::match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string>& params, bool& path_exists) const {
  const auto segs = split(path, '/');
  path_exists = false;
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::map<std::string, std::string> captured;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const auto& p = r.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        captured[p.substr(1, p.size() - 2)] = segs[i];
      } else {
        ok = p == segs[i];
      }
    }
    if (!ok) continue;
    path_exists = true;
    if (r.method != method && !(r.method == "GET" && method == "HEAD")) continue;
    params = std::move(captured);
    return &r;
  }
  return nullptr;
}

std::string bearer_from_ws_protocols(std::string_view header) {
  for (const auto& offered : split(header, ',')) {
    const std::string_view p = trim(offered);
    if (p.starts_with("bearer.") && p.size() > 7) return "Bearer " + std::string(p.substr(7));
  }
  return "";
}

bool offers_ws_protocol(std::string_view header, std::string_view name) {
  const auto offered = split(header, ',');
  return std::any_of(offered.begin(), offered.end(),
                     [name](const std::string& p) { return trim(p) == name; });
}

Status expect_empty_body(const Request& req, const char* what) {
  if (req.body.empty()) return {};
  auto v = parse_json(req.body, "request body");
  if (!v) return v.error();
  JsonReader r(*v, what);
  return r.finish();
}

Status authorize(Request& req, std::string_view env, std::string_view app) {
  std::string target;
  if (!env.empty()) target = fmt::format("env={}", env);
  if (!app.empty()) target += fmt::format("{}app={}", target.empty() ? "" : " ", app);
  if (!target.empty() && req.audit_target.size() < 1024 &&
      req.audit_target.find(target) == std::string::npos) {
    if (!req.audit_target.empty()) req.audit_target += "; ";
    req.audit_target += target;
  }
  return authorize_scope(req.principal, env, app);
}

Status authorize_object(Request& req, std::string_view what, std::string_view env,
                        std::string_view app) {
  if (auto st = authorize(req, env, app); st || st.error().code != Errc::forbidden) return st;
  return authorize_object(req.principal, what, env, app);
}

Result<int64_t> parse_path_id(std::string_view text, std::string_view what) {
  int64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size() || id <= 0) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a {} id", text.substr(0, 32), what));
  }
  return id;
}

bool parse_range(std::string_view header, uint64_t size, uint64_t& start, uint64_t& end,
                 bool& unsatisfiable) {
  unsatisfiable = false;
  if (header.substr(0, 6) != "bytes=") return false;
  const std::string_view spec = header.substr(6);
  if (spec.find(',') != std::string_view::npos) return false;  // several ranges: send it all
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return false;
  // Digits only, the whole text, no overflow.
  auto num = [](std::string_view s, uint64_t& out) {
    if (s.empty()) return false;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return false;
    out = v;
    return true;
  };
  const auto a = spec.substr(0, dash);
  const auto b = spec.substr(dash + 1);
  if (a.empty()) {  // a suffix: the last N bytes
    uint64_t n = 0;
    if (!num(b, n)) return false;
    if (n == 0 || size == 0) {
      unsatisfiable = true;
      return true;
    }
    start = n >= size ? 0 : size - n;
    end = size - 1;
    return true;
  }
  uint64_t first = 0;
  uint64_t last = UINT64_MAX;  // "A-": to the end
  if (!num(a, first)) return false;
  if (!b.empty() && !num(b, last)) return false;
  if (first >= size || last < first) {
    unsatisfiable = true;
    return true;
  }
  start = first;
  end = std::min(last, size - 1);
  return true;
}

Result<std::pair<std::string, std::map<std::string, std::string>>> split_target(
    std::string_view target) {
  if (target.size() > 8192) return err(Errc::invalid_argument, "request target is too long");
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return err(Errc::invalid_argument, "request target is malformed: " + u.error().message());
  std::string path;
  for (auto seg : u->segments()) {
    const std::string& s = seg;
    if (s.find('\0') != std::string::npos || s.find('/') != std::string::npos) {
      return err(Errc::invalid_argument, "request path has a forbidden character");
    }
    path += "/" + s;
  }
  if (path.empty()) path = "/";
  std::map<std::string, std::string> query;
  for (auto p : u->params()) {
    if (query.size() > 64) return err(Errc::invalid_argument, "too many query parameters");
    std::string key(p.key);
    std::string value = p.has_value ? std::string(p.value) : "";
    if (key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return err(Errc::invalid_argument, "request query has a forbidden character");
    }
    if (key.empty()) continue;  // "?" alone, or "&&"
    query[std::move(key)] = std::move(value);
  }
  return std::make_pair(std::move(path), std::move(query));
}

}  // namespace slipway::server
