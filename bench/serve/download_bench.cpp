// slipway-bench-download: N concurrent HTTP GETs of one URL with libcurl's multi interface.
//
// Every client downloads the whole body once; bodies are counted and thrown away. The aggregate
// throughput is the bytes received by all clients divided by the wall time from the first request
// to the last byte. A transfer fails when curl reports an error, the status is not 200, or the
// body length differs from --expect-bytes (when given) or from the Content-Length.
//
//   slipway-bench-download --url URL [--clients 50] [--threads 1] [--header "K: V"]...
//                          [--expect-bytes N] [--timeout-s 600] [--buffer-kb 256]
//
// Prints one JSON object on stdout:
//   {"url":..., "clients":N, "threads":T, "bytes":B, "seconds":S, "throughput_MBps":X,
//    "failures":F, "first_done_s":..., "last_done_s":..., "errors":[...]}
// MBps is 10^6 bytes per second. The exit code is 0 when no transfer failed, 1 otherwise, 2 for bad
// usage. It never asserts anything about speed.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <curl/curl.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string url;
  int clients = 50;
  int threads = 1;
  std::vector<std::string> headers;
  int64_t expect_bytes = -1;
  long timeout_s = 600;
  long buffer_kb = 256;
};

struct Transfer {
  CURL* easy = nullptr;
  uint64_t bytes = 0;
  bool done = false;
  double done_at = 0;  // seconds since the start
  std::string error;
};

size_t on_body(char* /*data*/, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->bytes += size * nmemb;
  return size * nmemb;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\n"
               "usage: slipway-bench-download --url URL [--clients N] [--threads T]\n"
               "       [--header 'Name: value']... [--expect-bytes N] [--timeout-s S]\n"
               "       [--buffer-kb K]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + std::string(a)).c_str());
      return argv[++i];
    };
    auto number = [&]() -> long long {
      const std::string v = value();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') usage(("not a number: " + v).c_str());
      return n;
    };
    if (a == "--url")
      o.url = value();
    else if (a == "--clients")
      o.clients = static_cast<int>(number());
    else if (a == "--threads")
      o.threads = static_cast<int>(number());
    else if (a == "--header")
      o.headers.push_back(value());
    else if (a == "--expect-bytes")
      o.expect_bytes = number();
    else if (a == "--timeout-s")
      o.timeout_s = static_cast<long>(number());
    else if (a == "--buffer-kb")
      o.buffer_kb = static_cast<long>(number());
    else if (a == "-h" || a == "--help") {
      std::printf("see the comment at the top of bench/serve/download_bench.cpp\n");
      std::exit(0);
    } else
      usage(("unknown argument " + std::string(a)).c_str());
  }
  if (o.url.empty()) usage("--url is required");
  if (o.clients < 1) usage("--clients must be at least 1");
  if (o.threads < 1) o.threads = 1;
  if (o.threads > o.clients) o.threads = o.clients;
  if (o.buffer_kb < 1) o.buffer_kb = 1;
  return o;
}

// Runs `transfers` to completion on one multi handle.
void run_multi(const Options& o, std::vector<Transfer*> transfers, Clock::time_point start) {
  CURLM* multi = curl_multi_init();
  curl_slist* hdrs = nullptr;
  for (const auto& h : o.headers)
    hdrs = curl_slist_append(hdrs, h.c_str());
  for (auto* t : transfers) {
    CURL* e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, o.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, o.buffer_kb * 1024L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, o.timeout_s);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);  // one connection per downloader
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, nullptr);
    curl_multi_add_handle(multi, e);
  }
  int running = 0;
  do {
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc == CURLM_OK && running > 0) mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    if (mc != CURLM_OK) {
      for (auto* t : transfers)
        if (!t->done) t->error = std::string("curl multi: ") + curl_multi_strerror(mc);
      break;
    }
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      t->done = true;
      t->done_at = std::chrono::duration<double>(Clock::now() - start).count();
      long status = 0;
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      curl_off_t clen = -1;
      curl_easy_getinfo(m->easy_handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
      if (m->data.result != CURLE_OK) {
        t->error = curl_easy_strerror(m->data.result);
      } else if (status != 200) {
        t->error = "HTTP status " + std::to_string(status);
      } else if (o.expect_bytes >= 0 && t->bytes != static_cast<uint64_t>(o.expect_bytes)) {
        t->error = "got " + std::to_string(t->bytes) + " bytes, expected " +
                   std::to_string(o.expect_bytes);
      } else if (clen >= 0 && t->bytes != static_cast<uint64_t>(clen)) {
        t->error =
            "got " + std::to_string(t->bytes) + " bytes, Content-Length " + std::to_string(clen);
      }
    }
  } while (running > 0);
  for (auto* t : transfers) {
    if (!t->done && t->error.empty()) t->error = "transfer did not finish";
    curl_multi_remove_handle(multi, t->easy);
    curl_easy_cleanup(t->easy);
    t->easy = nullptr;
  }
  curl_slist_free_all(hdrs);
  curl_multi_cleanup(multi);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "error: curl_global_init failed\n");
    return 1;
  }
  std::vector<Transfer> transfers(static_cast<size_t>(o.clients));
  std::vector<std::vector<Transfer*>> shards(static_cast<size_t>(o.threads));
  for (size_t i = 0; i < transfers.size(); ++i)
    shards[i % shards.size()].push_back(&transfers[i]);

  const auto start = Clock::now();
  if (shards.size() == 1) {
    run_multi(o, shards[0], start);
  } else {
    std::vector<std::thread> threads;
    for (auto& s : shards)
      threads.emplace_back(run_multi, std::cref(o), s, start);
    for (auto& t : threads)
      t.join();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  uint64_t bytes = 0;
  int failures = 0;
  double first_done = 0, last_done = 0;
  bool any_done = false;
  std::vector<std::string> errors;
  for (const auto& t : transfers) {
    bytes += t.bytes;
    if (!t.error.empty()) {
      ++failures;
      if (std::find(errors.begin(), errors.end(), t.error) == errors.end() && errors.size() < 10)
        errors.push_back(t.error);
    }
    if (t.done) {
      first_done = any_done ? std::min(first_done, t.done_at) : t.done_at;
      last_done = std::max(last_done, t.done_at);
      any_done = true;
    }
  }
  const double mbps = seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0.0;
  std::printf(
      "{\"url\": \"%s\", \"clients\": %d, \"threads\": %d, \"bytes\": %llu, \"seconds\": %.6f, "
      "\"throughput_MBps\": %.2f, \"failures\": %d, \"first_done_s\": %.6f, "
      "\"last_done_s\": %.6f, \"errors\": [",
      json_escape(o.url).c_str(), o.clients, o.threads, static_cast<unsigned long long>(bytes),
      seconds, mbps, failures, first_done, last_done);
  for (size_t i = 0; i < errors.size(); ++i)
    std::printf("%s\"%s\"", i ? ", " : "", json_escape(errors[i]).c_str());
  std::printf("]}\n");
  curl_global_cleanup();
  return failures == 0 ? 0 : 1;
}
