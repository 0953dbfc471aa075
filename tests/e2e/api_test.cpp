// Bad input to every API route, over raw HTTP: each gets a JSON error with the right status, and
// the server keeps working.
#include <fmt/format.h>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/strings.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

class ApiTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    start_lab(1);
  }

  // Expects `r` to be the JSON error {"error": {"code", "message"}} with this status.
  static void expect_error(const net::HttpResult& r, int status, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.body;
    auto v = parse_json(r.body, what);
    ASSERT_TRUE(v && v->is_object()) << what << ": not JSON: " << r.body;
    const auto* e = v->as_object().if_contains("error");
    ASSERT_TRUE(e && e->is_object()) << what << ": " << r.body;
    const auto* code = e->as_object().if_contains("code");
    const auto* message = e->as_object().if_contains("message");
    ASSERT_TRUE(code && code->is_string()) << what << ": " << r.body;
    ASSERT_TRUE(message && message->is_string()) << what << ": " << r.body;
    EXPECT_FALSE(message->as_string().empty()) << what;
    EXPECT_NE(code->as_string(), "internal") << what << ": " << r.body;
    auto ct = r.headers.find("content-type");
    ASSERT_TRUE(ct != r.headers.end()) << what;
    EXPECT_EQ(ct->second, "application/json") << what;
  }

  void expect_alive() {
    auto h = http("GET", "/healthz", "", {}, "");
    EXPECT_EQ(h.status, 200) << h.body;
    auto s = http("GET", "/api/v1/stats");
    EXPECT_EQ(s.status, 200) << s.body;
  }
};

TEST_F(ApiTest, MalformedBodiesUnknownFieldsAndWrongTypes) {
  const std::vector<std::string> json_routes = {"/api/v1/deploys", "/api/v1/rollbacks"};
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"malformed JSON", R"({"app": "web", "env": )"},
      {"not JSON", "app=web&env=staging"},
      {"trailing garbage", R"({"app":"web","env":"staging"} x)"},
      {"an array", R"(["web"])"},
      {"a string", R"("web")"},
      {"null", "null"},
      {"an unknown field", R"({"app":"web","env":"staging","colour":"blue"})"},
      {"a number for a name", R"({"app":5,"env":"staging"})"},
      {"a string for a number", R"({"app":"web","env":"staging","max_failures":"many"})"},
      {"a number for the batch", R"({"app":"web","env":"staging","batch":2})"},
      {"a bad batch", R"({"app":"web","env":"staging","batch":"0"})"},
      {"a negative max_failures", R"({"app":"web","env":"staging","max_failures":-1})"},
      {"a missing app", R"({"env":"staging"})"},
      {"a missing env", R"({"app":"web"})"},
      {"a bad selector", R"({"app":"web","env":"staging","selector":"zone in (a"})"},
  };
  for (const auto& route : json_routes) {
    for (const auto& [what, body] : bodies) {
      expect_error(http("POST", route, body), 400, route + " with " + what);
    }
  }
  // Abort takes a small body too.
  expect_error(http("POST", "/api/v1/deploys/1/abort", "{"), 400, "abort with malformed JSON");
  expect_error(http("POST", "/api/v1/deploys/1/abort", R"({"rollback":"yes"})"), 400,
               "abort with a wrong type");
  expect_error(http("POST", "/api/v1/deploys/1/abort", R"({"force":true})"), 400,
               "abort with an unknown field");
  expect_error(http("POST", "/api/v1/deploys/1/abort", R"({"rollback":true})"), 404,
               "abort of a deploy that does not exist");
  expect_alive();
}

TEST_F(ApiTest, InvalidNames) {
  const std::string long_name(200, 'a');
  const std::vector<std::pair<std::string, std::string>> names = {
      {"a path separator", "a/b"},
      {"a backslash", "a\\\\b"},
      {"dot-dot", ".."},
      {"a leading dot-dot", "../etc"},
      {"a control character", "a\\u0001b"},
      {"a newline", "a\\nb"},
      {"a NUL", "a\\u0000b"},
      {"a space", "a b"},
      {"over-long", long_name},
      {"empty", ""},
  };
  for (const auto& [what, name] : names) {
    for (const char* field : {"app", "env", "role", "zone", "version"}) {
      std::string body = fmt::format(R"({{"app":"web","env":"staging","{}":"{}"}})", field, name);
      if (std::string(field) == "app" || std::string(field) == "env") {
        body = std::string(field) == "app" ? fmt::format(R"({{"app":"{}","env":"staging"}})", name)
                                           : fmt::format(R"({{"app":"web","env":"{}"}})", name);
      }
      if (what == "empty" && (std::string(field) == "role" || std::string(field) == "zone" ||
                              std::string(field) == "version")) {
        continue;  // empty means "not given" there
      }
      const auto r = http("POST", "/api/v1/deploys", body);
      expect_error(r, 400, fmt::format("deploy with {} in {}: {}", what, field, body));
    }
  }

  // In URLs: percent-encoded separators, dot-dot, control characters, over-long segments.
  const std::vector<std::string> bad_targets = {
      "/api/v1/artifacts/a%2Fb",
      "/api/v1/artifacts/%2E%2E",
      "/api/v1/artifacts/..%2F..%2Fetc",
      "/api/v1/artifacts/web%00",
      "/api/v1/artifacts/web%01x",
      "/api/v1/artifacts/" + long_name,
      "/api/v1/artifacts/web/" + std::string(300, '1'),
      "/api/v1/artifacts/web/1.0%2F..",
      "/api/v1/artifacts/web/..%2F..%2Fx/download",
      "/api/v1/nodes/%2E%2E",
      "/api/v1/nodes/x%0Ay",
      "/api/v1/status?env=..%2Fx",
      "/api/v1/status?app=%01",
      "/api/v1/nodes?state=dead",
      "/api/v1/deploys?limit=abc",
      "/api/v1/deploys?limit=0",
      "/api/v1/deploys?state=bogus",
      "/api/v1/deploys?app=..",
      "/api/v1/deploys/abc",
      "/api/v1/deploys/0",
      "/api/v1/deploys/-1",
      "/api/v1/deploys/99999999999999999999999",
      "/api/v1/" + std::string(9000, 'x'),
  };
  for (const auto& t : bad_targets) {
    expect_error(http("GET", t), 400, "GET " + t.substr(0, 80));
  }
  // Malformed percent-encoding (our own client refuses to send it).
  auto url = net::parse_url(info().server_url);
  ASSERT_TRUE(url);
  const std::string raw =
      raw_exchange(url->host, url->port,
                   "GET /api/v1/artifacts/web%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       info().admin_token + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 400", 0), 0u) << raw;
  EXPECT_NE(raw.find("\"error\""), std::string::npos) << raw;

  // Uploads with bad names.
  for (const std::string t :
       {"/api/v1/artifacts/%2E%2E/1.0.0", "/api/v1/artifacts/web/..", "/api/v1/artifacts/a%01/1"}) {
    expect_error(http("POST", t, "not an archive", {{"Content-Type", "application/gzip"}}), 400,
                 "POST " + t);
  }
  expect_alive();
}

TEST_F(ApiTest, LimitsTokensRoutesAndMethods) {
  // A JSON body over the limit.
  const std::string huge = R"({"app":"web","env":")" + std::string(2 << 20, 'x') + R"("})";
  expect_error(http("POST", "/api/v1/deploys", huge), 413, "a 2 MiB deploy request");
  expect_alive();

  // Bodies announced over the limit are refused before they are read: a JSON request, and an
  // upload of 10 TB.
  auto url = net::parse_url(info().server_url);
  ASSERT_TRUE(url);
  const std::string auth = "Authorization: Bearer " + info().admin_token + "\r\n";
  std::string raw = raw_exchange(url->host, url->port,
                                 "POST /api/v1/deploys HTTP/1.1\r\nHost: x\r\n" + auth +
                                     "Content-Length: 5000000\r\n\r\n{\"app\":");
  EXPECT_EQ(raw.rfind("HTTP/1.1 413", 0), 0u) << raw;
  EXPECT_NE(raw.find("\"too_large\""), std::string::npos) << raw;
  raw = raw_exchange(url->host, url->port,
                     "POST /api/v1/artifacts/web/9.0.0 HTTP/1.1\r\nHost: x\r\n" + auth +
                         "Content-Type: application/gzip\r\n"
                         "Content-Length: 10000000000000\r\n\r\nabc");
  EXPECT_EQ(raw.rfind("HTTP/1.1 413", 0), 0u) << raw;
  EXPECT_NE(raw.find("\"too_large\""), std::string::npos) << raw;
  expect_alive();

  // Tokens.
  expect_error(http("GET", "/api/v1/nodes", "", {}, ""), 401, "no token");
  expect_error(http("GET", "/api/v1/nodes", "", {}, "slw_wrong_token_0123456789abcdef"), 401,
               "a wrong token");
  expect_error(http("GET", "/api/v1/nodes", "", {{"Authorization", "Basic YTpi"}}, ""), 401,
               "basic auth");
  expect_error(http("POST", "/api/v1/deploys", R"({"app":"web","env":"staging"})", {}, ""), 401,
               "a deploy without a token");
  expect_error(http("GET", "/api/v1/nodes", "", {}, info().join_token), 403,
               "the agent join token on an admin route");
  expect_error(http("POST", "/api/v1/artifacts/web/1.0.0", "x", {}, ""), 401,
               "an upload without a token");

  // Unknown routes and wrong methods ("/" is the web console: console_api_test.cpp).
  for (const std::string t : {"/api", "/api/v1", "/api/v1/nope", "/api/v2/nodes",
                              "/api/v1/nodes/node-1/extra", "/no-such-file.ico"}) {
    expect_error(http("GET", t), 404, "GET " + t);
  }
  const std::vector<std::pair<std::string, std::string>> wrong_methods = {
      {"DELETE", "/api/v1/nodes"},        {"POST", "/api/v1/stats"},
      {"PUT", "/api/v1/deploys"},         {"GET", "/api/v1/rollbacks"},
      {"GET", "/api/v1/deploys/1/abort"}, {"DELETE", "/api/v1/artifacts/web/1.0.0"},
      {"PATCH", "/api/v1/status"},        {"POST", "/healthz"},
  };
  for (const auto& [m, t] : wrong_methods)
    expect_error(http(m, t), 405, m + " " + t);

  // WebSocket routes without an upgrade (the watch checks its deploy first: there is none).
  expect_error(http("GET", "/api/v1/deploys/1/watch"), 404, "watch of no deploy");
  expect_error(http("GET", "/api/v1/agent/ws", "", {}, info().join_token), 400,
               "agent socket without an upgrade");

  // Malformed HTTP.
  raw = raw_exchange(url->host, url->port, "\x01\x02 garbage\r\n\r\n");
  EXPECT_NE(raw.find("400"), std::string::npos) << raw;
  EXPECT_NE(raw.find("\"error\""), std::string::npos) << raw;
  raw = raw_exchange(
      url->host, url->port,
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(40'000, 'a') + "\r\n\r\n");
  EXPECT_NE(raw.find("431"), std::string::npos) << raw.substr(0, 200);
  raw = raw_exchange(url->host, url->port,
                     "POST /api/v1/deploys HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{");
  EXPECT_TRUE(raw.empty() || raw.find("HTTP/1.1") != std::string::npos) << raw;
  expect_alive();

  // Everything still works: a push and a deploy through the CLI.
  auto r = push(release("1.0.0"), "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(ApiTest, FreezeRoutesRefuseBadInput) {
  const std::string later = format_time(now_ms() + 86'400'000);
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"malformed JSON", R"({"env": )"},
      {"an array", R"(["staging"])"},
      {"null", "null"},
      {"an unknown field",
       R"({"env":"staging","until":")" + later + R"(","reason":"x","by":"me"})"},
      {"a number for env", R"({"env":5,"until":")" + later + R"(","reason":"x"})"},
      {"a number for app", R"({"env":"staging","app":5,"until":")" + later + R"(","reason":"x"})"},
      {"a number for until", R"({"env":"staging","until":1900000000000,"reason":"x"})"},
      {"a number for reason", R"({"env":"staging","until":")" + later + R"(","reason":5})"},
      {"a missing env", R"({"until":")" + later + R"(","reason":"x"})"},
      {"a missing until", R"({"env":"staging","reason":"x"})"},
      {"a missing reason", R"({"env":"staging","until":")" + later + R"("})"},
      {"a bad env", R"({"env":"../etc","until":")" + later + R"(","reason":"x"})"},
      {"a bad app", R"({"env":"staging","app":"a b","until":")" + later + R"(","reason":"x"})"},
      {"a garbage until", R"({"env":"staging","until":"soon","reason":"x"})"},
      {"a duration for until", R"({"env":"staging","until":"2h","reason":"x"})"},
      {"an until without zone", R"({"env":"staging","until":"2099-01-01T00:00:00","reason":"x"})"},
      {"an until in the past", R"({"env":"staging","until":"2020-01-01T00:00:00Z","reason":"x"})"},
      {"an empty reason", R"({"env":"staging","until":")" + later + R"(","reason":""})"},
      {"a newline in the reason",
       R"({"env":"staging","until":")" + later + R"(","reason":"a\nb"})"},
      {"a NUL in the reason", R"({"env":"staging","until":")" + later + R"(","reason":"a\u0000"})"},
      {"an escape in the reason",
       R"({"env":"staging","until":")" + later + R"(","reason":"\u001b[31mred"})"},
      {"a long reason",
       R"({"env":"staging","until":")" + later + R"(","reason":")" + std::string(501, 'x') + "\"}"},
  };
  for (const auto& [what, body] : bodies) {
    expect_error(http("POST", "/api/v1/freezes", body), 400, "freeze with " + what);
  }
  const std::vector<std::pair<std::string, std::string>> lifts = {
      {"malformed JSON", "{"},
      {"neither id nor env", "{}"},
      {"both id and env", R"({"id":1,"env":"staging"})"},
      {"app with id", R"({"id":1,"app":"web"})"},
      {"app without env", R"({"app":"web"})"},
      {"a string id", R"({"id":"1"})"},
      {"a negative id", R"({"id":-1})"},
      {"a bad env", R"({"env":"a/b"})"},
      {"an unknown field", R"({"env":"staging","all":true})"},
  };
  for (const auto& [what, body] : lifts) {
    expect_error(http("POST", "/api/v1/freezes/lift", body), 400, "lift with " + what);
  }
  expect_error(http("POST", "/api/v1/freezes/lift", R"({"id":999})"), 404, "lift of no freeze");
  expect_error(http("POST", "/api/v1/freezes/lift", R"({"env":"staging"})"), 404,
               "lift where nothing is frozen");
  expect_error(http("DELETE", "/api/v1/freezes/abc"), 400, "DELETE of a bad id");
  expect_error(http("DELETE", "/api/v1/freezes/0"), 400, "DELETE of id 0");
  expect_error(http("DELETE", "/api/v1/freezes/999"), 404, "DELETE of no freeze");
  expect_error(http("GET", "/api/v1/freezes/999"), 404, "GET of no freeze");
  expect_error(http("GET", "/api/v1/freezes?all=maybe"), 400, "all=maybe");
  expect_error(http("GET", "/api/v1/freezes?env=..%2Fx"), 400, "a bad env filter");
  expect_error(http("PUT", "/api/v1/freezes"), 405, "PUT on freezes");
  expect_error(http("GET", "/api/v1/freezes", "", {}, ""), 401, "freezes without a token");
  expect_error(http("POST", "/api/v1/freezes", "{}", {}, info().join_token), 403,
               "a freeze with the join token");
  // force is a deploy field: a wrong type is refused, and a rollback does not take it.
  expect_error(http("POST", "/api/v1/deploys", R"({"app":"web","env":"staging","force":"yes"})"),
               400, "force as a string");
  expect_error(http("POST", "/api/v1/rollbacks", R"({"app":"web","env":"staging","force":true})"),
               400, "force on a rollback");
  // Nothing was frozen by any of that.
  EXPECT_TRUE(arr(get_json("/api/v1/freezes?all=1"), "freezes").empty());

  // A good one, then DELETE lifts it, once.
  auto created = http("POST", "/api/v1/freezes",
                      R"({"env":"staging","until":")" + later + R"(","reason":"Noël ☃"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const int64_t id = i64(parse(created.body, "freeze"), "id");
  EXPECT_EQ(str(parse(created.body, "freeze"), "reason"), "Noël ☃");
  auto lifted = http("DELETE", fmt::format("/api/v1/freezes/{}", id));
  ASSERT_EQ(lifted.status, 200) << lifted.body;
  EXPECT_FALSE(boolean(parse(lifted.body, "lifted"), "active"));
  expect_error(http("DELETE", fmt::format("/api/v1/freezes/{}", id)), 412, "a second DELETE");
  expect_alive();
}

TEST_F(ApiTest, BlobsAndRanges) {
  const fs::path file = release("1.0.0");
  auto r = push(file, "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string sha = *sha256_file(file);
  auto full = http("GET", "/api/v1/blobs/" + sha);
  ASSERT_EQ(full.status, 200);
  const std::string& bytes = full.body;
  ASSERT_EQ(sha256_hex(bytes), sha);
  const size_t size = bytes.size();
  ASSERT_GT(size, 100u);
  EXPECT_EQ(full.headers["accept-ranges"], "bytes");

  // A range, an open-ended range and a suffix.
  auto part = http("GET", "/api/v1/blobs/" + sha, "", {{"Range", "bytes=10-19"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, bytes.substr(10, 10));
  EXPECT_EQ(part.headers["content-range"], fmt::format("bytes 10-19/{}", size));
  auto tail =
      http("GET", "/api/v1/blobs/" + sha, "", {{"Range", fmt::format("bytes={}-", size - 7)}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, bytes.substr(size - 7));
  auto suffix = http("GET", "/api/v1/blobs/" + sha, "", {{"Range", "bytes=-5"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, bytes.substr(size - 5));
  auto past = http("GET", "/api/v1/blobs/" + sha, "", {{"Range", "bytes=10-99999999"}});
  EXPECT_EQ(past.status, 206);
  EXPECT_EQ(past.body, bytes.substr(10));
  // The same through the named download route.
  auto named = http("GET", "/api/v1/artifacts/web/1.0.0/download", "", {{"Range", "bytes=0-3"}});
  EXPECT_EQ(named.status, 206);
  EXPECT_EQ(named.body, bytes.substr(0, 4));

  // Impossible ranges.
  for (const std::string& range :
       {fmt::format("bytes={}-", size), fmt::format("bytes={}-{}", size + 10, size + 20),
        std::string("bytes=20-10"), std::string("bytes=-0")}) {
    auto bad = http("GET", "/api/v1/blobs/" + sha, "", {{"Range", range}});
    expect_error(bad, 416, "Range: " + range);
    EXPECT_EQ(bad.headers["content-range"], fmt::format("bytes */{}", size)) << range;
  }

  // Bad digests.
  for (const std::string& d :
       {std::string("xyz"), std::string(64, 'g'), std::string(63, 'a'), std::string(65, 'a'),
        std::string(sha).replace(0, 1, "A"), std::string("..%2F..%2Fslipway.db")}) {
    expect_error(http("GET", "/api/v1/blobs/" + d), 400, "blob " + d);
  }
  expect_error(http("GET", "/api/v1/blobs/" + std::string(64, '0')), 404, "an unknown blob");
  // Agents fetch blobs with their node's credential; a join token only enrolls (403); nobody may
  // without a token.
  const std::string credential(trim(read_file(node_root("node-1") / "agent.credential").value()));
  EXPECT_EQ(http("GET", "/api/v1/blobs/" + sha, "", {}, credential).status, 200);
  expect_error(http("GET", "/api/v1/blobs/" + sha, "", {}, info().join_token), 403,
               "a blob with the join token");
  expect_error(http("GET", "/api/v1/blobs/" + sha, "", {}, ""), 401, "a blob without a token");
  // Unknown artifacts.
  expect_error(http("GET", "/api/v1/artifacts/web/9.9.9"), 404, "an unknown version");
  expect_error(http("GET", "/api/v1/artifacts/web/9.9.9/download"), 404, "an unknown download");
  expect_error(http("GET", "/api/v1/artifacts/nothing"), 404, "an unknown app");
  expect_error(http("GET", "/api/v1/nodes/nobody"), 404, "an unknown node");
  expect_error(http("GET", "/api/v1/deploys/12345"), 404, "an unknown deploy");

  // An upload whose body does not match the digest the client announced.
  auto damaged =
      http("POST", "/api/v1/artifacts/web/1.0.1", std::string(bytes),
           {{"Content-Type", "application/gzip"}, {"X-Slipway-Sha256", std::string(64, 'a')}});
  expect_error(damaged, 400, "a damaged upload");
  // An empty upload.
  expect_error(
      http("POST", "/api/v1/artifacts/web/1.0.2", "", {{"Content-Type", "application/gzip"}}), 400,
      "an empty upload");
  expect_alive();
}

}  // namespace
}  // namespace slipway::e2e
