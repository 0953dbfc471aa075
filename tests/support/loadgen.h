// LoadGenerator: slipway-loadgen (tests/tools/loadgen.cpp) as a child process: continuous HTTP
// GETs of one URL over keep-alive connections while a test does something (a deploy, a drain),
// then the count of requests made and failed.
//
// Helpers throw std::runtime_error when they cannot do what they say. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "support/child_process.h"

namespace slipway::testing {

// The JSON line slipway-loadgen prints, or its progress file.
struct LoadSummary {
  int64_t requests = 0;  // ok + failed
  int64_t ok = 0;
  int64_t failed = 0;  // no complete answer (refused, reset, timeout) or not 2xx
  int64_t elapsed_ms = 0;
  int64_t concurrency = 0;
  std::map<std::string, int64_t> errors;  // kind ("HTTP 503", "curl: ...") -> count
  std::string line;                       // the JSON as printed
  // "requests=N ok=N failed=N errors={...}", for messages and logs.
  std::string describe() const;
};

// Parses one summary line; nullopt when it is not one.
std::optional<LoadSummary> parse_load_summary(const std::string& line);

// Where the build put slipway-loadgen.
fs::path default_loadgen_binary();

struct LoadOptions {
  std::string url;  // e.g. HaproxyFixture::frontend_url() + "/"
  int concurrency = 4;
  std::chrono::milliseconds request_timeout{5'000};
  bool keep_alive = true;
  fs::path dir;  // created when missing: loadgen.out, loadgen.err, loadgen.progress
  fs::path binary = default_loadgen_binary();
};

class LoadGenerator {
 public:
  LoadGenerator() = default;
  ~LoadGenerator();  // kills it if it still runs
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Starts it (no --duration-ms: it runs until stop()). Returns at once; wait_for_requests tells
  // when requests flow.
  void start(const LoadOptions& o);

  // What it has done so far (its progress file, rewritten every 100 ms; zeros before the first).
  LoadSummary progress() const;
  // Polls until at least `n` requests have finished (ok or failed), counted from the start;
  // returns whether that came within `timeout`. Throws when the load generator has exited.
  bool wait_for_requests(int64_t n, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits until `n` more requests than now have finished; see wait_for_requests.
  bool wait_for_more_requests(int64_t n,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // SIGTERM, waits for it (requests in flight finish, each bounded by request_timeout), and
  // returns its summary. Throws when it did not exit 0 with a summary line. Call once.
  LoadSummary stop();
  // Stops it at once (SIGKILL), for a test that is cleaning up. Idempotent.
  void kill();

  const fs::path& stdout_path() const { return out_; }
  const fs::path& stderr_path() const { return err_; }

 private:
  LoadOptions opts_;
  fs::path out_, err_, progress_;
  ChildProcess process_;
};

}  // namespace slipway::testing
