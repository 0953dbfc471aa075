// slipway-sample-service: the small web service that `slipway demo` and the end-to-end tests
// deploy. A real HTTP/1.1 server on plain POSIX sockets, one thread per connection.
//
//   slipway-sample-service --address A --port P [--version V] [--app NAME] [--unhealthy]
//                          [--exit-after-ms N] [--start-delay-ms N]
//
//   GET /health   200 "ok\n", or 500 "unhealthy\n" with --unhealthy (a release that ships a bug)
//   GET /         "hello from APP VERSION on ADDRESS:PORT\n" (plus " (node NODE)" when the
//                 environment variable SLIPWAY_NODE is set)
//   GET /version  "VERSION\n"
//   anything else 404; HEAD works like GET without a body; other methods get 405; a request that
//   cannot be parsed gets 400 and the connection is closed.
//
// Exit codes: 0 after SIGTERM or SIGINT, 1 when the socket cannot be bound, 2 for bad usage,
// 3 when --exit-after-ms elapsed (it plays a crashing app).
//
// Once listening it prints exactly one line to standard output (flushed at once):
//   slipway-sample-service: APP VERSION listening on ADDRESS:PORT
// With --port 0 the kernel picks a port, and the line (and the greeting) carry the real one.
// --start-delay-ms sleeps before listening, to play a slow start; SIGTERM during it still exits 0.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitBind = 1;
constexpr int kExitCrash = 3;

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr int kIdleTimeoutMs = 30'000;  // an idle keep-alive connection is closed after this
constexpr int kMaxConnections = 1024;   // beyond this, new connections get 503

struct Config {
  std::string address = "127.0.0.1";
  long port = -1;
  std::string version = "0.0.0";
  std::string app = "sample";
  bool unhealthy = false;
  long exit_after_ms = -1;
  long start_delay_ms = 0;
  std::string node;  // from SLIPWAY_NODE
};

Config g_config;
std::string g_greeting;  // fixed once listening

// Shutdown: the signal thread sets g_stop and writes to the wake pipe, which the accept loop and
// the start delay poll on. Open connections are tracked so that they can be shut down.
std::atomic<bool> g_stop{false};
int g_wake_pipe[2] = {-1, -1};
std::mutex g_conn_mu;
std::condition_variable g_conn_cv;
std::set<int> g_conn_fds;
int g_conn_count = 0;

void usage(const char* why) {
  std::fprintf(stderr,
               "slipway-sample-service: %s\n"
               "usage: slipway-sample-service --address A --port P [--version V] [--app NAME]\n"
               "         [--unhealthy] [--exit-after-ms N] [--start-delay-ms N]\n",
               why);
}

bool parse_long(const char* s, long min, long max, long* out) {
  if (s == nullptr || *s == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

// Returns 0 on success, or the exit code to use.
int parse_args(int argc, char** argv, Config* c) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--help" || a == "-h") {
      usage("a sample web service for Slipway");
      std::exit(0);
    } else if (a == "--address") {
      const char* v = value();
      if (v == nullptr || *v == '\0') return usage("--address needs a value"), kExitUsage;
      c->address = v;
    } else if (a == "--port") {
      if (!parse_long(value(), 0, 65535, &c->port)) {
        return usage("--port needs a number from 0 to 65535"), kExitUsage;
      }
    } else if (a == "--version") {
      const char* v = value();
      if (v == nullptr) return usage("--version needs a value"), kExitUsage;
      c->version = v;
    } else if (a == "--app") {
      const char* v = value();
      if (v == nullptr) return usage("--app needs a value"), kExitUsage;
      c->app = v;
    } else if (a == "--unhealthy") {
      c->unhealthy = true;
    } else if (a == "--exit-after-ms") {
      if (!parse_long(value(), 0, 1L << 40, &c->exit_after_ms)) {
        return usage("--exit-after-ms needs a non-negative number"), kExitUsage;
      }
    } else if (a == "--start-delay-ms") {
      if (!parse_long(value(), 0, 1L << 40, &c->start_delay_ms)) {
        return usage("--start-delay-ms needs a non-negative number"), kExitUsage;
      }
    } else {
      std::string why = "unknown argument '" + std::string(a) + "'";
      return usage(why.c_str()), kExitUsage;
    }
  }
  if (c->port < 0) return usage("--port is required"), kExitUsage;
  if (const char* node = std::getenv("SLIPWAY_NODE"); node != nullptr) c->node = node;
  return 0;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void wake() {
  const char b = 1;
  [[maybe_unused]] ssize_t n = ::write(g_wake_pipe[1], &b, 1);
}

// Waits for SIGTERM/SIGINT (blocked in every other thread) or for the --exit-after-ms deadline.
void signal_thread(sigset_t set) {
  const int64_t deadline = g_config.exit_after_ms >= 0 ? now_ms() + g_config.exit_after_ms : -1;
  for (;;) {
    int sig = 0;
    if (deadline < 0) {
      if (sigwait(&set, &sig) != 0) continue;
    } else {
      const int64_t left = std::max<int64_t>(0, deadline - now_ms());
      timespec ts{static_cast<time_t>(left / 1000), static_cast<long>(left % 1000) * 1'000'000};
      sig = sigtimedwait(&set, nullptr, &ts);
      if (sig < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          std::fprintf(stderr,
                       "slipway-sample-service: exiting with code %d after %ld ms, as asked\n",
                       kExitCrash, g_config.exit_after_ms);
          std::fflush(stderr);
          std::_Exit(kExitCrash);
        }
        continue;
      }
    }
    std::fprintf(stderr, "slipway-sample-service: signal %d, shutting down\n", sig);
    g_stop = true;
    wake();
    return;
  }
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

bool send_response(int fd, int status, std::string_view body, bool keep_alive, bool head = false,
                   std::string_view extra_headers = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  if (!head) out += body;
  return send_all(fd, out);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Whether the comma-separated header value holds `token` (case-insensitively).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

struct Request {
  std::string method;
  std::string path;
  int minor_version = 1;
  bool keep_alive = true;
  size_t content_length = 0;
  bool chunked = false;
};

// Parses the head (request line and headers, without the final blank line). Returns 0, or the
// status to answer with before closing.
int parse_head(std::string_view head, Request* r) {
  size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // request-line = method SP request-target SP HTTP-version
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return 400;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return 400;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), is_token_char)) return 400;
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' ||
      version[7] > '9') {
    return 400;
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return 400;
  }
  r->method = method;
  r->minor_version = version[7] - '0';
  r->keep_alive = r->minor_version >= 1;
  std::string_view path = target;
  if (path.substr(0, 7) == "http://" || path.substr(0, 8) == "https://") {
    // absolute-form: keep only the path
    const size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  if (path.empty() || (path.front() != '/' && path != "*")) return 400;
  path = path.substr(0, path.find('?'));
  r->path = path;

  bool have_length = false;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 1);
    eol = head.find('\n');
    std::string_view h = head.substr(0, eol);
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    if (h.empty()) continue;
    if (h.front() == ' ' || h.front() == '\t') return 400;  // obsolete line folding
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return 400;
    const std::string_view name = h.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return 400;
    const std::string_view value = trim(h.substr(colon + 1));
    if (iequals(name, "connection")) {
      if (has_token(value, "close")) r->keep_alive = false;
      if (has_token(value, "keep-alive")) r->keep_alive = true;
    } else if (iequals(name, "content-length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return 400;
      }
      const size_t n = std::stoull(std::string(value));
      if (have_length && n != r->content_length) return 400;
      have_length = true;
      r->content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      r->chunked = true;
    }
  }
  if (r->chunked) return have_length ? 400 : 501;
  if (r->content_length > kMaxBodyBytes) return 413;
  return 0;
}

// Reads more bytes into buf; false on EOF, error, idle timeout or shutdown.
bool read_more(int fd, std::string* buf) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int rc = ::poll(&p, 1, kIdleTimeoutMs);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    break;
  }
  char tmp[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
    return true;
  }
}

void serve_connection(int fd) {
  std::string buf;
  for (;;) {
    // Read until the end of the head: a blank line (CRLF CRLF, or bare LF LF from lenient clients).
    size_t head_end = std::string::npos;
    size_t sep_len = 0;
    for (;;) {
      const size_t crlf = buf.find("\r\n\r\n");
      const size_t lf = buf.find("\n\n");
      if (crlf != std::string::npos && (lf == std::string::npos || crlf < lf)) {
        head_end = crlf;
        sep_len = 4;
      } else if (lf != std::string::npos) {
        head_end = lf;
        sep_len = 2;
      }
      if (head_end != std::string::npos) break;
      if (buf.size() > kMaxHeaderBytes) {
        send_response(fd, 431, "request head too large\n", false);
        return;
      }
      if (!read_more(fd, &buf) || g_stop) {
        // A partial request is a client that went away or stalled: nothing to answer.
        return;
      }
      // Tolerate blank lines before a request line (RFC 9112 section 2.2).
      while (buf.size() >= 2 && buf[0] == '\r' && buf[1] == '\n')
        buf.erase(0, 2);
      while (!buf.empty() && buf[0] == '\n')
        buf.erase(0, 1);
    }
    if (head_end > kMaxHeaderBytes) {
      send_response(fd, 431, "request head too large\n", false);
      return;
    }
    Request req;
    const int bad = parse_head(std::string_view(buf).substr(0, head_end), &req);
    if (bad != 0) {
      const char* body = bad == 400   ? "bad request\n"
                         : bad == 413 ? "request body too large\n"
                                      : "transfer encodings are not supported\n";
      send_response(fd, bad, body, false);
      return;
    }
    buf.erase(0, head_end + sep_len);
    // Read and discard the body, keeping what follows (a pipelined request).
    while (buf.size() < req.content_length) {
      if (!read_more(fd, &buf)) return;
    }
    buf.erase(0, req.content_length);

    const bool keep_alive = req.keep_alive && !g_stop;
    const bool head = req.method == "HEAD";
    bool sent;
    if (req.method != "GET" && !head) {
      sent =
          send_response(fd, 405, "method not allowed\n", keep_alive, false, "Allow: GET, HEAD\r\n");
    } else if (req.path == "/health") {
      sent = g_config.unhealthy ? send_response(fd, 500, "unhealthy\n", keep_alive, head)
                                : send_response(fd, 200, "ok\n", keep_alive, head);
    } else if (req.path == "/") {
      sent = send_response(fd, 200, g_greeting, keep_alive, head);
    } else if (req.path == "/version") {
      sent = send_response(fd, 200, g_config.version + "\n", keep_alive, head);
    } else {
      sent = send_response(fd, 404, "not found\n", keep_alive, head);
    }
    if (!sent || !keep_alive) return;
  }
}

void connection_thread(int fd) {
  serve_connection(fd);
  ::shutdown(fd, SHUT_WR);
  {
    std::lock_guard lock(g_conn_mu);
    g_conn_fds.erase(fd);
    ::close(fd);
    --g_conn_count;
  }
  g_conn_cv.notify_all();
}

int open_listener(std::string* bound) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(g_config.port);
  if (const int rc = ::getaddrinfo(g_config.address.c_str(), port.c_str(), &hints, &res); rc != 0) {
    std::fprintf(stderr, "slipway-sample-service: cannot resolve %s: %s\n",
                 g_config.address.c_str(), ::gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  int last_errno = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 512) == 0) break;
    last_errno = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    std::fprintf(stderr, "slipway-sample-service: cannot listen on %s port %ld: %s\n",
                 g_config.address.c_str(), g_config.port, std::strerror(last_errno));
    return -1;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN] = "";
  int real_port = 0;
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
    real_port = ntohs(sin6->sin6_port);
    *bound = "[" + std::string(host) + "]:" + std::to_string(real_port);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    real_port = ntohs(sin->sin_port);
    *bound = std::string(host) + ":" + std::to_string(real_port);
  }
  return fd;
}

// Waits until `ms` passed or shutdown was asked; returns false on shutdown.
bool wait_or_stop(int64_t ms) {
  const int64_t deadline = now_ms() + ms;
  for (;;) {
    if (g_stop) return false;
    const int64_t left = deadline - now_ms();
    if (left <= 0) return true;
    pollfd p{g_wake_pipe[0], POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const int rc = parse_args(argc, argv, &g_config); rc != 0) return rc;

  // Signals are taken synchronously by one thread; every thread started later inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  if (::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("slipway-sample-service: pipe");
    return 1;
  }
  std::thread(signal_thread, set).detach();

  if (g_config.start_delay_ms > 0 && !wait_or_stop(g_config.start_delay_ms)) return 0;

  std::string bound;
  const int listen_fd = open_listener(&bound);
  if (listen_fd < 0) return kExitBind;
  g_greeting = "hello from " + g_config.app + " " + g_config.version + " on " + bound;
  if (!g_config.node.empty()) g_greeting += " (node " + g_config.node + ")";
  g_greeting += "\n";
  std::printf("slipway-sample-service: %s %s listening on %s\n", g_config.app.c_str(),
              g_config.version.c_str(), bound.c_str());
  std::fflush(stdout);

  while (!g_stop) {
    pollfd p[2] = {{listen_fd, POLLIN, 0}, {g_wake_pipe[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) continue;
    if (g_stop) break;
    if (!(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let connections finish
      }
      continue;
    }
    {
      std::lock_guard lock(g_conn_mu);
      if (g_conn_count >= kMaxConnections) {
        send_response(fd, 503, "too many connections\n", false);
        ::close(fd);
        continue;
      }
      ++g_conn_count;
      g_conn_fds.insert(fd);
    }
    try {
      std::thread(connection_thread, fd).detach();
    } catch (const std::system_error&) {
      send_response(fd, 503, "cannot serve more connections now\n", false);
      std::lock_guard lock(g_conn_mu);
      g_conn_fds.erase(fd);
      ::close(fd);
      --g_conn_count;
    }
  }

  // Clean shutdown: stop accepting, end every open connection, wait (bounded) for their threads.
  ::close(listen_fd);
  std::unique_lock lock(g_conn_mu);
  for (int fd : g_conn_fds)
    ::shutdown(fd, SHUT_RDWR);
  const bool all_done =
      g_conn_cv.wait_for(lock, std::chrono::seconds(5), [] { return g_conn_count == 0; });
  std::printf("slipway-sample-service: stopped\n");
  std::fflush(stdout);
  // A connection thread that has not finished yet must not see the globals destroyed under it.
  if (!all_done) std::_Exit(0);
  return 0;
}
