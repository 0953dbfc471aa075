// Transport and identity on the real binary: a server with --tls on loopback, agents that enroll
// through the join token's CA fingerprint, a deploy over HTTPS and WSS, the CLI with --ca-cert;
// agents refused for a wrong fingerprint, a taken name, a revoked node; the plain-HTTP rule; and
// the listener's limits (slow request headers, connections per address).
#include "net/tls.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/strings.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

std::string file_text(const fs::path& p) {
  auto t = read_file(p);
  return t ? *t : std::string();
}

// A TCP connection from this process to 127.0.0.1:port, kept open until destroyed.
class Socket {
 public:
  Socket(const std::string& host, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("cannot connect to the server");
    }
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  void send(const std::string& bytes) {
    (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // Reads until the peer closes or `timeout` passes; `closed` tells which.
  std::string read_until_closed(Millis timeout, bool& closed) {
    std::string out;
    closed = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
};

int port_of(const std::string& url) {
  return std::stoi(url.substr(url.rfind(':') + 1));
}

class TlsTest : public E2eTest {
 protected:
  // An agent process of this test (not the lab's), run for `timeout`; its output.
  ProcResult run_agent(const std::string& name, const std::string& token, Millis timeout) {
    const fs::path root = dir() / ("extra-" + name + "-" + std::to_string(++extra_));
    return run_process({SLIPWAY_BIN, "agent", "--server", info().server_url, "--token", token,
                        "--name", name, "--env", "staging", "--root", root.string(), "--address",
                        info().nodes.back().spec.address},
                       {}, timeout);
  }
  std::string node_state(const std::string& name) {
    auto v = get_json("/api/v1/nodes/" + name);
    return str(v, "state");
  }
  int extra_ = 0;
};

TEST_F(TlsTest, AgentsEnrollThroughTheFingerprintedTokenAndADeployRunsOverHttps) {
  server_args_ = {"--tls"};
  ASSERT_NO_THROW(start_lab(2));
  ASSERT_TRUE(info().server_url.starts_with("https://127.")) << info().server_url;
  const fs::path data = info().dir / "server";

  // The join token: the secret and the SHA-256 of the CA certificate.
  auto token = net::parse_join_token(trim(file_text(data / "join.token")));
  ASSERT_TRUE(token) << file_text(data / "join.token");
  EXPECT_EQ(token->ca_pin, net::pem_file_fingerprint(data / "tls" / "ca.crt").value());
  EXPECT_EQ(mode_of(data / "tls" / "ca.key"), 0600u);
  EXPECT_EQ(mode_of(data / "tls" / "server.key"), 0600u);
  EXPECT_EQ(mode_of(data / "join.token"), 0600u);

  // Each agent kept the CA and its own credential.
  for (const auto& n : info().nodes) {
    EXPECT_TRUE(wait_until([&] { return fs::exists(n.root / "server-ca.pem"); }, Millis(10'000)));
    EXPECT_EQ(net::pem_file_fingerprint(n.root / "server-ca.pem").value(), token->ca_pin);
    EXPECT_EQ(mode_of(n.root / "agent.credential"), 0600u) << n.spec.name;
    EXPECT_TRUE(file_text(n.root / "agent.credential").starts_with("slwc_")) << n.spec.name;
  }

  // Push, deploy (the agents download the artifact over HTTPS) and follow it (WSS).
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("succeeded: 2/2 node(s) healthy on web 1.0.0"), std::string::npos)
      << r.describe();
  EXPECT_GE(artifact_downloads(), 2);

  // The CLI with --ca-cert; without it, the self-made CA is not trusted (exit 3, and why).
  const std::map<std::string, std::string> env = {{"SLIPWAY_SERVER", info().server_url},
                                                  {"SLIPWAY_TOKEN", info().admin_token},
                                                  {"SLIPWAY_CA_CERT", ""}};
  r = cli_env({"nodes", "--ca-cert", (data / "tls" / "ca.crt").string()}, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("node-1"), std::string::npos) << r.describe();
  r = cli_env({"nodes"}, env);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("--ca-cert"), std::string::npos) << r.describe();
  r = cli_env({"nodes", "--ca-cert", (dir() / "missing.pem").string()}, env);
  EXPECT_NE(r.exit_code, 0) << r.describe();

  // Plain HTTP to a TLS listener gets nothing served.
  bool closed = false;
  Socket s("127.0.0.1", port_of(info().server_url));
  s.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto answer = s.read_until_closed(Millis(30'000), closed);
  EXPECT_EQ(answer.find("200 OK"), std::string::npos) << answer;

  // A restarted server keeps its CA, certificate and token: the agents come back.
  const auto ca_before = file_text(data / "tls" / "ca.crt");
  const auto token_before = file_text(data / "join.token");
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  EXPECT_EQ(file_text(data / "tls" / "ca.crt"), ca_before);
  EXPECT_EQ(file_text(data / "join.token"), token_before);
  ASSERT_TRUE(lab_.wait_for_nodes());
}

TEST_F(TlsTest, AnAgentWithAWrongFingerprintRefusesToConnectAndSaysWhy) {
  server_args_ = {"--tls"};
  ASSERT_NO_THROW(start_lab(1));
  auto token = net::parse_join_token(info().join_token).value();
  token.ca_pin = "sha256:" + std::string(64, '0');
  auto r = run_agent("impostor-target", net::format_join_token(token), Millis(6'000));
  EXPECT_NE(r.all().find("not signed by the CA of the join token"), std::string::npos)
      << r.describe();
  auto nodes = get_json("/api/v1/nodes");
  EXPECT_EQ(to_json(nodes).find("impostor-target"), std::string::npos) << to_json(nodes);

  // A token with a fingerprint and an http:// server: a usage error.
  auto plain = run_process(
      {SLIPWAY_BIN, "agent", "--server", "http://127.0.0.1:1", "--token", info().join_token,
       "--name", "x", "--env", "staging", "--root", (dir() / "x").string()},
      {}, Millis(10'000));
  EXPECT_EQ(plain.exit_code, 2) << plain.describe();
  EXPECT_NE(plain.all().find("https://"), std::string::npos) << plain.describe();
  // A malformed fingerprint: a usage error too.
  auto bad = run_process(
      {SLIPWAY_BIN, "agent", "--server", info().server_url, "--token", token.secret + ":sha256:zz",
       "--name", "x", "--env", "staging", "--root", (dir() / "y").string()},
      {}, Millis(10'000));
  EXPECT_EQ(bad.exit_code, 2) << bad.describe();
  EXPECT_NE(bad.all().find("fingerprint"), std::string::npos) << bad.describe();
}

TEST_F(TlsTest, ASecondAgentWithTheSameNameAndOnlyTheJoinTokenIsRefused) {
  server_args_ = {"--tls"};
  ASSERT_NO_THROW(start_lab(1));
  const std::string taken = info().nodes.front().spec.name;
  auto r = run_agent(taken, info().join_token, Millis(6'000));
  EXPECT_NE(r.all().find("enrolled with another credential"), std::string::npos) << r.describe();
  // The real node kept its connection.
  EXPECT_EQ(node_state(taken), "alive");
  EXPECT_NE(file_text(info().dir / "server" / "server.log").find("refused as node " + taken),
            std::string::npos);
  // A forged credential is no better.
  const fs::path root = dir() / "forger";
  ASSERT_TRUE(ensure_dir(root));
  ASSERT_TRUE(write_file_atomic(root / "agent.credential", "slwc_" + std::string(64, 'a'), 0600));
  auto f = run_process({SLIPWAY_BIN, "agent", "--server", info().server_url, "--token",
                        info().join_token, "--name", taken, "--env", "staging", "--root",
                        root.string(), "--address", info().nodes.back().spec.address},
                       {}, Millis(6'000));
  EXPECT_NE(f.all().find("enrolled with another credential"), std::string::npos) << f.describe();
  EXPECT_EQ(node_state(taken), "alive");
}

TEST_F(TlsTest, RevokeDisconnectsTheAgentForGood) {
  server_args_ = {"--tls"};
  ASSERT_NO_THROW(start_lab(2));
  auto r = cli({"nodes", "revoke", "node-2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("new --name"), std::string::npos) << r.describe();
  EXPECT_EQ(node_state("node-2"), "revoked");
  const fs::path log = info().nodes[1].log;
  EXPECT_TRUE(wait_until([&] { return file_text(log).find("is revoked") != std::string::npos; },
                         Millis(15'000)))
      << file_text(log);
  // Its agent, restarted, is refused again and again; the node stays revoked.
  ASSERT_TRUE(lab_.stop_node("node-2"));
  ASSERT_TRUE(lab_.start_node("node-2"));
  EXPECT_TRUE(wait_until(
      [&] {
        const auto t = file_text(info().dir / "server" / "server.log");
        size_t count = 0;
        for (size_t p = t.find("refused as node node-2"); p != std::string::npos;
             p = t.find("refused as node node-2", p + 1))
          ++count;
        return count >= 1;
      },
      Millis(15'000)));
  EXPECT_EQ(node_state("node-2"), "revoked");
  auto listed = cli_json({"nodes", "--state", "revoked"});
  EXPECT_NE(to_json(listed).find("node-2"), std::string::npos) << to_json(listed);
  EXPECT_EQ(node_state("node-1"), "alive");
  // A revocation survives a restart of the server.
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  EXPECT_EQ(node_state("node-2"), "revoked");
  // Revoke is an admin route: bad names and bodies are refused.
  EXPECT_EQ(http("POST", "/api/v1/nodes/" + std::string(300, 'a') + "/revoke", "{}").status, 400);
  EXPECT_EQ(http("POST", "/api/v1/nodes/node-1/revoke", R"({"extra":1})").status, 400);
  EXPECT_EQ(http("POST", "/api/v1/nodes/node-1/revoke", "{}", {}, "").status, 401);
  // node-1, untouched, comes back after the restart.
  EXPECT_TRUE(wait_until([&] { return node_state("node-1") == "alive"; }, Millis(30'000)));
}

TEST_F(TlsTest, PlainHttpOffLoopbackIsRefusedBeforeBinding) {
  const fs::path data = dir() / "data";
  auto r = run_process(
      {SLIPWAY_BIN, "server", "--data", data.string(), "--listen", "0.0.0.0:0", "--no-tls"}, {},
      Millis(20'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.all().find("not a loopback address"), std::string::npos) << r.describe();
  EXPECT_NE(r.all().find("--insecure"), std::string::npos) << r.describe();
  EXPECT_FALSE(fs::exists(data / "server.url"));
  r = run_process({SLIPWAY_BIN, "server", "--data", data.string(), "--tls", "--no-tls"}, {},
                  Millis(20'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = run_process({SLIPWAY_BIN, "server", "--data", data.string(), "--tls-cert", "x.pem"}, {},
                  Millis(20'000));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST_F(TlsTest, ASlowRequestHeaderIsDropped) {
  server_args_ = {"--header-timeout", "1s"};
  ASSERT_NO_THROW(start_lab(1));
  Socket s("127.0.0.1", port_of(info().server_url));
  s.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // and never the end of the header
  bool closed = false;
  s.read_until_closed(Millis(60'000), closed);
  EXPECT_TRUE(closed);
  // The server still serves others.
  EXPECT_EQ(http("GET", "/healthz").status, 200);
}

TEST_F(TlsTest, ConnectionsPerAddressAreBounded) {
  server_args_ = {"--max-connections-per-address", "3", "--header-timeout", "120s"};
  ASSERT_NO_THROW(start_lab(1));
  const int port = port_of(info().server_url);
  std::vector<std::unique_ptr<Socket>> held;
  for (int i = 0; i < 3; ++i)
    held.push_back(std::make_unique<Socket>("127.0.0.1", port));
  {
    Socket extra("127.0.0.1", port);
    extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed = false;
    const auto answer = extra.read_until_closed(Millis(30'000), closed);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 503")) << answer;
    EXPECT_NE(answer.find("too many connections"), std::string::npos) << answer;
    EXPECT_TRUE(closed);
  }
  // Freed slots serve again; the agent, from its own address, was never affected.
  held.clear();
  EXPECT_TRUE(wait_until(
      [&] {
        auto r = net::http_request("GET", info().server_url + "/healthz", {}, "", {});
        return r && r->status == 200;
      },
      Millis(15'000)));
  EXPECT_EQ(node_state("node-1"), "alive");
}

}  // namespace
}  // namespace slipway::e2e
