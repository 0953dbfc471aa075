// Helpers shared by the agent's unit tests: temporary directories, waiting for a condition,
// checking that a process is gone, release archives, a local Fetcher and a recording StepSink.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent/node_runtime.h"
#include "artifacts/archive.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "support/temp_dir.h"

namespace slipway::agent::testing {

namespace fs = std::filesystem;

using slipway::testing::TempDir;

// Polls `pred` until it holds or `limit` passes (a bound against hanging, not a timing check).
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// The process no longer runs: it does not exist, or it is a zombie waiting to be reaped.
inline bool process_gone(pid_t pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  // read(2), not iostreams: reading the stat of a process that just vanished fails with ESRCH.
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return true;
  const std::string stat(buf, static_cast<size_t>(n));
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline int count_of(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

struct BuiltRelease {
  fs::path archive;
  std::string sha256;
};

inline artifacts::ArchiveEntry file_entry(std::string path, std::string content,
                                          unsigned mode = 0644) {
  artifacts::ArchiveEntry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.mode = mode;
  return e;
}

inline artifacts::ArchiveEntry dir_entry(std::string path) {
  artifacts::ArchiveEntry e;
  e.path = std::move(path);
  e.type = artifacts::EntryType::directory;
  e.mode = 0755;
  return e;
}

// A release archive holding slipway.yaml and whatever other files are given.
inline BuiltRelease build_release(const fs::path& out, const std::string& manifest,
                                  const std::map<std::string, std::string>& scripts = {}) {
  std::vector<artifacts::ArchiveEntry> entries;
  entries.push_back(file_entry("slipway.yaml", manifest));
  bool has_bin = false;
  for (const auto& [path, content] : scripts) {
    if (path.rfind("bin/", 0) == 0 && !has_bin) {
      entries.push_back(dir_entry("bin"));
      has_bin = true;
    }
    entries.push_back(file_entry(path, content, 0755));
  }
  auto st = artifacts::write_tar_gz(out, entries);
  if (!st) throw std::runtime_error(st.error().message);
  auto sha = sha256_file(out);
  if (!sha) throw std::runtime_error(sha.error().message);
  return {out, *sha};
}

// Fetches by copying the archive registered under the command's sha256 (or a fixed file).
class LocalFetcher : public Fetcher {
 public:
  void add(const std::string& sha256, const fs::path& file) {
    std::lock_guard lk(mu_);
    files_[sha256] = file;
  }
  Status fetch(const protocol::InstallCommand& cmd, const fs::path& dest) override {
    ++calls;
    fs::path src;
    {
      std::lock_guard lk(mu_);
      auto it = files_.find(cmd.sha256);
      if (it == files_.end()) return err(Errc::not_found, "no such artifact: " + cmd.sha256);
      src = it->second;
    }
    if (fail_after_bytes >= 0) {
      // A connection that breaks: part of the bytes land, then an error.
      auto content = read_file(src);
      if (!content) return content.error();
      std::ofstream(dest, std::ios::binary | std::ios::app)
          .write(content->data(),
                 std::min<std::streamsize>(fail_after_bytes,
                                           static_cast<std::streamsize>(content->size())));
      return err(Errc::unavailable, "connection reset by peer");
    }
    std::error_code ec;
    fs::copy_file(src, dest, fs::copy_options::overwrite_existing, ec);
    if (ec) return err(Errc::io, ec.message());
    return {};
  }
  std::atomic<int> calls{0};
  std::atomic<int64_t> fail_after_bytes{-1};

 private:
  std::mutex mu_;
  std::map<std::string, fs::path> files_;
};

class RecordingSink : public StepSink {
 public:
  void step(const protocol::StepEvent& e) override {
    std::lock_guard lk(mu_);
    events_.push_back(e);
  }
  std::vector<protocol::StepEvent> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  // The final status of `step` ("" when never reported), and its output.
  std::string status(const std::string& step) const {
    std::lock_guard lk(mu_);
    std::string s;
    for (const auto& e : events_) {
      if (e.step == step && e.status != protocol::StepStatus::started) {
        s = std::string(protocol::step_status_name(e.status));
      }
    }
    return s;
  }
  std::string output(const std::string& step) const {
    std::lock_guard lk(mu_);
    std::string s;
    for (const auto& e : events_) {
      if (e.step == step && e.status != protocol::StepStatus::started) s = e.output;
    }
    return s;
  }
  // Names of finished steps in order, "name=status".
  std::vector<std::string> sequence() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& e : events_) {
      if (e.status != protocol::StepStatus::started) {
        out.push_back(e.step + "=" + std::string(protocol::step_status_name(e.status)));
      }
    }
    return out;
  }
  void clear() {
    std::lock_guard lk(mu_);
    events_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<protocol::StepEvent> events_;
};

}  // namespace slipway::agent::testing
