// The web console's static files (server/console.h) and the browser's WebSocket token
// (bearer_from_ws_protocols): what is served, with which headers, and that nothing outside the
// console directory ever is.
#include "server/console.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace slipway::server {
namespace {

namespace fs = std::filesystem;
using slipway::testing::TempDir;
using slipway::testing::WriteAll;
using ::testing::HasSubstr;

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = t_.path() / "console";
    fs::create_directories(root_ / "assets");
    WriteAll(root_ / "index.html", "<!doctype html><title>Slipway</title>");
    WriteAll(root_ / "assets" / "index-3f2a.js", "console.log(1)");
    WriteAll(root_ / "assets" / "index-77.css", "body{}");
    WriteAll(root_ / "favicon.svg", "<svg/>");
    WriteAll(root_ / ".hidden", "secret");
    WriteAll(t_.path() / "outside.txt", "outside the console");
    fs::create_symlink(t_.path() / "outside.txt", root_ / "assets" / "escape.js");
  }
  Response Get(std::string_view path) { return serve_console(root_, path); }

  TempDir t_;
  fs::path root_;
};

TEST_F(ConsoleTest, TheRootIsTheIndexPageWithItsSecurityHeaders) {
  for (auto path : {"/", "/index.html"}) {
    auto r = Get(path);
    EXPECT_EQ(r.status, 200) << path;
    ASSERT_TRUE(r.file) << path;
    EXPECT_EQ(r.file->path, fs::canonical(root_ / "index.html").string());
    EXPECT_EQ(r.file->length, fs::file_size(root_ / "index.html"));
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(r.headers["Cache-Control"], "no-cache");
    EXPECT_THAT(r.headers["Content-Security-Policy"], HasSubstr("default-src 'self'"));
    EXPECT_THAT(r.headers["Content-Security-Policy"], HasSubstr("frame-ancestors 'none'"));
    EXPECT_EQ(r.headers["X-Frame-Options"], "DENY");
    EXPECT_EQ(r.headers["X-Content-Type-Options"], "nosniff");
  }
}

TEST_F(ConsoleTest, AssetsHaveTheirTypesAndAreCachedForAYear) {
  auto js = Get("/assets/index-3f2a.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(js.headers["Cache-Control"], "public, max-age=31536000, immutable");
  EXPECT_EQ(Get("/assets/index-77.css").content_type, "text/css; charset=utf-8");
  auto svg = Get("/favicon.svg");
  EXPECT_EQ(svg.content_type, "image/svg+xml");
  EXPECT_EQ(svg.headers["Cache-Control"], "no-cache");
}

TEST_F(ConsoleTest, NothingOutsideTheDirectoryNorHiddenNorMissingIsServed) {
  for (auto path : {"/../outside.txt", "/assets/../../outside.txt", "/assets/escape.js", "/.hidden",
                    "/assets/./index-3f2a.js", "//etc/passwd", "/assets//index-3f2a.js", "/assets",
                    "/missing.js", "/assets/missing.js", "/a b.js", "/index.html\\..", "relative",
                    "/assets/%2e%2e/x", "/\xc3\xa9.js"}) {
    auto r = Get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_FALSE(r.file) << path;
  }
  EXPECT_EQ(Get("/" + std::string(600, 'a')).status, 404);
}

TEST_F(ConsoleTest, WithoutABuiltConsoleTheRootSaysHowToBuildIt) {
  auto r = serve_console(t_.path() / "nowhere", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(r.file);
  EXPECT_THAT(r.body, HasSubstr("./run.sh build"));
  EXPECT_THAT(r.body, HasSubstr("--console-dir"));
  EXPECT_THAT(serve_console({}, "/").body, HasSubstr("not installed"));
  EXPECT_EQ(serve_console({}, "/assets/x.js").status, 404);
}

TEST(WsProtocols, TheBearerSubprotocolGivesTheToken) {
  EXPECT_EQ(bearer_from_ws_protocols("slipway, bearer.slwt_abc"), "Bearer slwt_abc");
  EXPECT_EQ(bearer_from_ws_protocols("bearer.slwt_abc,slipway"), "Bearer slwt_abc");
  EXPECT_EQ(bearer_from_ws_protocols("slipway"), "");
  EXPECT_EQ(bearer_from_ws_protocols(""), "");
  EXPECT_EQ(bearer_from_ws_protocols("bearer."), "");
  EXPECT_EQ(bearer_from_ws_protocols("xbearer.t"), "");
  EXPECT_TRUE(offers_ws_protocol("chat, slipway", "slipway"));
  EXPECT_TRUE(offers_ws_protocol("slipway", "slipway"));
  EXPECT_FALSE(offers_ws_protocol("slipwayx, bearer.slipway", "slipway"));
  EXPECT_FALSE(offers_ws_protocol("", "slipway"));
}

}  // namespace
}  // namespace slipway::server
