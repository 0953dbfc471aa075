// The web console: the built front-end (web/, built into the `console` directory next to the
// executable) served as static files at /, and where to find it. Beast-free.
#pragma once

#include <filesystem>
#include <string_view>

#include "server/http.h"

namespace slipway::server {

// Where the console's files are when --console-dir is not given: `console` next to the
// executable (the build tree), else ../share/slipway/console from it (an install). Empty when
// neither holds an index.html.
std::filesystem::path default_console_dir();

// The answer to GET `path` (decoded, without the query) for the console in `dir`: "/" is
// index.html; a file under dir (never outside it: no "..", no hidden names, no symlink out) with
// its content type and caching (hashed assets/ for a year, the rest revalidated), the page's
// security headers (a CSP allowing only the server itself); a 404 for anything else, and a page
// saying how to build the console when `dir` has none.
Response serve_console(const std::filesystem::path& dir, std::string_view path);

}  // namespace slipway::server
