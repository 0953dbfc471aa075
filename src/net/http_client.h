// A small blocking HTTP/1.1 client (Beast underneath), for the CLI, the agent's downloads and
// health checks. Each call opens its own connection. http:// and https:// (the server's
// certificate verified against HttpOptions::tls).
//
// Errors: a connection that cannot be made is Errc::unavailable; running out of time is
// Errc::timeout; a malformed URL is Errc::invalid_argument. HTTP error statuses are NOT errors
// here: the caller gets the status and body and decides.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "common/error.h"
#include "net/tls.h"

namespace slipway::net {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  std::string port;    // "80" or "443" when not given
  std::string target;  // path and query, "/" when empty
};
Result<Url> parse_url(std::string_view url);

using Headers = std::map<std::string, std::string>;  // lower-case names in responses

struct HttpOptions {
  Millis timeout{30'000};         // for the whole exchange
  size_t max_body = 64ULL << 20;  // responses read into memory
  TlsClientConfig tls{};          // for https://
};

struct HttpResult {
  int status = 0;
  Headers headers;
  std::string body;
};

Result<HttpResult> http_request(std::string_view method, std::string_view url,
                                const Headers& headers, std::string_view body,
                                const HttpOptions& opts = {});

// Sends the file as the request body (streamed, never read into memory whole).
Result<HttpResult> http_upload_file(std::string_view method, std::string_view url,
                                    const Headers& headers, const std::filesystem::path& file,
                                    const HttpOptions& opts = {});

struct DownloadResult {
  int status = 0;
  uint64_t bytes_received = 0;  // in this call
  uint64_t file_size = 0;       // of dest afterwards
  bool resumed = false;         // the server answered 206 to a Range request
  std::string error_body;       // the body, when status is not 2xx
};

// GETs `url` into `dest`, streaming to disk. When `resume` is set and `dest` already holds some
// bytes, asks for the rest with a Range header and appends; a server that ignores Range gets the
// file rewritten from the start. `opts.timeout` applies to each read, not the whole download.
Result<DownloadResult> http_download(std::string_view url, const Headers& headers,
                                     const std::filesystem::path& dest, bool resume,
                                     const HttpOptions& opts = {});

}  // namespace slipway::net
