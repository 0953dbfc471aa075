// The blocking HTTP client (net/http_client.h): URL parsing, and real exchanges with a small HTTP
// server that the test runs on a loopback socket (so that it controls every byte it answers).
#include "net/http_client.h"

#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/fs.h"
#include "support/temp_dir.h"

namespace slipway::net {
namespace {

// ---------------------------------------------------------------------------------------------
// parse_url

Url url(std::string_view text) {
  auto u = parse_url(text);
  EXPECT_TRUE(u) << text << ": " << (u ? "" : u.error().message);
  return u ? *u : Url{};
}

std::string url_error(std::string_view text) {
  auto u = parse_url(text);
  EXPECT_FALSE(u) << text << " parsed, host '" << (u ? u->host : "") << "'";
  if (u) return {};
  EXPECT_EQ(u.error().code, Errc::invalid_argument);
  return u.error().message;
}

TEST(ParseUrl, HostPortAndTarget) {
  const auto u = url("http://127.0.0.1:8080/api/v1/nodes");
  EXPECT_EQ(u.scheme, "http");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, "8080");
  EXPECT_EQ(u.target, "/api/v1/nodes");
  const auto named = url("http://slipway.internal/x");
  EXPECT_EQ(named.host, "slipway.internal");
  EXPECT_EQ(named.port, "80");
}

TEST(ParseUrl, DefaultsForPortAndTarget) {
  EXPECT_EQ(url("http://example.com").port, "80");
  EXPECT_EQ(url("http://example.com").target, "/");
  EXPECT_EQ(url("http://example.com:9000").target, "/");
  EXPECT_EQ(url("http://example.com:/x").port, "80");  // an empty port is the default
  EXPECT_EQ(url("HTTP://Example.com/").scheme, "http");
}

TEST(ParseUrl, TargetKeepsTheQueryButNotTheFragment) {
  EXPECT_EQ(url("http://h:1/api/v1/deploys?app=billing&env=prod").target,
            "/api/v1/deploys?app=billing&env=prod");
  EXPECT_EQ(url("http://h?x=1").target, "/?x=1");
  EXPECT_EQ(url("http://h/a%20b?q=%2F").target, "/a%20b?q=%2F");  // stays encoded
  EXPECT_EQ(url("http://h/health#top").target, "/health");
  EXPECT_EQ(url("http://h/health?x=1#top").target, "/health?x=1");
}

TEST(ParseUrl, Ports) {
  EXPECT_EQ(url("http://h:1/").port, "1");
  EXPECT_EQ(url("http://h:65535/").port, "65535");
  url_error("http://h:0/");
  url_error("http://h:65536/");
  url_error("http://h:99999999999/");
  url_error("http://h:http/");
  url_error("http://h:-1/");
}

TEST(ParseUrl, Ipv6Literals) {
  const auto u = url("http://[::1]:9000/health");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "9000");
  EXPECT_EQ(u.target, "/health");
  EXPECT_EQ(url("http://[fe80::1]/").port, "80");
  EXPECT_EQ(url("http://[2001:db8::7]:81").host, "2001:db8::7");
  url_error("http://[::1/");
  url_error("http://::1:80/");
}

TEST(ParseUrl, MissingHost) {
  EXPECT_NE(url_error("http:///path").find("no host"), std::string::npos);
  url_error("http://");
  url_error("http://:8080/");
}

TEST(ParseUrl, OnlyHttpAndHttps) {
  auto u = url("HTTPS://example.com/x");
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(url("https://example.com:8443/").port, "8443");
  EXPECT_EQ(url("http://example.com/").port, "80");
  EXPECT_NE(url_error("ftp://example.com/").find("only http:// and https://"), std::string::npos);
  url_error("wss://example.com/");
  url_error("ws://example.com/");
  url_error("file:///etc/passwd");
  url_error("mailto:x@example.com");
}

TEST(ParseUrl, NotAUrl) {
  url_error("");
  url_error("example.com:8080");
  url_error("/api/v1/nodes");
  url_error("http://exa mple.com/");
  url_error("http://h/a b");
  EXPECT_LT(url_error("http://h/" + std::string(100'000, ' ')).size(), 400u);
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server on 127.0.0.1, one connection at a time, on its own thread. Each
// request gets the response the handler returns (raw bytes), then the connection is closed.

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class TestServer {
 public:
  using Handler = std::function<std::string(const SeenRequest&)>;

  // On 127.0.0.1, or on [::1] with `ipv6` (throws when the host has no IPv6 loopback).
  explicit TestServer(Handler h, bool ipv6 = false) : handler_(std::move(h)), ipv6_(ipv6) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (ipv6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind/listen");
    }
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(fd_);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::string url(const std::string& path) const {
    return std::string(ipv6_ ? "http://[::1]:" : "http://127.0.0.1:") + std::to_string(port_) +
           path;
  }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }
  SeenRequest last() const {
    std::lock_guard lock(mu_);
    return last_;
  }

  static std::string response(int status, const std::string& body,
                              const std::map<std::string, std::string>& headers = {}) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    for (const auto& [k, v] : headers)
      out += k + ": " + v + "\r\n";
    return out + "\r\n" + body;
  }

 private:
  void serve() {
    while (!stopping_) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopping_ || errno == EINVAL) return;
        continue;
      }
      SeenRequest req;
      if (read_request(c, req)) {
        {
          std::lock_guard lock(mu_);
          last_ = req;
        }
        ++requests_;
        const std::string out = handler_(req);
        size_t off = 0;
        while (off < out.size()) {
          const ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
      }
      ::shutdown(c, SHUT_WR);
      // Let the client read everything before the socket goes away.
      char drain[4096];
      while (::recv(c, drain, sizeof drain, 0) > 0) {
      }
      ::close(c);
    }
  }

  static bool read_request(int c, SeenRequest& req) {
    std::string data;
    char buf[65536];
    size_t header_end = std::string::npos;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
    }
    const std::string head = data.substr(0, header_end);
    std::string rest = data.substr(header_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const size_t sp1 = first.find(' ');
    const size_t sp2 = first.find(' ', sp1 + 1);
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      const std::string line = head.substr(pos, e - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ')
          ++v;
        req.headers[name] = line.substr(v);
      }
      pos = e + 2;
    }
    size_t length = 0;
    if (auto it = req.headers.find("content-length"); it != req.headers.end())
      length = std::stoul(it->second);
    while (rest.size() < length) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return false;
      rest.append(buf, static_cast<size_t>(n));
    }
    req.body = rest.substr(0, length);
    return true;
  }

  Handler handler_;
  bool ipv6_ = false;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  SeenRequest last_;
  std::thread thread_;
};

// A port on 127.0.0.1 that is bound but not listening: connecting to it is refused for as long
// as this object lives (no other process can take the port meanwhile).
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("bind");
    }
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A server that accepts connections (the kernel does, from its backlog) and never answers.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 4) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("bind/listen");
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string blob(size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i)
    out += static_cast<char>((i * 2654435761u) >> 13);
  return out;
}

// Serves `content` at any path, honouring "Range: bytes=N-" (and only that form) when asked to.
TestServer::Handler serve_content(const std::string& content, bool honour_range) {
  return [content, honour_range](const SeenRequest& r) {
    auto it = r.headers.find("range");
    if (honour_range && it != r.headers.end() && it->second.rfind("bytes=", 0) == 0 &&
        it->second.back() == '-') {
      const size_t from = std::stoul(it->second.substr(6));
      if (from >= content.size()) {
        return TestServer::response(
            416, "", {{"Content-Range", "bytes */" + std::to_string(content.size())}});
      }
      return TestServer::response(206, content.substr(from),
                                  {{"Content-Range", "bytes " + std::to_string(from) + "-" +
                                                         std::to_string(content.size() - 1) + "/" +
                                                         std::to_string(content.size())}});
    }
    return TestServer::response(200, content, {{"Content-Type", "application/gzip"}});
  };
}

TEST(HttpRequest, GetAndPostAgainstALocalServer) {
  TestServer server([](const SeenRequest& r) {
    if (r.method == "POST") {
      return TestServer::response(
          201, "got " + r.body,
          {{"X-Echo-Type", r.headers.count("content-type") ? r.headers.at("content-type") : ""}});
    }
    return TestServer::response(200, "hello " + r.target, {{"X-Custom", "Yes"}});
  });

  auto get = http_request("GET", server.url("/api/v1/nodes?env=staging"),
                          {{"Authorization", "Bearer t0k"}}, "");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello /api/v1/nodes?env=staging");
  EXPECT_EQ(get->headers.at("x-custom"), "Yes");  // names are lower-cased
  const auto seen = server.last();
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.target, "/api/v1/nodes?env=staging");
  EXPECT_EQ(seen.headers.at("authorization"), "Bearer t0k");
  EXPECT_EQ(seen.headers.at("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen.headers.at("user-agent").rfind("slipway/", 0), 0u);

  auto post = http_request("POST", server.url("/api/v1/deploys"), {}, R"({"app":"billing"})");
  ASSERT_TRUE(post) << post.error().message;
  EXPECT_EQ(post->status, 201);
  EXPECT_EQ(post->body, R"(got {"app":"billing"})");
  EXPECT_EQ(post->headers.at("x-echo-type"), "application/json");  // the default for bodies
  EXPECT_EQ(server.last().headers.at("content-length"), "17");
}

TEST(HttpRequest, Ipv6LiteralsConnectAndGoInBracketsInTheHostHeader) {
  std::unique_ptr<TestServer> server;
  try {
    server = std::make_unique<TestServer>(
        [](const SeenRequest&) { return TestServer::response(200, "six"); }, /*ipv6=*/true);
  } catch (const std::exception&) {
    GTEST_SKIP() << "no IPv6 loopback on this host";
  }
  auto r = http_request("GET", server->url("/health"), {}, "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "six");
  EXPECT_EQ(server->last().headers.at("host"), "[::1]:" + std::to_string(server->port()));
}

TEST(HttpRequest, ErrorStatusesAreNotErrors) {
  TestServer server([](const SeenRequest&) {
    return TestServer::response(404, R"({"error":{"code":"not_found","message":"no"}})");
  });
  auto r = http_request("GET", server.url("/missing"), {}, "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("not_found"), std::string::npos);
}

TEST(HttpRequest, ABodyOverTheLimitIsTooLarge) {
  TestServer server([](const SeenRequest&) { return TestServer::response(200, blob(10'000)); });
  HttpOptions opts;
  opts.max_body = 1'000;
  auto r = http_request("GET", server.url("/big"), {}, "", opts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::too_large);
}

TEST(HttpRequest, ConnectionRefusedIsUnavailable) {
  RefusingPort port;
  const std::string u = "http://127.0.0.1:" + std::to_string(port.port()) + "/api/v1/nodes";
  auto r = http_request("GET", u, {}, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(port.port())), std::string::npos)
      << r.error().message;
  EXPECT_EQ(exit_code(r.error().code), kExitUnreachable);

  testing::TempDir dir;
  auto d = http_download(u, {}, dir.path() / "x", false);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::unavailable);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "x"));
}

TEST(HttpRequest, ASilentServerTimesOut) {
  SilentServer server;
  HttpOptions opts;
  opts.timeout = Millis(200);
  auto r =
      http_request("GET", "http://127.0.0.1:" + std::to_string(server.port()) + "/", {}, "", opts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
}

TEST(HttpRequest, BadUrlsAreInvalidArguments) {
  auto r = http_request("GET", "ftp://example.com/", {}, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  testing::TempDir dir;
  auto d = http_download("not a url", {}, dir.path() / "x", false);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::invalid_argument);
}

TEST(HttpUploadFile, SendsTheFileAsTheBody) {
  TestServer server([](const SeenRequest& r) {
    return TestServer::response(200, sha256_hex(r.body) + " " + r.headers.at("content-type"));
  });
  testing::TempDir dir;
  const std::string content = blob(300'000);
  ASSERT_TRUE(write_file_atomic(dir.path() / "a.tar.gz", content));
  auto r = http_upload_file("PUT", server.url("/api/v1/apps/billing/versions/1.0.0"), {},
                            dir.path() / "a.tar.gz");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, sha256_hex(content) + " application/octet-stream");
  EXPECT_EQ(server.last().method, "PUT");
  auto missing = http_upload_file("PUT", server.url("/x"), {}, dir.path() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::invalid_argument);
}

TEST(HttpDownload, StreamsTheWholeFile) {
  const std::string content = blob(1'000'000);
  TestServer server(serve_content(content, true));
  testing::TempDir dir;
  const auto dest = dir.path() / "blob";
  auto d = http_download(server.url("/api/v1/blobs/x"), {{"Authorization", "Bearer t"}}, dest,
                         /*resume=*/true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->status, 200);
  EXPECT_FALSE(d->resumed);
  EXPECT_EQ(d->bytes_received, content.size());
  EXPECT_EQ(d->file_size, content.size());
  EXPECT_EQ(sha256_file(dest).value(), sha256_hex(content));
  EXPECT_EQ(server.last().headers.count("range"), 0u);  // nothing on disk: no Range
  EXPECT_EQ(server.last().headers.at("authorization"), "Bearer t");
}

TEST(HttpDownload, ResumesWithARangeRequest) {
  const std::string content = blob(500'000);
  TestServer server(serve_content(content, true));
  testing::TempDir dir;
  const auto dest = dir.path() / "blob.part";
  // An earlier download stopped after 123456 bytes.
  ASSERT_TRUE(write_file_atomic(dest, content.substr(0, 123'456)));
  auto d = http_download(server.url("/api/v1/blobs/x"), {}, dest, /*resume=*/true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(server.last().headers.at("range"), "bytes=123456-");
  EXPECT_EQ(d->status, 206);
  EXPECT_TRUE(d->resumed);
  EXPECT_EQ(d->bytes_received, content.size() - 123'456);
  EXPECT_EQ(d->file_size, content.size());
  EXPECT_EQ(sha256_file(dest).value(), sha256_hex(content));
}

TEST(HttpDownload, WithoutResumeTheFileIsRewritten) {
  const std::string content = blob(10'000);
  TestServer server(serve_content(content, true));
  testing::TempDir dir;
  const auto dest = dir.path() / "blob";
  ASSERT_TRUE(write_file_atomic(dest, std::string(50'000, 'x')));  // longer than the content
  auto d = http_download(server.url("/b"), {}, dest, /*resume=*/false);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(server.last().headers.count("range"), 0u);
  EXPECT_EQ(d->status, 200);
  EXPECT_EQ(d->file_size, content.size());
  EXPECT_EQ(read_file(dest).value(), content);
}

TEST(HttpDownload, AServerThatIgnoresRangeGetsTheFileRewrittenFromTheStart) {
  const std::string content = blob(200'000);
  TestServer server(serve_content(content, /*honour_range=*/false));
  testing::TempDir dir;
  const auto dest = dir.path() / "blob.part";
  ASSERT_TRUE(write_file_atomic(dest, "garbage that is not the start of the content"));
  auto d = http_download(server.url("/b"), {}, dest, /*resume=*/true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(server.last().headers.count("range"), 1u);
  EXPECT_EQ(d->status, 200);
  EXPECT_FALSE(d->resumed);
  EXPECT_EQ(d->file_size, content.size());
  EXPECT_EQ(read_file(dest).value(), content);
}

TEST(HttpDownload, AnErrorStatusLeavesTheFileAloneAndKeepsTheBody) {
  TestServer server([](const SeenRequest&) {
    return TestServer::response(404, R"({"error":{"code":"not_found","message":"no blob"}})");
  });
  testing::TempDir dir;
  const auto dest = dir.path() / "blob.part";
  ASSERT_TRUE(write_file_atomic(dest, "partial"));
  auto d = http_download(server.url("/b"), {}, dest, /*resume=*/true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->status, 404);
  EXPECT_NE(d->error_body.find("no blob"), std::string::npos);
  EXPECT_EQ(d->bytes_received, 0u);
  EXPECT_EQ(read_file(dest).value(), "partial");

  auto fresh = http_download(server.url("/b"), {}, dir.path() / "none", /*resume=*/false);
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "none"));
}

TEST(HttpDownload, ACompleteFileAsksForNothingMore) {
  const std::string content = blob(1'000);
  TestServer server(serve_content(content, true));
  testing::TempDir dir;
  const auto dest = dir.path() / "blob";
  ASSERT_TRUE(write_file_atomic(dest, content));
  auto d = http_download(server.url("/b"), {}, dest, /*resume=*/true);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->status, 416);  // the caller sees that there was nothing left to fetch
  EXPECT_EQ(read_file(dest).value(), content);
}

TEST(HttpDownload, ATruncatedResponseIsAnErrorAndKeepsWhatArrived) {
  const std::string content = blob(100'000);
  // Announces the whole length, sends half, closes.
  TestServer server([content](const SeenRequest&) {
    std::string out = TestServer::response(200, content);
    return out.substr(0, out.size() - content.size() / 2);
  });
  testing::TempDir dir;
  const auto dest = dir.path() / "blob.part";
  auto d = http_download(server.url("/b"), {}, dest, /*resume=*/true);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::unavailable);
  // What arrived is on disk, for the next attempt to resume from.
  const auto kept = read_file(dest).value();
  EXPECT_EQ(kept, content.substr(0, kept.size()));
  EXPECT_GT(kept.size(), 0u);
}

}  // namespace
}  // namespace slipway::net
