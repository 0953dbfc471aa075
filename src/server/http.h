// The server's view of HTTP, free of Beast: a request as the handlers see it, the response they
// return, and the route table. Handlers are coroutines on the server's I/O thread; they must not
// block (database work goes through ServerContext::db_call, CPU-heavy work to the worker pool).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "common/json.h"
#include "server/access.h"

namespace slipway::server {

struct Request {
  std::string method;
  std::string path;  // decoded path, without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string body_file;                      // for streamed uploads: where the body was written
  std::string remote;                         // peer address
  Principal principal;                        // who is calling (from the bearer token)
  std::string actor;                          // who, for the history: the token's name
  std::string claimed_user;                   // X-Slipway-User: a claim, never trusted
  std::string audit_target;                   // what authorize() was asked about, for the audit
  std::map<std::string, std::string> params;  // from the route pattern

  std::string query_or(const std::string& key, const std::string& fallback = "") const;
  std::string param(const std::string& key) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
  // A byte range of a file sent as the body instead of `body` (with sendfile), when set.
  struct FileRange {
    std::string path;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  std::optional<FileRange> file;
  // Set by error(): the error's code name and message (for the audit log).
  std::string error_code;
  std::string error_message;

  static Response json(int status, const json::value& v);
  // The one mapping from an Error to an HTTP response:
  // {"error": {"code": "not_found", "message": "..."}} with the status of the code.
  static Response error(const Error& e);
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;
// A check an upload route makes before its body is read (see Router::add_upload).
using BodyCheck = std::function<Status(Request&)>;

// Streaming routes the listener handles itself (bodies that must not be held in memory).
enum class RouteKind { normal, upload, download, websocket };

struct Route {
  std::string method;
  std::string pattern;                // as registered: /api/v1/deploys/{id}
  std::vector<std::string> segments;  // "{name}" segments capture
  Access access = Access::admin;      // who may call (role; scope is checked by the handler)
  std::string action;                 // what it does, for the audit log: "deploy.create"
  RouteKind kind = RouteKind::normal;
  Handler handler;
  BodyCheck admit;  // upload routes only: run before the body is read
};

class Router {
 public:
  // Every route declares its access level and an action label (the audit log's "what").
  void add(std::string method, std::string_view pattern, Access access, std::string action,
           Handler h, RouteKind kind = RouteKind::normal);
  // A streamed upload (RouteKind::upload; the only way to add one). The listener calls `admit`
  // once the token and role are checked and before it reads a byte of the body, synchronously
  // on the I/O thread: a refusal (the scope check, with what the path names) is answered at once
  // and the body is never stored. The handler runs with the body in Request::body_file.
  void add_upload(std::string method, std::string_view pattern, Access access, std::string action,
                  BodyCheck admit, Handler h);
  // The matching route and its captured parameters; `method_allowed` is false when the path
  // exists for another method only (405).
  const Route* match(const std::string& method, const std::string& path,
                     std::map<std::string, std::string>& params, bool& path_exists) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// The scope check of every route that touches an environment or an app (see authorize_scope):
// ok, or forbidden when the request's token is scoped elsewhere. Records env and app as the
// request's audit target. Call it with the resource's own env and app (looked up for ids).
Status authorize(Request& req, std::string_view env, std::string_view app);
// authorize for an object addressed by id (`what`: "deploy #12"), with its own env and app: a
// refusal names the token's scope only (authorize_object in access.h).
Status authorize_object(Request& req, std::string_view what, std::string_view env,
                        std::string_view app);

// Parses a Range request header (RFC 9110 section 14) for a representation of `size` bytes. One
// range of bytes is supported: "bytes=A-B" (B is clamped to the last byte), "bytes=A-" (to the
// end) and "bytes=-N" (the last N bytes; all of them when N >= size).
//   - false: serve the whole representation (200), ignoring the header: it is not a byte range,
//     it is malformed, or it asks for several ranges. `start` and `end` are left untouched.
//   - true with `unsatisfiable`: answer 416 with "Content-Range: bytes */SIZE": the range starts
//     at or past the end, ends before it starts, is an empty suffix ("bytes=-0"), or the
//     representation is empty. `start` and `end` are left untouched.
//   - true otherwise: serve the inclusive byte range [start, end] (206), end < size.
bool parse_range(std::string_view header, uint64_t size, uint64_t& start, uint64_t& end,
                 bool& unsatisfiable);

// A body that may be absent or an object with no field ({}): what control routes (promote, abort,
// release, revoke) take. `what` names it in errors ("revoke request").
Status expect_empty_body(const Request& req, const char* what);

// Browsers cannot set an Authorization header on a WebSocket: the console offers its token as a
// subprotocol instead, `new WebSocket(url, ["slipway", "bearer." + token])` (as Kubernetes does).
// The Authorization value ("Bearer TOKEN") of a Sec-WebSocket-Protocol header offering
// "bearer.TOKEN", "" when it offers none.
std::string bearer_from_ws_protocols(std::string_view header);
// Whether a Sec-WebSocket-Protocol header offers `name` (the server then answers with it).
bool offers_ws_protocol(std::string_view header, std::string_view name);

// A positive id from a path segment ("42"); invalid_argument "'x' is not a WHAT id" otherwise.
Result<int64_t> parse_path_id(std::string_view text, std::string_view what);

// Decodes the path of a request target, splits off the query and decodes it; an error for
// malformed percent-encoding, NUL bytes or over-long targets.
Result<std::pair<std::string, std::map<std::string, std::string>>> split_target(
    std::string_view target);

}  // namespace slipway::server
