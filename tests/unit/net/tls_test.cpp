// TLS helpers (net/tls.h): the self-made CA and server certificate (made once, reused, remade when
// names change), fingerprints, the join token format and the plain-or-TLS decision; and a real
// handshake of the HTTP client against a TLS server on loopback, with a CA file, a pinned
// fingerprint, and a wrong one.
#include "net/tls.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "net/http_client.h"
#include "net/tls_context.h"
#include "support/temp_dir.h"

namespace slipway::net {
namespace {

namespace asio = boost::asio;
using ::testing::HasSubstr;

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

TEST(ServerCertificate, MadeOnceWithItsNamesAndPrivateKeysThenReused) {
  testing::TempDir dir;
  auto first = ensure_server_certificate(dir.path() / "tls", {"slipway.example", "127.0.0.1"});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created);
  EXPECT_EQ(mode_of(dir.path() / "tls" / "ca.key"), 0600u);
  EXPECT_EQ(mode_of(dir.path() / "tls" / "server.key"), 0600u);
  EXPECT_EQ(mode_of(dir.path() / "tls"), 0700u);
  auto sans = certificate_sans(first->chain).value();
  EXPECT_THAT(sans, ::testing::UnorderedElementsAre("slipway.example", "127.0.0.1"));
  const auto ca_fp = pem_file_fingerprint(first->ca).value();
  // The chain file ends with the CA: the certificate a join token pins.
  EXPECT_EQ(chain_anchor_fingerprint(first->chain).value(), ca_fp);
  const auto server_pem = read_file(first->chain).value();

  auto again = ensure_server_certificate(dir.path() / "tls", {"127.0.0.1"});
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(read_file(again->chain).value(), server_pem);

  // A new name: a new server certificate, signed by the same CA.
  auto more = ensure_server_certificate(dir.path() / "tls", {"127.0.0.1", "other.example"});
  ASSERT_TRUE(more);
  EXPECT_TRUE(more->created);
  EXPECT_NE(read_file(more->chain).value(), server_pem);
  EXPECT_EQ(pem_file_fingerprint(more->ca).value(), ca_fp);
  EXPECT_THAT(certificate_sans(more->chain).value(),
              ::testing::UnorderedElementsAre("127.0.0.1", "other.example"));
}

TEST(ServerCertificate, HalfACaIsRefused) {
  testing::TempDir dir;
  ASSERT_TRUE(ensure_server_certificate(dir.path(), {"localhost"}));
  std::filesystem::remove(dir.path() / "ca.key");
  auto r = ensure_server_certificate(dir.path(), {"localhost"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_THAT(r.error().message, HasSubstr("only one of ca.key and ca.crt"));
}

TEST(ServerCertificate, GarbageFilesAreErrors) {
  testing::TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.path() / "ca.key", "not a key", 0600));
  ASSERT_TRUE(write_file_atomic(dir.path() / "ca.crt", "not a cert", 0644));
  auto r = ensure_server_certificate(dir.path(), {"localhost"});
  ASSERT_FALSE(r);
  EXPECT_FALSE(pem_fingerprint("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  EXPECT_FALSE(pem_fingerprint(""));
}

TEST(Fingerprint, Parsing) {
  const std::string hex(64, 'a');
  EXPECT_EQ(parse_fingerprint("sha256:" + hex).value(), "sha256:" + hex);
  EXPECT_EQ(parse_fingerprint("sha256:" + std::string(64, 'F')).value(),
            "sha256:" + std::string(64, 'f'));
  EXPECT_FALSE(parse_fingerprint(hex));
  EXPECT_FALSE(parse_fingerprint("sha1:" + hex));
  EXPECT_FALSE(parse_fingerprint("sha256:" + hex.substr(1)));
  EXPECT_FALSE(parse_fingerprint("sha256:" + hex + "a"));
  EXPECT_FALSE(parse_fingerprint("sha256:" + std::string(63, 'a') + "g"));
  EXPECT_FALSE(parse_fingerprint("sha256:" + std::string(63, 'a') + "\n"));
  EXPECT_FALSE(parse_fingerprint(""));
}

TEST(JoinToken, FormatAndParse) {
  const std::string pin = "sha256:" + std::string(64, 'b');
  auto t = parse_join_token("slw_0123456789abcdef:" + pin).value();
  EXPECT_EQ(t.secret, "slw_0123456789abcdef");
  EXPECT_EQ(t.ca_pin, pin);
  EXPECT_EQ(format_join_token(t), "slw_0123456789abcdef:" + pin);
  auto plain = parse_join_token("slw_0123456789abcdef").value();
  EXPECT_EQ(plain.ca_pin, "");
  EXPECT_EQ(format_join_token(plain), "slw_0123456789abcdef");
  EXPECT_FALSE(parse_join_token(""));
  EXPECT_FALSE(parse_join_token(":sha256:" + std::string(64, 'b')));
  EXPECT_FALSE(parse_join_token("slw_0123456789abcdef:"));
  EXPECT_FALSE(parse_join_token("slw_0123456789abcdef:sha256:xyz"));
  EXPECT_FALSE(parse_join_token("slw_0123456789abcdef:" + pin + ":more"));
  EXPECT_FALSE(parse_join_token("slw_0123 456789abcdef"));
  EXPECT_FALSE(parse_join_token(std::string("slw_0123456789abc\0def", 21)));
  EXPECT_FALSE(parse_join_token(std::string(300, 'a')));
}

TEST(TlsDecision, LoopbackPlainElsewhereTls) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("::"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
  EXPECT_FALSE(is_loopback_host("example.com"));
  EXPECT_FALSE(is_loopback_host("128.0.0.1"));
  EXPECT_FALSE(is_loopback_host(""));

  auto d = decide_tls("127.0.0.1", -1, false);
  EXPECT_FALSE(d.tls);
  EXPECT_FALSE(d.refused);
  EXPECT_FALSE(d.warn_insecure);
  EXPECT_TRUE(decide_tls("127.0.0.1", 1, false).tls);
  EXPECT_FALSE(decide_tls("127.0.0.1", 0, false).tls);
  d = decide_tls("0.0.0.0", -1, false);
  EXPECT_TRUE(d.tls);
  EXPECT_FALSE(d.refused);
  d = decide_tls("0.0.0.0", 0, false);
  EXPECT_TRUE(d.refused);
  d = decide_tls("0.0.0.0", 0, true);
  EXPECT_FALSE(d.refused);
  EXPECT_FALSE(d.tls);
  EXPECT_TRUE(d.warn_insecure);
  d = decide_tls("10.1.2.3", -1, true);
  EXPECT_FALSE(d.tls);
  EXPECT_TRUE(d.warn_insecure);
  // --insecure warns even on loopback, at every start.
  EXPECT_TRUE(decide_tls("127.0.0.1", -1, true).warn_insecure);
  EXPECT_TRUE(decide_tls("10.1.2.3", 1, true).tls);
}

// A TLS server on loopback that answers every request with 200 "hello".
class TlsServer {
 public:
  explicit TlsServer(const ServerTlsFiles& files) {
    ctx_ = make_server_tls_context(files).value();
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, serve(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TlsServer() {
    asio::post(ioc_, [this] { acceptor_.close(); });
    ioc_.stop();
    thread_.join();
  }
  unsigned short port() const { return port_; }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(ioc_, answer(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> answer(asio::ip::tcp::socket sock) {
    asio::ssl::stream<asio::ip::tcp::socket> s(std::move(sock), *ctx_);
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::server,
                                            asio::as_tuple(asio::use_awaitable));
    if (hec) co_return;
    std::string buf(4096, '\0');
    auto [rec, n] =
        co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (rec) co_return;
    const std::string res =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    co_await asio::async_write(s, asio::buffer(res), asio::as_tuple(asio::use_awaitable));
  }

  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_{ioc_};
  std::shared_ptr<asio::ssl::context> ctx_;
  unsigned short port_ = 0;
  std::thread thread_;
};

TEST(TlsClient, VerifiesWithTheCaFileOrThePinAndRefusesOtherwise) {
  testing::TempDir dir;
  auto files = ensure_server_certificate(dir.path() / "a", {"localhost", "127.0.0.1"}).value();
  auto other = ensure_server_certificate(dir.path() / "b", {"localhost", "127.0.0.1"}).value();
  TlsServer server(files);
  const std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";

  HttpOptions with_ca;
  with_ca.tls.ca_file = files.ca.string();
  auto r = http_request("GET", url, {}, "", with_ca);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  // By name too (the certificate holds localhost).
  r = http_request("GET", "https://localhost:" + std::to_string(server.port()) + "/", {}, "",
                   with_ca);
  ASSERT_TRUE(r) << r.error().message;

  HttpOptions pinned;
  pinned.tls.ca_pin = pem_file_fingerprint(files.ca).value();
  r = http_request("GET", url, {}, "", pinned);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);

  // Another CA: refused, both ways.
  HttpOptions wrong_ca;
  wrong_ca.tls.ca_file = other.ca.string();
  r = http_request("GET", url, {}, "", wrong_ca);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_THAT(r.error().message, HasSubstr("certificate verify failed"));
  HttpOptions wrong_pin;
  wrong_pin.tls.ca_pin = pem_file_fingerprint(other.ca).value();
  r = http_request("GET", url, {}, "", wrong_pin);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("not signed by the CA of the join token"));
  // The system's store does not know a self-made CA.
  r = http_request("GET", url, {}, "");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("--ca-cert"));
  // A name the certificate does not hold.
  auto narrow = ensure_server_certificate(dir.path() / "c", {"only.example"}).value();
  TlsServer server2(narrow);
  HttpOptions narrow_ca;
  narrow_ca.tls.ca_file = narrow.ca.string();
  r = http_request("GET", "https://127.0.0.1:" + std::to_string(server2.port()) + "/", {}, "",
                   narrow_ca);
  ASSERT_FALSE(r);
  // A CA file that is not one.
  HttpOptions bad_ca;
  ASSERT_TRUE(write_file_atomic(dir.path() / "junk.pem", "junk", 0644));
  bad_ca.tls.ca_file = (dir.path() / "junk.pem").string();
  r = http_request("GET", url, {}, "", bad_ca);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace slipway::net
