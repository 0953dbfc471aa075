#include "agent/health.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/strings.h"
#include "net/http_client.h"

namespace slipway::agent {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kDetailBody = 200;

// First `n` bytes of `s`, on one line.
std::string excerpt(std::string_view s, size_t n) {
  std::string out(trim(s.substr(0, n)));
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

ProbeResult probe_http(const std::string& url, Millis timeout) {
  net::HttpOptions opts;
  opts.timeout = timeout;
  opts.max_body = 1 << 20;
  auto r = net::http_request("GET", url, {}, "", opts);
  if (!r) return {false, r.error().message};
  const bool ok = r->status >= 200 && r->status < 300;
  std::string detail = fmt::format("HTTP {}", r->status);
  if (!ok && !r->body.empty()) detail += ": " + excerpt(r->body, kDetailBody);
  return {ok, detail};
}

// "host:port" or "[v6]:port".
bool split_host_port(std::string_view target, std::string& host, std::string& port) {
  if (!target.empty() && target.front() == '[') {
    const size_t close = target.find(']');
    if (close == std::string_view::npos || close + 1 >= target.size() || target[close + 1] != ':') {
      return false;
    }
    host = std::string(target.substr(1, close - 1));
    port = std::string(target.substr(close + 2));
  } else {
    const size_t colon = target.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(target.substr(0, colon));
    port = std::string(target.substr(colon + 1));
  }
  return !host.empty() && !port.empty();
}

ProbeResult probe_tcp(const std::string& target, Millis timeout) {
  std::string host, port;
  if (!split_host_port(trim(target), host, port)) {
    return {false, fmt::format("'{}' is not host:port", target)};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return {false, fmt::format("cannot resolve {}: {}", target, ::gai_strerror(rc))};
  }
  const auto deadline = SteadyClock::now() + timeout;
  std::string last = fmt::format("connect to {}: no address", target);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = fmt::format("connect to {}: {}", target, std::strerror(errno));
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    int e = rc == 0 ? 0 : errno;
    if (rc != 0 && e == EINPROGRESS) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
      pollfd pfd{fd, POLLOUT, 0};
      int pr;
      do {
        pr = ::poll(&pfd, 1, static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX)));
      } while (pr < 0 && errno == EINTR);
      if (pr == 0) {
        e = ETIMEDOUT;
      } else {
        socklen_t len = sizeof e;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
      }
    }
    ::close(fd);
    if (e == 0) {
      ::freeaddrinfo(res);
      return {true, fmt::format("connected to {}", target)};
    }
    last = e == ETIMEDOUT
               ? fmt::format("connect to {} timed out after {}", target, format_duration(timeout))
               : fmt::format("connect to {}: {}", target, std::strerror(e));
  }
  ::freeaddrinfo(res);
  return {false, last};
}

ProbeResult probe_command(const std::string& command, const ProcessSpec& ctx, Millis timeout) {
  ProcessSpec spec = ctx;
  spec.command = command;
  auto r = run_command(spec, timeout, 4096);
  if (!r) return {false, r.error().message};
  std::string detail = r->describe();
  const std::string out = excerpt(tail_bytes(r->output, kDetailBody), kDetailBody + 64);
  if (!out.empty()) detail += ": " + out;
  return {r->ok(), detail};
}

}  // namespace

ProbeResult probe_once(const artifacts::HealthCheck& check, const ProcessSpec& ctx,
                       Millis probe_timeout) {
  switch (check.kind) {
    case artifacts::HealthKind::none:
      return {true, "no health check"};
    case artifacts::HealthKind::http:
      return probe_http(check.target, probe_timeout);
    case artifacts::HealthKind::tcp:
      return probe_tcp(check.target, probe_timeout);
    case artifacts::HealthKind::command:
      return probe_command(check.target, ctx, probe_timeout);
  }
  return {false, "unknown health check kind"};
}

HealthOutcome wait_healthy(const artifacts::HealthCheck& check, const ProcessSpec& ctx,
                           const std::function<bool()>& alive, const std::atomic<bool>* cancelled) {
  const auto start = SteadyClock::now();
  const auto deadline = start + check.timeout;
  const Millis interval = std::max(check.interval, Millis(10));
  HealthOutcome out;
  auto finish = [&](bool healthy, std::string detail) {
    out.healthy = healthy;
    out.detail = std::move(detail);
    out.waited = std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
    return out;
  };
  auto is_cancelled = [&] { return cancelled != nullptr && cancelled->load(); };
  std::string last = "no probe yet";
  std::optional<SteadyClock::time_point> healthy_since;

  for (;;) {
    if (is_cancelled()) return finish(false, "cancelled; last probe: " + last);
    if (alive && !alive()) return finish(false, "process exited: last probe: " + last);
    if (check.kind == artifacts::HealthKind::none) return finish(true, "no health check");

    const auto probe_start = SteadyClock::now();
    // A probe may not run past the deadline, nor hang for much longer than the interval.
    const auto left = std::chrono::duration_cast<Millis>(deadline - probe_start);
    const Millis probe_timeout =
        std::clamp(std::min(std::max(interval, Millis(1000)), left), Millis(100), Millis(10'000));
    const ProbeResult r = probe_once(check, ctx, probe_timeout);
    ++out.probes;
    last = r.detail;
    if (r.healthy) {
      // The window opens when the first healthy probe has answered, so that (for a non-zero
      // healthy_for) at least two healthy probes, healthy_for apart, are needed.
      if (!healthy_since) healthy_since = SteadyClock::now();
      if (SteadyClock::now() - *healthy_since >= check.healthy_for) {
        // One more look, so that a process that died during the probe is not called healthy.
        if (alive && !alive()) return finish(false, "process exited: last probe: " + last);
        return finish(true, r.detail);
      }
    } else {
      healthy_since.reset();
    }
    if (SteadyClock::now() >= deadline) {
      std::string detail =
          fmt::format("not healthy after {}: {}", format_duration(check.timeout), last);
      // Healthy now, but not for long enough: say so, or "HTTP 200" reads like a contradiction.
      if (healthy_since) {
        detail += fmt::format(" (healthy for only {} of the {} that healthy_for requires)",
                              format_duration(std::chrono::duration_cast<Millis>(
                                  SteadyClock::now() - *healthy_since)),
                              format_duration(check.healthy_for));
      }
      return finish(false, detail);
    }
    // Sleep until the next probe in short slices, so that cancellation is seen promptly.
    const auto next = std::min(probe_start + interval, deadline);
    while (SteadyClock::now() < next && !is_cancelled()) {
      const auto slice = std::min<SteadyClock::duration>(next - SteadyClock::now(), Millis(50));
      std::this_thread::sleep_for(slice);
    }
  }
}

}  // namespace slipway::agent
