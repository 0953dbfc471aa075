#include "support/haproxy.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace slipway::testing {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

// A closed-on-exec listening TCP socket on ADDRESS, port chosen by the kernel.
int listen_ephemeral(const std::string& address, int* port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) {
    fail(fmt::format("the frontend address {} is not an IPv4 address", address));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0) {
    const int e = errno;
    ::close(fd);
    fail(fmt::format("cannot listen on {}: {}", address, std::strerror(e)));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    out.push_back(
        line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int64_t to_i64(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

}  // namespace

std::string HaproxyFixture::config_text(const HaproxyOptions& o, const std::string& bind_spec) {
  std::string servers;
  for (const auto& s : o.servers) {
    servers += fmt::format("  server {} {}:{}{}\n", s.name, s.address, s.port,
                           o.health_checks ? " check" : "");
  }
  const std::string retries =
      o.retries > 0
          ? fmt::format(
                "  # A request that fails on one server (refused, reset, no or a broken\n"
                "  # answer, a 5xx, a timeout) is tried again, each time on another one.\n"
                "  retries {}\n"
                "  option redispatch 1\n"
                "  retry-on all-retryable-errors\n",
                o.retries)
          : "  # No retry (a negative control): a request that fails on a server fails.\n"
            "  retries 0\n";
  // Comments in the file say why each setting is there: it is read by whoever debugs a test.
  return fmt::format(
      R"(# Written by the Slipway test fixture (tests/support/haproxy.cpp).
global
  # Foreground (-db), no pidfile, chroot, user or daemon: runs as the test's user.
  log stderr format raw local0 info
  stats socket {socket} mode 600 level admin
  stats timeout 10s
  maxconn 2048
  nbthread 1

defaults
  mode http
  log global
  option httplog
  # Only requests that went wrong are logged (a 5xx, a retry, a redispatch, an abort).
  option dontlog-normal
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 10s
  timeout queue 5s
  timeout check 1s
{retries}
frontend fe
  bind {bind}
  default_backend {backend}

backend {backend}
  balance roundrobin
  option httpchk GET /health
  http-check expect status 200
  # A dead server is out after 2 failed checks 200 ms apart; a fresh one in after 1 good one.
  default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1
{servers})",
      fmt::arg("socket", (o.dir / "admin.sock").string()), fmt::arg("bind", bind_spec),
      fmt::arg("retries", retries), fmt::arg("backend", kBackend), fmt::arg("servers", servers));
}

HaproxyFixture::~HaproxyFixture() {
  stop();
}

void HaproxyFixture::start(const HaproxyOptions& o) {
  if (port_ != 0) fail("HaproxyFixture::start: started already");
  if (o.dir.empty()) fail("HaproxyFixture::start: no directory");
  if (::access(o.binary.c_str(), X_OK) != 0) {
    fail(fmt::format("{} is not installed (Debian's haproxy; `./run.sh test` installs it)",
                     o.binary.string()));
  }
  for (const auto& s : o.servers) {
    if (s.port < 1 || s.port > 65535) {
      fail(fmt::format("server {} has no port (HAProxy needs one to check it)", s.name));
    }
  }
  opts_ = o;
  fs::create_directories(opts_.dir);
  if (socket_path().string().size() >= sizeof(sockaddr_un{}.sun_path)) {
    fail(fmt::format("the admin socket path {} is too long", socket_path().string()));
  }
  int port = 0;
  const int fd = listen_ephemeral(opts_.listen_address, &port);
  {
    std::ofstream cfg(config_path(), std::ios::binary | std::ios::trunc);
    cfg << config_text(opts_, "fd@3");
    if (!cfg) {
      ::close(fd);
      fail("cannot write " + config_path().string());
    }
  }
  ChildOptions c;
  c.argv = {opts_.binary.string(), "-f", config_path().string(), "-db"};
  c.stdout_path = log_path();
  c.stderr_path = log_path();
  c.pass_fd = fd;
  try {
    process_.start(c);
  } catch (...) {
    ::close(fd);
    throw;
  }
  // HAProxy has its copy: when it exits, connecting fails at once instead of waiting in a
  // backlog nobody accepts from.
  ::close(fd);
  port_ = port;

  std::string last_error;
  const bool answered = poll_until(
      [&] {
        if (!process_.running()) return true;
        try {
          return runtime("show info").find("Pid:") != std::string::npos;
        } catch (const std::exception& e) {
          last_error = e.what();
          return false;
        }
      },
      opts_.start_timeout);
  if (!answered || !process_.running()) {
    const std::string how = process_.stop(SIGKILL);
    fail(fmt::format("HAProxy did not start ({}{}); the end of {}:\n{}", how,
                     last_error.empty() ? "" : "; " + last_error, log_path().string(),
                     tail_of(log_path())));
  }
}

void HaproxyFixture::stop() {
  process_.stop(SIGTERM, std::chrono::seconds(5));
}

std::string HaproxyFixture::frontend_url() const {
  return fmt::format("http://{}:{}", opts_.listen_address, port_);
}

std::string HaproxyFixture::runtime(const std::string& command) const {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = socket_path().string();
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    fail(fmt::format("cannot connect to HAProxy's admin socket {}: {}", path, std::strerror(e)));
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  // One command per connection: HAProxy answers it and closes (non-interactive mode).
  const std::string line = command + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      fail(fmt::format("cannot send to {}: {}", path, std::strerror(e)));
    }
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      fail(fmt::format("no answer to '{}' from {}: {}", command, path, std::strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::vector<std::map<std::string, std::string>> parse_show_stat(const std::string& csv) {
  std::vector<std::map<std::string, std::string>> rows;
  std::vector<std::string> header;
  size_t pos = 0;
  while (pos < csv.size()) {
    size_t nl = csv.find('\n', pos);
    if (nl == std::string::npos) nl = csv.size();
    std::string line = csv.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line.rfind("# ", 0) == 0) {
      header = split_csv_line(line.substr(2));
      continue;
    }
    if (header.empty()) continue;
    const auto fields = split_csv_line(line);
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < fields.size(); ++i) {
      if (!header[i].empty()) row[header[i]] = fields[i];
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::map<std::string, HaproxyServerState> HaproxyFixture::server_states() const {
  // Servers only (type mask 4) of every proxy.
  const std::string csv = runtime("show stat -1 4 -1");
  const auto rows = parse_show_stat(csv);
  if (rows.empty() && csv.find("# pxname") == std::string::npos) {
    fail("unexpected answer to 'show stat': " + csv);
  }
  std::map<std::string, HaproxyServerState> out;
  for (const auto& row : rows) {
    auto get = [&](const char* key) {
      const auto it = row.find(key);
      return it == row.end() ? std::string() : it->second;
    };
    if (get("pxname") != kBackend) continue;
    HaproxyServerState s;
    s.status = get("status");
    s.current_sessions = to_i64(get("scur"));
    s.total_sessions = to_i64(get("stot"));
    s.check_status = get("check_status");
    s.address = get("addr");
    out[get("svname")] = std::move(s);
  }
  return out;
}

HaproxyServerState HaproxyFixture::server_state(const std::string& name) const {
  auto all = server_states();
  const auto it = all.find(name);
  if (it == all.end()) fail(fmt::format("HAProxy has no server {}/{}", kBackend, name));
  return it->second;
}

void HaproxyFixture::set_state(const std::string& name, const std::string& state) const {
  const std::string answer =
      trimmed(runtime(fmt::format("set server {}/{} state {}", kBackend, name, state)));
  if (!answer.empty()) {
    fail(fmt::format("HAProxy refused 'set server {}/{} state {}': {}", kBackend, name, state,
                     answer));
  }
}

void HaproxyFixture::set_address(const std::string& name, const std::string& address,
                                 int port) const {
  const std::string answer = trimmed(
      runtime(fmt::format("set server {}/{} addr {} port {}", kBackend, name, address, port)));
  if (answer.find("changed") == std::string::npos && answer.find("no need") == std::string::npos) {
    fail(fmt::format("HAProxy refused the address {}:{} for {}/{}: {}", address, port, kBackend,
                     name, answer));
  }
}

bool HaproxyFixture::wait_status(const std::string& name, const std::string& status,
                                 std::chrono::milliseconds timeout) const {
  return poll_until([&] { return server_state(name).status == status; }, timeout);
}

bool HaproxyFixture::wait_no_sessions(const std::string& name,
                                      std::chrono::milliseconds timeout) const {
  return poll_until([&] { return server_state(name).current_sessions == 0; }, timeout);
}

}  // namespace slipway::testing
