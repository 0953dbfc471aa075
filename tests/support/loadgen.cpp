#include "support/loadgen.h"

#include <csignal>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace slipway::testing {

namespace {

namespace json = boost::json;

int64_t get_i64(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}

}  // namespace

std::string LoadSummary::describe() const {
  std::string errs;
  for (const auto& [k, v] : errors)
    errs += fmt::format("{}\"{}\": {}", errs.empty() ? "" : ", ", k, v);
  return fmt::format("requests={} ok={} failed={} errors={{{}}}", requests, ok, failed, errs);
}

std::optional<LoadSummary> parse_load_summary(const std::string& line) {
  boost::system::error_code ec;
  const json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  if (!o.contains("requests") || !o.contains("ok") || !o.contains("failed")) return std::nullopt;
  LoadSummary s;
  s.requests = get_i64(o, "requests");
  s.ok = get_i64(o, "ok");
  s.failed = get_i64(o, "failed");
  s.elapsed_ms = get_i64(o, "elapsed_ms");
  s.concurrency = get_i64(o, "concurrency");
  if (const auto* e = o.if_contains("errors"); e != nullptr && e->is_object()) {
    for (const auto& [k, n] : e->as_object())
      s.errors[std::string(k)] = n.is_int64() ? n.as_int64() : 0;
  }
  s.line = line;
  while (!s.line.empty() && (s.line.back() == '\n' || s.line.back() == '\r'))
    s.line.pop_back();
  return s;
}

fs::path default_loadgen_binary() {
#ifdef SLIPWAY_LOADGEN_BIN
  return SLIPWAY_LOADGEN_BIN;
#else
  return "slipway-loadgen";
#endif
}

LoadGenerator::~LoadGenerator() {
  kill();
}

void LoadGenerator::kill() {
  process_.stop(SIGKILL, std::chrono::milliseconds(0));
}

void LoadGenerator::start(const LoadOptions& o) {
  if (process_.running()) throw std::runtime_error("the load generator runs already");
  if (o.dir.empty()) throw std::runtime_error("LoadGenerator::start: no directory");
  opts_ = o;
  fs::create_directories(o.dir);
  out_ = o.dir / "loadgen.out";
  err_ = o.dir / "loadgen.err";
  progress_ = o.dir / "loadgen.progress";
  std::error_code ec;
  fs::remove(progress_, ec);
  ChildOptions c;
  c.argv = {o.binary.string(),
            "--url",
            o.url,
            "--concurrency",
            std::to_string(o.concurrency),
            "--timeout-ms",
            std::to_string(o.request_timeout.count()),
            "--progress-file",
            progress_.string()};
  if (!o.keep_alive) c.argv.push_back("--no-keep-alive");
  c.stdout_path = out_;
  c.stderr_path = err_;
  process_.start(c);
}

LoadSummary LoadGenerator::progress() const {
  auto s = parse_load_summary(read_text(progress_));
  return s ? *s : LoadSummary{};
}

bool LoadGenerator::wait_for_requests(int64_t n, std::chrono::milliseconds timeout) {
  return poll_until(
      [&] {
        if (!process_.running()) {
          throw std::runtime_error(
              fmt::format("the load generator {}: {}", process_.describe(), tail_of(err_)));
        }
        return progress().requests >= n;
      },
      timeout);
}

bool LoadGenerator::wait_for_more_requests(int64_t n, std::chrono::milliseconds timeout) {
  return wait_for_requests(progress().requests + n, timeout);
}

LoadSummary LoadGenerator::stop() {
  // It stops within one request timeout; give it that, and more.
  const auto grace = opts_.request_timeout * 2 + std::chrono::seconds(5);
  const std::string how = process_.stop(SIGTERM, grace);
  const std::string out = read_text(out_);
  auto s = parse_load_summary(out.substr(0, out.find('\n')));
  if (process_.exit_code() != 0 || !s) {
    throw std::runtime_error(
        fmt::format("the load generator {} and printed:\n{}\n{}", how, out, tail_of(err_)));
  }
  return *s;
}

}  // namespace slipway::testing
