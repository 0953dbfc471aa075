// The server's HTTP routing layer, free of sockets: request targets (split_target), the route
// table (Router::match over the server's own route patterns), Range headers (parse_range) and id
// path segments (parse_path_id), the console's static files (serve_console: never a file outside
// its directory) and the browser's WebSocket token (bearer_from_ws_protocols).
//
// Input: "METHOD TARGET\nRANGE\nSIZE" (missing parts are empty).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

#include <stdlib.h>

#include "server/console.h"
#include "server/http.h"

using namespace slipway::server;

namespace {

const Router& router() {
  static const Router r = [] {
    Router r;
    // The shapes of the server's routes (handlers are never called here).
    const char* const routes[][2] = {
        {"DELETE", "/api/v1/envs/{env}/lb"},
        {"DELETE", "/api/v1/freezes/{id}"},
        {"GET", "/api/v1/agent/ws"},
        {"GET", "/api/v1/artifacts"},
        {"GET", "/api/v1/artifacts/{app}"},
        {"GET", "/api/v1/artifacts/{app}/{version}"},
        {"GET", "/api/v1/artifacts/{app}/{version}/download"},
        {"GET", "/api/v1/blobs/{sha256}"},
        {"GET", "/api/v1/deploys"},
        {"GET", "/api/v1/deploys/{id}"},
        {"GET", "/api/v1/deploys/{id}/watch"},
        {"GET", "/api/v1/envs/{env}/lb"},
        {"GET", "/api/v1/freezes"},
        {"GET", "/api/v1/freezes/{id}"},
        {"GET", "/api/v1/nodes"},
        {"GET", "/api/v1/nodes/{name}"},
        {"GET", "/api/v1/plans"},
        {"GET", "/api/v1/plans/{id}"},
        {"GET", "/api/v1/runs"},
        {"GET", "/api/v1/runs/{id}"},
        {"GET", "/api/v1/stats"},
        {"GET", "/api/v1/status"},
        {"GET", "/healthz"},
        {"POST", "/api/v1/artifacts/{app}/{version}"},
        {"POST", "/api/v1/deploys"},
        {"POST", "/api/v1/deploys/{id}/abort"},
        {"POST", "/api/v1/freezes"},
        {"POST", "/api/v1/freezes/lift"},
        {"POST", "/api/v1/nodes/{name}/release"},
        {"POST", "/api/v1/plans"},
        {"POST", "/api/v1/plans/{id}/abort"},
        {"POST", "/api/v1/plans/{id}/promote"},
        {"POST", "/api/v1/rollbacks"},
        {"POST", "/api/v1/runs"},
        {"PUT", "/api/v1/envs/{env}/lb"},
        {"POST", "/api/v1/nodes/{name}/revoke"},
        {"GET", "/api/v1/envs/{env}/apps/{app}/config"},
        {"PATCH", "/api/v1/envs/{env}/apps/{app}/config"},
        {"GET", "/api/v1/envs/{env}/apps/{app}/secrets"},
        {"PUT", "/api/v1/envs/{env}/apps/{app}/secrets/{key}"},
        {"DELETE", "/api/v1/envs/{env}/apps/{app}/secrets/{key}"},
        {"POST", "/api/v1/tokens"},
        {"GET", "/api/v1/tokens"},
        {"DELETE", "/api/v1/tokens/{ref}"},
        {"GET", "/api/v1/audit"},
        {"GET", "/api/v1/audit/verify"},
        {"POST", "/api/v1/secrets/rotate-key"},
        {"GET", "/api/v1/routes"},
        {"POST", "/api/v1/notify/hooks"},
        {"GET", "/api/v1/notify/hooks"},
        {"DELETE", "/api/v1/notify/hooks/{name}"},
        {"POST", "/api/v1/notify/hooks/{name}/test"},
        {"GET", "/api/v1/notify/deliveries"},
        {"GET", "/api/v1/whoami"},
        {"POST", "/api/v1/deploys/preview"},
        {"POST", "/api/v1/rollbacks/preview"},
        {"GET", "/api/v1/artifacts/{app}/{version}/diff"},
        {"GET", "/api/v1/metrics/delivery"},
    };
    for (const auto& rt : routes)
      r.add(rt[0], rt[1], Access::admin, "fuzz", Handler{});
    return r;
  }();
  return r;
}

// A console directory with a few files, and a file next to it that must never be served.
const std::filesystem::path& console_dir() {
  static const std::filesystem::path dir = [] {
    std::string tmpl = "/tmp/slipway-fuzz-console-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    const std::filesystem::path root = std::filesystem::path(tmpl) / "console";
    std::filesystem::create_directories(root / "assets");
    std::ofstream(root / "index.html") << "<!doctype html>";
    std::ofstream(root / "assets" / "app.js") << "1";
    std::ofstream(std::filesystem::path(tmpl) / "secret") << "secret";
    std::filesystem::create_symlink("../../secret", root / "assets" / "out.js");
    static std::string top;
    top = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(top, ec);
    });
    return std::filesystem::canonical(root);
  }();
  return dir;
}

std::string_view take_line(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::string_view request_line = take_line(rest);
  const std::string_view range = take_line(rest);
  const std::string_view size_text = take_line(rest);

  const size_t sp = request_line.find(' ');
  const std::string method(request_line.substr(0, sp));
  const std::string_view target =
      sp == std::string_view::npos ? std::string_view() : request_line.substr(sp + 1);
  if (auto split = split_target(target)) {
    const std::string& path = split->first;
    if (path.find('\0') != std::string::npos) std::abort();  // NUL bytes are refused
    std::map<std::string, std::string> params;
    bool path_exists = false;
    if (const Route* r = router().match(method, path, params, path_exists)) {
      if (!path_exists) std::abort();
      for (const auto& [key, value] : params) {
        if (value.find('/') != std::string::npos) std::abort();  // one segment each
        if (key == "id") (void)parse_path_id(value, "deploy");
      }
      (void)r;
    }
    if (!path.starts_with("/api/")) {
      const Response res = serve_console(console_dir(), path);
      if (res.file) {
        if (res.status != 200) std::abort();
        if (!res.file->path.starts_with(console_dir().string() + "/")) std::abort();
        if (res.file->path.find("secret") != std::string::npos) std::abort();
      }
    }
  }
  const std::string bearer = bearer_from_ws_protocols(target);
  if (!bearer.empty() && !bearer.starts_with("Bearer ")) std::abort();
  (void)parse_path_id(size_text, "run");

  uint64_t total = 0;
  for (const char c : size_text.substr(0, 19))
    total = total * 10 + static_cast<uint8_t>(c) % 10;
  uint64_t start = 7;
  uint64_t end = 9;
  bool unsatisfiable = false;
  if (parse_range(range, total, start, end, unsatisfiable) && !unsatisfiable) {
    if (!(start <= end && end < total)) std::abort();  // a range inside the representation
  }
  return 0;
}
