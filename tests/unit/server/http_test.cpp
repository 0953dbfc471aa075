// The server's HTTP layer without sockets (server/http.h): request targets, the route table,
// Range headers and error responses.
#include "server/http.h"

#include <string>

#include <gtest/gtest.h>

namespace slipway::server {
namespace {

using Query = std::map<std::string, std::string>;

std::pair<std::string, Query> split(std::string_view target) {
  auto r = split_target(target);
  EXPECT_TRUE(r) << target << ": " << (r ? "" : r.error().message);
  return r ? *r : std::pair<std::string, Query>{};
}

std::string split_error(std::string_view target) {
  auto r = split_target(target);
  EXPECT_FALSE(r) << target << " gave path '" << (r ? r->first : "") << "'";
  if (r) return {};
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  return r.error().message;
}

TEST(SplitTarget, PlainPathsAndQueries) {
  EXPECT_EQ(split("/"), (std::pair<std::string, Query>{"/", {}}));
  EXPECT_EQ(split("/api/v1/nodes").first, "/api/v1/nodes");
  auto [path, query] = split("/api/v1/deploys?app=billing&env=production&limit=5");
  EXPECT_EQ(path, "/api/v1/deploys");
  EXPECT_EQ(query, (Query{{"app", "billing"}, {"env", "production"}, {"limit", "5"}}));
}

TEST(SplitTarget, PercentDecoding) {
  EXPECT_EQ(split("/api/v1/apps/my%2Dapp").first, "/api/v1/apps/my-app");
  EXPECT_EQ(split("/a%20b").first, "/a b");
  EXPECT_EQ(split("/caf%C3%A9").first, "/caf\xc3\xa9");
  auto q = split("/x?selector=role%3Dapi%20zone%3Da&msg=caf%C3%A9").second;
  EXPECT_EQ(q.at("selector"), "role=api zone=a");
  EXPECT_EQ(q.at("msg"), "caf\xc3\xa9");
  EXPECT_EQ(split("/x?k%3D=v%26w").second, (Query{{"k=", "v&w"}}));
}

TEST(SplitTarget, QueryParsingEdgeCases) {
  EXPECT_EQ(split("/x?flag").second, (Query{{"flag", ""}}));
  EXPECT_EQ(split("/x?flag=").second, (Query{{"flag", ""}}));
  EXPECT_EQ(split("/x?").second, Query{});
  EXPECT_EQ(split("/x?&&a=1&").second, (Query{{"a", "1"}}));
  EXPECT_EQ(split("/x?=v").second, Query{});           // no key: nothing to look up
  EXPECT_EQ(split("/x?a=1&a=2").second.at("a"), "2");  // the last one wins
  EXPECT_EQ(split("/x?a=1=2").second.at("a"), "1=2");
  EXPECT_EQ(split("/x?a=b+c").second.at("a"), "b c");  // form encoding: '+' is a space
  EXPECT_EQ(split("/x?a=b%2Bc").second.at("a"), "b+c");
  // Too many parameters.
  std::string many = "/x?";
  for (int i = 0; i < 100; ++i)
    many += "k" + std::to_string(i) + "=v&";
  EXPECT_NE(split_error(many).find("too many query parameters"), std::string::npos);
}

TEST(SplitTarget, EmptySegmentsAreKept) {
  // The router skips them; the path keeps what was sent.
  EXPECT_EQ(split("/api//v1/").first, "/api//v1/");
}

TEST(SplitTarget, OverLongTargetsAreRefused) {
  const std::string ok = "/" + std::string(8191, 'a');
  EXPECT_EQ(split(ok).first, ok);
  EXPECT_NE(split_error("/" + std::string(8192, 'a')).find("too long"), std::string::npos);
  split_error("/x?q=" + std::string(1 << 20, 'a'));
}

TEST(SplitTarget, NulBytesAreRefused) {
  EXPECT_NE(split_error("/api/v1/apps/bill%00ing").find("forbidden character"), std::string::npos);
  split_error("/x?app=bill%00ing");
  split_error("/x?ap%00p=billing");
  split_error(std::string_view("/api/v1/apps/bill\0ing", 21));
}

TEST(SplitTarget, EncodedSlashesAreRefused) {
  // An app named "a/b" would otherwise pass for two path segments after routing.
  split_error("/api/v1/apps/a%2Fb/versions");
  split_error("/api/v1/apps/a%2fb");
}

TEST(SplitTarget, MalformedTargetsAreRefused) {
  EXPECT_NE(split_error("/bad%zzescape").find("malformed"), std::string::npos);
  split_error("/bad%");
  split_error("/bad%4");
  split_error("/x?a=%g1");
  split_error("");
  split_error("api/v1/nodes");  // not origin-form
  split_error("http://example.com/x");
  split_error("*");
  split_error("/a b");
  split_error("/a\nb");
  split_error("/a\"b");
  split_error("/a#fragment");
}

// A route table like the server's.
class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto [method, pattern] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/api/v1/apps/{app}/versions"},
             {"GET", "/api/v1/apps/{app}/versions/{version}"},
             {"POST", "/api/v1/apps/{app}/versions/{version}"},
             {"GET", "/api/v1/nodes"},
             {"POST", "/api/v1/deploys"},
             {"GET", "/api/v1/deploys/{id}"},
             {"DELETE", "/api/v1/deploys/{id}"},
             {"GET", "/healthz"}}) {
      const std::string name = method + " " + pattern;
      router_.add(method, pattern, Access::admin, "test",
                  [name](Request&) -> boost::asio::awaitable<Response> {
                    Response r;
                    r.body = name;
                    co_return r;
                  });
    }
  }

  // The pattern of the matched route ("" when none), with its params.
  std::string match(const std::string& method, const std::string& path, bool* exists = nullptr,
                    std::map<std::string, std::string>* params = nullptr) {
    std::map<std::string, std::string> p;
    bool path_exists = false;
    const Route* r = router_.match(method, path, p, path_exists);
    if (exists) *exists = path_exists;
    if (params) *params = p;
    if (!r) return {};
    std::string out = r->method;
    for (const auto& s : r->segments)
      out += "/" + s;
    return out;
  }

  Router router_;
};

TEST_F(RouterTest, MatchesLiteralPaths) {
  EXPECT_EQ(match("GET", "/api/v1/nodes"), "GET/api/v1/nodes");
  EXPECT_EQ(match("GET", "/healthz"), "GET/healthz");
  EXPECT_EQ(match("POST", "/api/v1/deploys"), "POST/api/v1/deploys");
  // Empty segments and a trailing slash do not matter.
  EXPECT_EQ(match("GET", "/api/v1/nodes/"), "GET/api/v1/nodes");
  EXPECT_EQ(match("GET", "//api//v1/nodes"), "GET/api/v1/nodes");
}

TEST_F(RouterTest, CapturesParams) {
  std::map<std::string, std::string> params;
  EXPECT_EQ(match("GET", "/api/v1/apps/billing/versions/1.2.0", nullptr, &params),
            "GET/api/v1/apps/{app}/versions/{version}");
  EXPECT_EQ(params, (std::map<std::string, std::string>{{"app", "billing"}, {"version", "1.2.0"}}));
  EXPECT_EQ(match("GET", "/api/v1/apps/search/versions", nullptr, &params),
            "GET/api/v1/apps/{app}/versions");
  EXPECT_EQ(params, (std::map<std::string, std::string>{{"app", "search"}}));
  EXPECT_EQ(match("DELETE", "/api/v1/deploys/42", nullptr, &params), "DELETE/api/v1/deploys/{id}");
  EXPECT_EQ(params.at("id"), "42");
}

TEST_F(RouterTest, NotFoundVersusMethodNotAllowed) {
  bool exists = true;
  EXPECT_EQ(match("GET", "/api/v1/nothing", &exists), "");
  EXPECT_FALSE(exists);  // 404
  EXPECT_EQ(match("GET", "/api/v1/nodes/extra", &exists), "");
  EXPECT_FALSE(exists);
  EXPECT_EQ(match("GET", "/api/v1", &exists), "");
  EXPECT_FALSE(exists);
  EXPECT_EQ(match("GET", "/", &exists), "");
  EXPECT_FALSE(exists);

  EXPECT_EQ(match("DELETE", "/api/v1/nodes", &exists), "");
  EXPECT_TRUE(exists);  // 405
  EXPECT_EQ(match("GET", "/api/v1/deploys", &exists), "");
  EXPECT_TRUE(exists);
  EXPECT_EQ(match("PUT", "/api/v1/apps/billing/versions/1.0.0", &exists), "");
  EXPECT_TRUE(exists);
  EXPECT_EQ(match("get", "/api/v1/nodes", &exists), "");  // methods are case-sensitive
  EXPECT_TRUE(exists);
}

TEST_F(RouterTest, HeadMatchesGet) {
  bool exists = false;
  EXPECT_EQ(match("HEAD", "/api/v1/nodes", &exists), "GET/api/v1/nodes");
  EXPECT_EQ(match("HEAD", "/api/v1/deploys/7"), "GET/api/v1/deploys/{id}");
  // ... but not POST.
  EXPECT_EQ(match("HEAD", "/api/v1/deploys", &exists), "");
  EXPECT_TRUE(exists);
}

TEST_F(RouterTest, TheSamePathRoutesByMethod) {
  EXPECT_EQ(match("GET", "/api/v1/apps/a/versions/1"), "GET/api/v1/apps/{app}/versions/{version}");
  EXPECT_EQ(match("POST", "/api/v1/apps/a/versions/1"),
            "POST/api/v1/apps/{app}/versions/{version}");
}

TEST_F(RouterTest, AnEmptyRouterMatchesNothing) {
  Router empty;
  std::map<std::string, std::string> p;
  bool exists = true;
  EXPECT_EQ(empty.match("GET", "/", p, exists), nullptr);
  EXPECT_FALSE(exists);
}

TEST(Request, QueryAndParamAccessors) {
  Request r;
  r.query = {{"env", "staging"}};
  r.params = {{"app", "billing"}};
  EXPECT_EQ(r.query_or("env"), "staging");
  EXPECT_EQ(r.query_or("app", "dflt"), "dflt");
  EXPECT_EQ(r.query_or("app"), "");
  EXPECT_EQ(r.param("app"), "billing");
  EXPECT_EQ(r.param("version"), "");
}

TEST(Response, ErrorsBecomeJsonWithTheirStatus) {
  const auto r = Response::error(err(Errc::not_found, "no app 'billing'"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  auto v = parse_json(r.body, "body");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(v->at("error").at("message").as_string(), "no app 'billing'");
  EXPECT_EQ(Response::error(err(Errc::conflict, "x")).status, 409);
  EXPECT_EQ(Response::error(err(Errc::unauthenticated, "x")).status, 401);
  const auto ok = Response::json(201, json::object{{"id", 3}});
  EXPECT_EQ(ok.status, 201);
  EXPECT_EQ(ok.body, "{\"id\":3}\n");
}

// Range headers.

struct Range {
  bool handled = false;
  bool unsatisfiable = false;
  uint64_t start = 0;
  uint64_t end = 0;
};

Range range(std::string_view header, uint64_t size) {
  Range r;
  r.start = 777;  // to see that nothing is written when it should not be
  r.end = 888;
  r.handled = parse_range(header, size, r.start, r.end, r.unsatisfiable);
  return r;
}

void expect_range(std::string_view header, uint64_t size, uint64_t start, uint64_t end) {
  const auto r = range(header, size);
  EXPECT_TRUE(r.handled) << header;
  EXPECT_FALSE(r.unsatisfiable) << header;
  EXPECT_EQ(r.start, start) << header;
  EXPECT_EQ(r.end, end) << header;
}

void expect_ignored(std::string_view header, uint64_t size) {
  const auto r = range(header, size);
  EXPECT_FALSE(r.handled) << header;
  EXPECT_FALSE(r.unsatisfiable) << header;
  EXPECT_EQ(r.start, 777u) << header;  // untouched
  EXPECT_EQ(r.end, 888u) << header;
}

void expect_unsatisfiable(std::string_view header, uint64_t size) {
  const auto r = range(header, size);
  EXPECT_TRUE(r.handled) << header;
  EXPECT_TRUE(r.unsatisfiable) << header;
  EXPECT_EQ(r.start, 777u) << header;
  EXPECT_EQ(r.end, 888u) << header;
}

TEST(ParseRange, FromAnOffsetToTheEnd) {
  expect_range("bytes=0-", 100, 0, 99);
  expect_range("bytes=40-", 100, 40, 99);
  expect_range("bytes=99-", 100, 99, 99);
}

TEST(ParseRange, ClosedRanges) {
  expect_range("bytes=5-9", 100, 5, 9);
  expect_range("bytes=0-0", 100, 0, 0);
  expect_range("bytes=0-99", 100, 0, 99);
  // An end past the last byte is clamped.
  expect_range("bytes=90-1000", 100, 90, 99);
  expect_range("bytes=0-18446744073709551615", 100, 0, 99);
}

TEST(ParseRange, Suffixes) {
  expect_range("bytes=-5", 100, 95, 99);
  expect_range("bytes=-100", 100, 0, 99);
  expect_range("bytes=-1000", 100, 0, 99);  // more than there is: all of it
  expect_range("bytes=-1", 1, 0, 0);
}

TEST(ParseRange, Unsatisfiable) {
  expect_unsatisfiable("bytes=100-", 100);  // starts at the end
  expect_unsatisfiable("bytes=500-600", 100);
  expect_unsatisfiable("bytes=9-5", 100);  // ends before it starts
  expect_unsatisfiable("bytes=-0", 100);   // an empty suffix
}

TEST(ParseRange, EmptyRepresentation) {
  expect_unsatisfiable("bytes=0-", 0);
  expect_unsatisfiable("bytes=0-0", 0);
  expect_unsatisfiable("bytes=-5", 0);
}

TEST(ParseRange, SeveralRangesAreIgnored) {
  expect_ignored("bytes=0-1,5-9", 100);
  expect_ignored("bytes=0-1, 5-9", 100);
  expect_ignored("bytes=-5,0-", 100);
  expect_ignored("bytes=0-1,", 100);
}

TEST(ParseRange, GarbageIsIgnored) {
  for (const char* h : {"",
                        "bytes",
                        "bytes=",
                        "bytes=-",
                        "bytes=abc",
                        "bytes=5",
                        "bytes=a-9",
                        "bytes=5-x",
                        "bytes=5x-9",
                        "bytes=5-9x",
                        "bytes=5--9",
                        "bytes=-5-",
                        "bytes=-x",
                        "bytes= 5-9",
                        "bytes=5 -9",
                        "bytes=+5-9",
                        "bytes=5-+9",
                        "bytes=0x10-",
                        "items=0-5",
                        "bytes:0-5",
                        "0-5",
                        "bytes=99999999999999999999999-",
                        "bytes=-99999999999999999999999"}) {
    expect_ignored(h, 100);
  }
}

TEST(PathId, PositiveNumbersOnly) {
  EXPECT_EQ(parse_path_id("42", "deploy").value(), 42);
  EXPECT_EQ(parse_path_id("9223372036854775807", "freeze").value(), INT64_MAX);
  for (const char* bad : {"", "0", "-1", "+1", "1x", " 1", "abc", "9223372036854775808"}) {
    auto r = parse_path_id(bad, "freeze");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("is not a freeze id"), std::string::npos);
  }
}

}  // namespace
}  // namespace slipway::server
