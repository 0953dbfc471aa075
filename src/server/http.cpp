#include "server/http.h"

#include <boost/url/parse.hpp>

#include "common/strings.h"

namespace slipway::server {

std::string Request::query_or(const std::string& key, std::string fallback) const {
  auto it = query.find(key);
  return it == query.end() ? std::move(fallback) : it->second;
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
  return json(http_status(e.code),
              json::object{{"error", json::object{{"code", errc_name(e.code)},
                                                  {"message", e.message}}}});
}

void Router::add(std::string method, std::string_view pattern, Caller min_caller, Handler h,
                 RouteKind kind) {
  Route r;
  r.method = std::move(method);
  r.segments = split(pattern, '/');
  r.min_caller = min_caller;
  r.kind = kind;
  r.handler = std::move(h);
  routes_.push_back(std::move(r));
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

Result<std::pair<std::string, std::map<std::string, std::string>>> split_target(
    std::string_view target) {
  if (target.size() > 8192) return err(Errc::invalid_argument, "request target is too long");
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return err(Errc::invalid_argument, "request target is malformed: " + u.error().message());
  std::string path;
  for (auto seg : u->segments()) {
    std::string s(seg);
    if (s.find('\0') != std::string::npos || s.find('/') != std::string::npos) {
      return err(Errc::invalid_argument, "request path has a forbidden character");
    }
    path += "/" + s;
  }
  if (path.empty()) path = "/";
  std::map<std::string, std::string> query;
  for (auto p : u->params()) {
    if (query.size() > 64) return err(Errc::invalid_argument, "too many query parameters");
    query[std::string(p.key)] = p.has_value ? std::string(p.value) : "";
  }
  return std::make_pair(std::move(path), std::move(query));
}

}  // namespace slipway::server
