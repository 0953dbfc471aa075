#include "server/console.h"

#include <array>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace slipway::server {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxPath = 512;

// Content types of what a Vite build emits.
std::string_view content_type_of(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 13> kTypes{{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
      {".wasm", "application/wasm"},
  }};
  for (const auto& [ext, type] : kTypes) {
    if (name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext) return type;
  }
  return "application/octet-stream";
}

// A relative path of plain segments: letters, digits, '.', '-', '_'; no segment empty or
// starting with '.' (no "..", no hidden files).
bool plain_relative_path(std::string_view rel) {
  if (rel.empty() || rel.size() > kMaxPath) return false;
  size_t start = 0;
  while (start <= rel.size()) {
    const size_t end = std::min(rel.find('/', start), rel.size());
    const std::string_view seg = rel.substr(start, end - start);
    if (seg.empty() || seg.front() == '.') return false;
    for (const char ch : seg) {
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

Response not_found(std::string_view path) {
  return Response::error(
      err(Errc::not_found, fmt::format("no such page or route: {}", path.substr(0, 200))));
}

Response not_built(const fs::path& dir) {
  Response r;
  r.status = 404;
  r.content_type = "text/plain; charset=utf-8";
  r.body = fmt::format(
      "The Slipway web console is not installed here: {}.\n"
      "Build it with `./run.sh build` (it needs npm), or start the server with --console-dir "
      "DIR.\nThe API is at /api/v1.\n",
      dir.empty() ? std::string("no console directory was found next to the executable")
                  : "there is no index.html in " + dir.string());
  return r;
}

}  // namespace

fs::path default_console_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  for (const fs::path& dir : {exe.parent_path() / "console",
                              exe.parent_path().parent_path() / "share" / "slipway" / "console"}) {
    if (fs::is_regular_file(dir / "index.html", ec)) return dir;
  }
  return {};
}

Response serve_console(const fs::path& dir, std::string_view path) {
  std::error_code ec;
  if (dir.empty() || !fs::is_regular_file(dir / "index.html", ec)) {
    if (path == "/" || path == "/index.html") return not_built(dir);
    return not_found(path);
  }
  if (path.empty() || path.front() != '/') return not_found(path);
  std::string_view rel = path.substr(1);
  if (rel.empty()) rel = "index.html";
  if (!plain_relative_path(rel)) return not_found(path);
  // Resolved, the file must still be inside the directory (a symlink planted in it must not
  // lead out) and a regular file.
  const fs::path root = fs::canonical(dir, ec);
  if (ec) return not_built(dir);
  const fs::path file = fs::canonical(root / fs::path(rel), ec);
  if (ec) return not_found(path);
  const std::string root_text = root.string() + "/";
  if (file.string().compare(0, root_text.size(), root_text) != 0) return not_found(path);
  const auto status = fs::status(file, ec);
  if (ec || !fs::is_regular_file(status)) return not_found(path);
  const auto size = fs::file_size(file, ec);
  if (ec) return not_found(path);

  Response r;
  r.content_type = std::string(content_type_of(rel));
  r.file = Response::FileRange{file.string(), 0, size};
  // Vite names what it builds under assets/ by content hash: those never change.
  r.headers["Cache-Control"] =
      rel.starts_with("assets/") ? "public, max-age=31536000, immutable" : "no-cache";
  r.headers["X-Content-Type-Options"] = "nosniff";
  if (r.content_type.starts_with("text/html")) {
    // Everything the page loads comes from this server: no inline script, no other origin.
    r.headers["Content-Security-Policy"] =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
        "data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'";
    r.headers["X-Frame-Options"] = "DENY";
    r.headers["Referrer-Policy"] = "no-referrer";
  }
  return r;
}

}  // namespace slipway::server
