// slipway-loadgen: continuous HTTP GETs of one URL over C concurrent keep-alive connections, until
// told to stop; then one JSON line with what happened. For the end-to-end tests of deploys behind
// a load balancer (tests/support/loadgen.h starts it and reads its answer).
//
//   slipway-loadgen --url URL [--concurrency C] [--duration-ms N] [--stop-file PATH]
//                   [--timeout-ms N] [--progress-file PATH] [--no-keep-alive]
//
// It stops on SIGTERM or SIGINT, when PATH exists (--stop-file), or after N ms (--duration-ms),
// whichever comes first; requests in flight then finish (each is bounded by --timeout-ms, 5000 by
// default). Then it prints exactly one line to standard output and exits 0:
//
//   {"requests":N,"ok":N,"failed":N,"elapsed_ms":N,"concurrency":C,"errors":{"HTTP 503":2}}
//
// requests = ok + failed. A request failed when it did not get a complete answer (connection
// refused or reset, timeout, broken answer) or its status is not 2xx. `errors` counts the failures
// by kind ("HTTP 503", "curl: Couldn't connect to server", ...), the first 10 distinct kinds;
// later kinds are counted under "other". Each connection's first failure is also printed to
// standard error, with curl's detailed message.
//
// With --progress-file it rewrites PATH (atomically, by rename) every 100 ms with the same JSON, so
// that a test can wait until requests flow. Bad usage exits 2, a failed start 1.
//
// Every connection is one thread with one libcurl handle, which keeps its connection alive between
// requests and opens a new one when the peer closed it. Like any keep-alive client, libcurl sends
// a request again, once, on a fresh connection when a reused one turns out to be closed before a
// single byte of the answer came (the race between a request and the peer's close of an idle
// connection); with --no-keep-alive every request has a connection of its own, and there is no
// such resend.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr int kExitStart = 1;
constexpr size_t kMaxErrorKinds = 10;

struct Options {
  std::string url;
  int concurrency = 4;
  long duration_ms = -1;
  std::string stop_file;
  long timeout_ms = 5'000;
  std::string progress_file;
  bool keep_alive = true;
};

std::atomic<bool> g_stop{false};
std::atomic<int64_t> g_ok{0};
std::atomic<int64_t> g_failed{0};
std::mutex g_errors_mu;
std::map<std::string, int64_t> g_errors;  // guarded by g_errors_mu

void record_failure(const std::string& kind) {
  g_failed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(g_errors_mu);
  if (g_errors.contains(kind) || g_errors.size() < kMaxErrorKinds) {
    ++g_errors[kind];
  } else {
    ++g_errors["other"];
  }
}

size_t discard_body(char*, size_t size, size_t nmemb, void*) {
  return size * nmemb;
}

void connection_thread(const Options& o, int index) {
  CURL* e = curl_easy_init();
  if (e == nullptr) {
    record_failure("curl: cannot create a handle");
    return;
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_URL, o.url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o.timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o.timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  if (!o.keep_alive) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }
  bool told = false;
  while (!g_stop.load(std::memory_order_relaxed)) {
    errbuf[0] = '\0';
    const CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    std::string kind;
    std::string detail;
    if (rc != CURLE_OK) {
      kind = std::string("curl: ") + curl_easy_strerror(rc);
      detail = errbuf[0] != '\0' ? errbuf : kind;
    } else if (status < 200 || status > 299) {
      kind = "HTTP " + std::to_string(status);
      detail = kind;
    }
    if (kind.empty()) {
      g_ok.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    record_failure(kind);
    if (!told) {
      std::fprintf(stderr, "slipway-loadgen: connection %d: first failure: %s\n", index,
                   detail.c_str());
      told = true;
    }
  }
  curl_easy_cleanup(e);
}

std::string summary(const Options& o, Clock::time_point started) {
  const int64_t ok = g_ok.load();
  const int64_t failed = g_failed.load();
  json::object errors;
  {
    std::lock_guard lock(g_errors_mu);
    for (const auto& [k, v] : g_errors)
      errors[k] = v;
  }
  json::object out;
  out["requests"] = ok + failed;
  out["ok"] = ok;
  out["failed"] = failed;
  out["elapsed_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  out["concurrency"] = o.concurrency;
  out["errors"] = std::move(errors);
  return json::serialize(out);
}

void write_progress(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text << "\n";
    if (!f) return;
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"slipway-loadgen: continuous HTTP GETs of one URL, then one JSON line"};
  app.add_option("--url", o.url, "The URL to GET")->required();
  app.add_option("--concurrency", o.concurrency, "Connections, each one request at a time")
      ->check(CLI::Range(1, 1000));
  app.add_option("--duration-ms", o.duration_ms, "Stop after this long (default: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stop-file", o.stop_file, "Stop once this file exists");
  app.add_option("--timeout-ms", o.timeout_ms, "The limit of one request, connecting included")
      ->check(CLI::Range(1L, 1L << 30));
  app.add_option("--progress-file", o.progress_file, "Rewrite this file with counts every 100 ms");
  bool no_keep_alive = false;
  app.add_flag("--no-keep-alive", no_keep_alive, "A new connection for every request");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // bad usage, whatever CLI11's own code for the error
  }
  o.keep_alive = !no_keep_alive;

  // Signals are taken by the main thread only (every thread started later inherits the mask).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "slipway-loadgen: curl_global_init failed\n");
    return kExitStart;
  }

  const auto started = Clock::now();
  std::vector<std::thread> threads;
  try {
    for (int i = 0; i < o.concurrency; ++i)
      threads.emplace_back(connection_thread, std::cref(o), i);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "slipway-loadgen: cannot start a thread: %s\n", e.what());
    g_stop = true;
    for (auto& t : threads)
      t.join();
    return kExitStart;
  }

  for (;;) {
    timespec ts{0, 100'000'000};
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) break;
    if (o.duration_ms >= 0 && Clock::now() - started >= std::chrono::milliseconds(o.duration_ms)) {
      break;
    }
    if (!o.stop_file.empty() && std::filesystem::exists(o.stop_file)) break;
    if (!o.progress_file.empty()) write_progress(o.progress_file, summary(o, started));
  }
  g_stop = true;
  for (auto& t : threads)
    t.join();
  const std::string line = summary(o, started);
  if (!o.progress_file.empty()) write_progress(o.progress_file, line);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  curl_global_cleanup();
  return 0;
}
