// What the web console needs from the server, through the real binary: its files served at / (and
// nothing outside them), who the token is, a deploy's preview, what changed between releases, the
// delivery metrics, a node's history, and the live watch with the token as a WebSocket
// subprotocol (as a browser sends it).
#include <set>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/fs.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::Not;

class ConsoleApiTest : public E2eTest {
 protected:
  std::string token(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"token", "create"};
    all.insert(all.end(), args.begin(), args.end());
    return str(cli_json(all), "token");
  }
  json::value post_json(const std::string& target, const std::string& body, int want = 200,
                        std::optional<std::string> tok = std::nullopt) {
    auto r = http("POST", target, body, {}, tok);
    EXPECT_EQ(r.status, want) << target << " " << body << ": " << r.body;
    return parse(r.body, target);
  }
  static std::vector<std::string> paths(const json::value& v, std::string_view key) {
    std::vector<std::string> out;
    for (const auto& e : arr(v, key))
      out.push_back(str(e, "path"));
    return out;
  }
};

TEST_F(ConsoleApiTest, ServesTheConsoleFilesAndNothingOutsideThem) {
  const fs::path console = dir() / "console";
  fs::create_directories(console / "assets");
  ASSERT_TRUE(write_file_atomic(console / "index.html", "<!doctype html><p>Slipway console</p>"));
  ASSERT_TRUE(write_file_atomic(console / "assets" / "app-1a2b.js", "console.log('ok')"));
  ASSERT_TRUE(write_file_atomic(dir() / "secret.txt", "TOP-SECRET"));
  fs::create_symlink(dir() / "secret.txt", console / "assets" / "link.js");
  server_args_ = {"--console-dir", console.string()};
  ASSERT_NO_THROW(start_lab(1));

  auto index = http("GET", "/", "", {}, "");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<!doctype html><p>Slipway console</p>");
  EXPECT_EQ(index.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_THAT(index.headers["content-security-policy"], HasSubstr("default-src 'self'"));
  EXPECT_EQ(index.headers["x-frame-options"], "DENY");
  auto js = http("GET", "/assets/app-1a2b.js", "", {}, "");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.body, "console.log('ok')");
  EXPECT_EQ(js.headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_THAT(js.headers["cache-control"], HasSubstr("immutable"));
  auto head = http("HEAD", "/", "", {}, "");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());

  // Raw requests, so that nothing normalizes the paths on the way.
  const auto url = boost::urls::parse_uri(info().server_url);
  ASSERT_TRUE(url);
  const std::string host(url->host());
  const std::string port(url->port());
  for (const std::string target :
       {"/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt", "/assets/link.js", "/..%2fsecret.txt",
        "/%2fetc%2fpasswd", "//etc/passwd", "/assets/./app-1a2b.js", "/nothing.js",
        "/assets/app-1a2b.js%00.html"}) {
    const std::string answer = raw_exchange(
        host, port, fmt::format("GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target));
    EXPECT_THAT(answer, HasSubstr("HTTP/1.1 4")) << target << ": " << answer;
    EXPECT_THAT(answer, Not(HasSubstr("TOP-SECRET"))) << target;
    EXPECT_THAT(answer, Not(HasSubstr("root:"))) << target;
  }
  // The API keeps its own answers: JSON errors, and its tokens.
  auto nope = http("GET", "/api/v1/nope", "", {}, "");
  EXPECT_EQ(nope.status, 404);
  EXPECT_EQ(nope.headers["content-type"], "application/json");
  EXPECT_EQ(http("GET", "/api/v1/nodes", "", {}, "").status, 401);
  EXPECT_EQ(http("POST", "/", "{}", {}, "").status, 404);
}

TEST_F(ConsoleApiTest, WithoutAConsoleTheRootSaysHowToGetOne) {
  server_args_ = {"--console-dir", (dir() / "no-console").string()};
  ASSERT_NO_THROW(start_lab(1));
  auto r = http("GET", "/", "", {}, "");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("not installed"));
  EXPECT_THAT(r.body, HasSubstr("--console-dir"));
}

TEST_F(ConsoleApiTest, WhoAmISaysTheRoleAndScope) {
  ASSERT_NO_THROW(start_lab(1));
  auto admin = get_json("/api/v1/whoami");
  EXPECT_EQ(str(admin, "role"), "admin");
  EXPECT_TRUE(boolean(admin, "root"));
  const std::string viewer = token({"--role", "viewer", "--env", "staging", "--name", "eyes"});
  auto r = http("GET", "/api/v1/whoami", "", {}, viewer);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = parse(r.body, "whoami");
  EXPECT_EQ(str(v, "role"), "viewer");
  EXPECT_EQ(str(v, "name"), "eyes");
  EXPECT_EQ(to_json(obj(v).at("envs")), R"(["staging"])");
  EXPECT_FALSE(boolean(v, "root"));
  EXPECT_EQ(http("GET", "/api/v1/whoami", "", {}, "").status, 401);
  EXPECT_EQ(http("GET", "/api/v1/whoami", "", {}, "slwt_" + std::string(64, '0')).status, 401);
  EXPECT_EQ(http("GET", "/api/v1/whoami", "", {}, info().join_token).status, 403);
}

TEST_F(ConsoleApiTest, PreviewCountsTheNodesAndStartsNothing) {
  ASSERT_NO_THROW(start_lab(3));
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  auto p = post_json("/api/v1/deploys/preview",
                     R"({"app":"web","version":"1.0.0","env":"staging","batch":"2"})");
  EXPECT_EQ(i64(p, "count"), 3) << to_json(p);
  EXPECT_EQ(i64(p, "batches"), 2);
  EXPECT_EQ(str(p, "version"), "1.0.0");
  EXPECT_TRUE(obj(p).at("blocked").is_null());
  EXPECT_THAT(str(p, "how"), HasSubstr("2 at a time"));
  std::vector<std::string> names;
  for (const auto& n : arr(p, "nodes")) {
    names.push_back(str(n, "name"));
    EXPECT_EQ(to_json(obj(n).at("roles")), R"(["api"])");
    EXPECT_EQ(str(n, "from_version"), "");
  }
  EXPECT_EQ(names, (std::vector<std::string>{"node-1", "node-2", "node-3"}));
  // Nothing started.
  EXPECT_TRUE(arr(get_json("/api/v1/deploys"), "deploys").empty());
  EXPECT_TRUE(obj(status_by_node()["node-1"]).at("apps").as_object().empty());

  // The CLI asks the same with --dry-run.
  auto dry = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "2", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.describe();
  EXPECT_THAT(dry.out, HasSubstr("would deploy web 1.0.0 in staging: 3 node(s), 2 at a time"));
  EXPECT_THAT(dry.out, HasSubstr("batch 1: node-1 (new), node-2 (new)"));
  EXPECT_THAT(dry.out, HasSubstr("batch 2: node-3 (new)"));
  EXPECT_THAT(dry.out, HasSubstr("nothing was started"));
  EXPECT_TRUE(arr(get_json("/api/v1/deploys"), "deploys").empty());

  // A selector matching one node; the newest version by default.
  auto one = post_json("/api/v1/deploys/preview",
                       R"({"app":"web","env":"staging","selector":"name=node-2"})");
  EXPECT_EQ(i64(one, "count"), 1) << to_json(one);
  // Refusals are "blocked" with the reason, not errors: no node, a freeze (unless forced).
  auto none = post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging","role":"db"})");
  EXPECT_EQ(i64(none, "count"), 0);
  EXPECT_THAT(str(none, "blocked"), HasSubstr("no alive node matches"));
  ASSERT_EQ(cli({"freeze", "--env", "staging", "--until", "2h", "--reason", "Audit"}).exit_code, 0);
  auto frozen = post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging"})");
  EXPECT_THAT(str(frozen, "blocked"), HasSubstr("Audit"));
  EXPECT_EQ(i64(frozen, "count"), 3);
  auto dry_frozen = cli({"deploy", "web", "--env", "staging", "--dry-run"});
  EXPECT_EQ(dry_frozen.exit_code, 2) << dry_frozen.describe();
  EXPECT_THAT(dry_frozen.err, HasSubstr("it would be refused"));
  EXPECT_THAT(dry_frozen.err, HasSubstr("Audit"));
  auto forced =
      post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging","force":true})");
  EXPECT_TRUE(obj(forced).at("blocked").is_null()) << to_json(forced);
  EXPECT_THAT(str(forced, "forced_freeze"), HasSubstr("Audit"));
  // Bad requests are errors, as for the deploy itself.
  post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging","colour":"red"})", 400);
  post_json("/api/v1/deploys/preview", R"({"app":"web","version":"9.9.9","env":"staging"})", 404);
  post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging")", 400);
  post_json("/api/v1/deploys/preview", R"({"app":"../x","env":"staging"})", 400);
  // A viewer may not ask.
  const std::string viewer = token({"--role", "viewer"});
  post_json("/api/v1/deploys/preview", R"({"app":"web","env":"staging"})", 403, viewer);
  // Rollback preview: nothing earlier to go back to.
  auto rb = post_json("/api/v1/rollbacks/preview", R"({"app":"web","env":"staging"})");
  EXPECT_EQ(i64(rb, "count"), 0);
  EXPECT_THAT(str(rb, "blocked"), HasSubstr("no earlier successful release"));
}

TEST_F(ConsoleApiTest, DiffBetweenReleasesNodeHistoryMetricsAndTheBrowsersWatch) {
  ASSERT_NO_THROW(start_lab(2));
  ReleaseOptions one;
  one.extra_files = {{"old.txt", "going away"}};
  ReleaseOptions two;
  two.extra_files = {{"new.txt", "arriving"}};
  ASSERT_EQ(push(release("1.0.0", one), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(push(release("2.0.0", two), "web", "2.0.0").exit_code, 0);

  auto d = get_json("/api/v1/artifacts/web/2.0.0/diff");
  EXPECT_EQ(str(d, "from"), "1.0.0") << to_json(d);
  EXPECT_EQ(paths(d, "added"), (std::vector<std::string>{"new.txt"}));
  EXPECT_EQ(paths(d, "removed"), (std::vector<std::string>{"old.txt"}));
  const auto changed = paths(d, "changed");
  const std::set<std::string> changed_set(changed.begin(), changed.end());
  for (const std::string p : {"VERSION", "CHANGELOG", "config/app.conf"})
    EXPECT_TRUE(changed_set.contains(p)) << p << " in " << to_json(d);
  EXPECT_FALSE(changed_set.contains("bin/server")) << to_json(d);
  EXPECT_GE(i64(d, "unchanged"), 3);  // bin, bin/server, config
  auto back = get_json("/api/v1/artifacts/web/1.0.0/diff?from=2.0.0");
  EXPECT_EQ(paths(back, "added"), (std::vector<std::string>{"old.txt"}));
  auto first = get_json("/api/v1/artifacts/web/1.0.0/diff");
  EXPECT_TRUE(obj(first).at("from").is_null());
  EXPECT_EQ(arr(first, "removed").size(), 0u);
  EXPECT_GE(arr(first, "added").size(), 6u);
  EXPECT_EQ(http("GET", "/api/v1/artifacts/web/3.0.0/diff").status, 404);
  EXPECT_EQ(http("GET", "/api/v1/artifacts/web/2.0.0/diff?from=0.1").status, 404);
  EXPECT_EQ(http("GET", "/api/v1/artifacts/web/2.0.0/diff?from=..%2fx").status, 400);

  // A good deploy, then one whose health check fails and rolls back.
  ASSERT_EQ(cli({"deploy", "web", "1.0.0", "--env", "staging"}).exit_code, 0);
  ReleaseOptions bad;
  bad.healthy = false;
  bad.health_timeout = Millis(2'000);
  ASSERT_EQ(push(release("3.0.0", bad), "web", "3.0.0").exit_code, 0);
  auto r = cli({"deploy", "web", "3.0.0", "--env", "staging"});
  ASSERT_NE(r.exit_code, 0) << r.describe();
  const int64_t failed_id = i64(latest_deploy(), "id");
  EXPECT_EQ(str(wait_deploy_finished(failed_id), "state"), "rolled_back");

  auto m = get_json("/api/v1/metrics/delivery?app=web&env=staging&days=7");
  const auto& s = obj(m).at("summary");
  EXPECT_EQ(i64(s, "deploys"), 1) << to_json(m);
  EXPECT_EQ(i64(s, "failures"), 1);
  EXPECT_DOUBLE_EQ(s.at("change_failure_rate").to_number<double>(), 0.5);
  EXPECT_TRUE(s.at("lead_time_seconds_median").is_number());
  EXPECT_TRUE(s.at("time_to_restore_seconds_median").is_number());
  ASSERT_EQ(arr(m, "series").size(), 7u);
  EXPECT_EQ(i64(arr(m, "series").back(), "deploys"), 1);
  EXPECT_EQ(i64(arr(m, "series").back(), "failures"), 1);
  auto other = get_json("/api/v1/metrics/delivery?app=api");
  EXPECT_EQ(i64(obj(other).at("summary"), "deploys"), 0);
  for (const std::string q : {"days=0", "days=367", "days=x", "days=1.5", "app=..", "env=%20"}) {
    EXPECT_EQ(http("GET", "/api/v1/metrics/delivery?" + q).status, 400) << q;
  }
  const std::string prod_viewer = token({"--role", "viewer", "--env", "production"});
  EXPECT_EQ(http("GET", "/api/v1/metrics/delivery?env=staging", "", {}, prod_viewer).status, 403);
  auto unscoped = http("GET", "/api/v1/metrics/delivery", "", {}, prod_viewer);
  ASSERT_EQ(unscoped.status, 200) << unscoped.body;
  EXPECT_EQ(i64(obj(parse(unscoped.body, "metrics")).at("summary"), "deploys"), 0);

  // A node's history.
  EXPECT_EQ(arr(get_json("/api/v1/deploys?node=node-1"), "deploys").size(), 2u);
  EXPECT_EQ(arr(get_json("/api/v1/deploys?node=node-9"), "deploys").size(), 0u);
  EXPECT_EQ(http("GET", "/api/v1/deploys?node=..%2f").status, 400);

  // The watch, authenticated the way a browser can: the token as a subprotocol.
  const auto url = boost::urls::parse_uri(info().server_url);
  ASSERT_TRUE(url);
  const std::string host(url->host());
  const std::string port(url->port());
  const std::string target = fmt::format("/api/v1/deploys/{}/watch", failed_id);
  const auto watch = [&](const std::string& protocols, std::string& chosen) -> std::string {
    asio::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    tcp::resolver resolver(ioc);
    asio::connect(ws.next_layer(), resolver.resolve(host, port));
    timeval tv{10, 0};
    ::setsockopt(ws.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws.set_option(websocket::stream_base::decorator([protocols](websocket::request_type& req) {
      if (!protocols.empty()) req.set(beast::http::field::sec_websocket_protocol, protocols);
    }));
    websocket::response_type res;
    beast::error_code ec;
    ws.handshake(res, host + ":" + port, target, ec);
    if (ec) return "refused: " + std::to_string(res.result_int());
    chosen = std::string(res[beast::http::field::sec_websocket_protocol]);
    beast::flat_buffer buf;
    ws.read(buf, ec);
    if (ec) return "read: " + ec.message();
    return beast::buffers_to_string(buf.data());
  };
  std::string chosen;
  const std::string events = watch("slipway, bearer." + prod_viewer, chosen);
  EXPECT_EQ(events, "refused: 403");
  const std::string staging_viewer = token({"--role", "viewer", "--env", "staging"});
  const std::string got = watch("slipway, bearer." + staging_viewer, chosen);
  EXPECT_EQ(chosen, "slipway");
  EXPECT_THAT(got, HasSubstr("deploy.finished")) << got;
  EXPECT_THAT(got, HasSubstr("rolled_back"));
  EXPECT_EQ(watch("slipway", chosen), "refused: 401");
  EXPECT_EQ(watch("slipway, bearer.slwt_nothing", chosen), "refused: 401");
}

}  // namespace
}  // namespace slipway::e2e
