#include "agent/releases.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <boost/json/object.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifacts/version.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/names.h"

namespace slipway::agent {

namespace {

constexpr std::string_view kTmpMarker = ".tmp-";

Result<ReleaseState> release_state_from_name(std::string_view s) {
  if (s == "installed") return ReleaseState::installed;
  if (s == "healthy") return ReleaseState::healthy;
  if (s == "failed") return ReleaseState::failed;
  return err(Errc::invalid_argument, fmt::format("unknown release state '{}'", s));
}

json::value info_to_json(const ReleaseInfo& i) {
  return json::object{{"version", i.version},
                      {"sha256", i.sha256},
                      {"installed_at", i.installed_at},
                      {"state", release_state_name(i.state)},
                      {"reason", i.reason}};
}

Result<ReleaseInfo> info_from_json(const json::value& v, const std::string& context) {
  JsonReader r(v, context);
  ReleaseInfo i;
  i.version = r.str("version");
  i.sha256 = r.str("sha256");
  i.installed_at = r.i64_or("installed_at", 0);
  const std::string state = r.str_or("state", "installed");
  i.reason = r.str_or("reason", "");
  if (auto st = r.finish(/*allow_unknown=*/true); !st) return st.error();
  auto s = release_state_from_name(state);
  if (!s) return s.error();
  i.state = *s;
  return i;
}

Error io_error(std::string_view what, const fs::path& p, int e) {
  return err(Errc::io, fmt::format("{} {}: {}", what, p.string(), std::strerror(e)));
}

}  // namespace

std::string_view release_state_name(ReleaseState s) {
  switch (s) {
    case ReleaseState::installed:
      return "installed";
    case ReleaseState::healthy:
      return "healthy";
    case ReleaseState::failed:
      return "failed";
  }
  return "installed";
}

AppReleases::AppReleases(const fs::path& apps_root, std::string app)
    : dir_(apps_root / app), app_(std::move(app)) {}

Status AppReleases::open() {
  if (auto st = validate_name(NameKind::app, app_); !st) return st;
  if (auto st = ensure_dir(dir_ / "releases"); !st) return st;
  if (auto st = ensure_dir(dir_ / "meta"); !st) return st;
  // Temporary directories left by an unpack or a prune that a crash interrupted.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "releases", ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name.front() == '.') (void)remove_tree(e.path());
  }
  load_state();
  return {};
}

fs::path AppReleases::release_dir(const std::string& version) const {
  return dir_ / "releases" / version;
}
fs::path AppReleases::current_link() const {
  return dir_ / "current";
}
fs::path AppReleases::log_file() const {
  return dir_ / "app.log";
}
fs::path AppReleases::pid_file() const {
  return dir_ / "app.pid";
}

std::optional<std::string> AppReleases::current() const {
  std::error_code ec;
  const fs::path target = fs::read_symlink(current_link(), ec);
  if (ec) return std::nullopt;
  const std::string version = target.filename().string();
  if (version.empty() || !fs::is_directory(release_dir(version), ec)) return std::nullopt;
  return version;
}

std::optional<ReleaseInfo> AppReleases::info(const std::string& version) const {
  if (!validate_name(NameKind::version, version)) return std::nullopt;
  const fs::path meta = dir_ / "meta" / (version + ".json");
  auto text = read_file(meta, 1 << 20);
  if (!text) return std::nullopt;
  auto v = parse_json(*text, meta.string());
  if (!v) return std::nullopt;
  auto i = info_from_json(*v, meta.string());
  if (!i || i->version != version) return std::nullopt;
  return *i;
}

bool AppReleases::has_release(const std::string& version, const std::string& sha256) const {
  std::error_code ec;
  if (!fs::is_directory(release_dir(version), ec)) return false;
  auto i = info(version);
  // The metadata is written only once the release directory is complete and in place.
  return i && !sha256.empty() && i->sha256 == sha256;
}

std::vector<ReleaseInfo> AppReleases::list() const {
  std::vector<ReleaseInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "releases", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.front() == '.' || !e.is_directory(ec)) continue;
    if (auto i = info(name)) {
      out.push_back(*i);
    } else {
      // A directory without metadata (a crash between rename and metadata write): listed so
      // that prune can remove it, dated by its modification time.
      ReleaseInfo r;
      r.version = name;
      struct stat st {};
      if (::stat(e.path().c_str(), &st) == 0) {
        r.installed_at =
            static_cast<TimeMs>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      }
      out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end(), [](const ReleaseInfo& a, const ReleaseInfo& b) {
    if (a.installed_at != b.installed_at) return a.installed_at < b.installed_at;
    return artifacts::compare_versions(a.version, b.version) < 0;
  });
  return out;
}

Result<artifacts::ExtractStats> AppReleases::unpack(const std::string& version,
                                                    const std::string& sha256,
                                                    const fs::path& archive,
                                                    const artifacts::ExtractLimits& limits) {
  if (auto st = validate_name(NameKind::version, version); !st) return st.error();
  if (!is_sha256_hex(sha256)) {
    return err(Errc::invalid_argument, fmt::format("'{}' is not a SHA-256 digest", sha256));
  }
  const fs::path final_dir = release_dir(version);
  std::error_code ec;
  const bool exists = fs::exists(final_dir, ec);
  if (exists && current() == version) {
    return err(Errc::failed_precondition,
               fmt::format("release {} of {} is current and cannot be replaced", version, app_));
  }
  const fs::path tmp =
      dir_ / "releases" / fmt::format(".{}{}{}", version, kTmpMarker, random_hex(6));
  auto stats = artifacts::extract_archive(archive, tmp, limits);
  if (!stats) return stats.error();

  // Until the new metadata is written, has_release() is false for VERSION.
  const fs::path meta = dir_ / "meta" / (version + ".json");
  if (::unlink(meta.c_str()) != 0 && errno != ENOENT) {
    const int e = errno;
    (void)remove_tree(tmp);
    return io_error("cannot remove", meta, e);
  }
  if (exists) {
    // Swap the complete new tree with the old one in one step, then remove the old one.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
      const int e = errno;
      (void)remove_tree(tmp);
      return io_error("cannot replace", final_dir, e);
    }
  } else if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    const int e = errno;
    (void)remove_tree(tmp);
    return io_error("cannot move into place", final_dir, e);
  }
  (void)remove_tree(tmp);  // the old tree, after an exchange

  ReleaseInfo info;
  info.version = version;
  info.sha256 = sha256;
  info.installed_at = now_ms();
  // Keep install times strictly increasing, so that "newest" is well defined within a millisecond.
  for (const auto& r : list()) {
    if (r.version != version && r.installed_at >= info.installed_at) {
      info.installed_at = r.installed_at + 1;
    }
  }
  if (auto st = write_file_atomic(meta, to_json(info_to_json(info))); !st) return st.error();
  return *stats;
}

Status AppReleases::activate(const std::string& version) {
  if (auto st = validate_name(NameKind::version, version); !st) return st;
  std::error_code ec;
  if (!fs::is_directory(release_dir(version), ec)) {
    return err(Errc::not_found, fmt::format("release {} of {} is not on this node", version, app_));
  }
  // Relative, so that the root directory can be moved.
  return replace_symlink(current_link(), fs::path("releases") / version);
}

Status AppReleases::deactivate() {
  if (::unlink(current_link().c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", current_link(), errno);
  }
  return {};
}

Status AppReleases::mark(const std::string& version, ReleaseState state,
                         const std::string& reason) {
  auto i = info(version);
  if (!i) {
    return err(Errc::not_found,
               fmt::format("release {} of {} has no metadata on this node", version, app_));
  }
  i->state = state;
  i->reason = state == ReleaseState::failed ? reason : "";
  const fs::path meta = dir_ / "meta" / (version + ".json");
  if (auto st = write_file_atomic(meta, to_json(info_to_json(*i))); !st) return st;
  if (state == ReleaseState::healthy && last_healthy_ != version) {
    last_healthy_ = version;
    return save_state();
  }
  return {};
}

std::optional<std::string> AppReleases::last_healthy() const {
  if (last_healthy_.empty()) return std::nullopt;
  return last_healthy_;
}

int AppReleases::port() const {
  return port_;
}

Status AppReleases::set_port(int port) {
  if (port < 0 || port > 65535) {
    return err(Errc::invalid_argument, fmt::format("{} is not a port number", port));
  }
  port_ = port;
  return save_state();
}

Result<std::vector<std::string>> AppReleases::prune(int keep) {
  keep = std::max(keep, 1);
  const auto all = list();
  std::set<std::string> protect;
  if (auto c = current()) protect.insert(*c);
  if (!last_healthy_.empty()) protect.insert(last_healthy_);
  std::vector<std::string> removed;
  if (all.size() <= static_cast<size_t>(keep)) return removed;
  // Oldest first; the newest `keep` stay.
  const size_t removable = all.size() - static_cast<size_t>(keep);
  for (size_t i = 0; i < removable; ++i) {
    const std::string& v = all[i].version;
    if (protect.count(v)) continue;
    // Metadata first: a half-removed directory must never pass has_release(). The directory is
    // then moved aside (a hidden name that open() cleans up) and removed.
    const fs::path meta = dir_ / "meta" / (v + ".json");
    if (::unlink(meta.c_str()) != 0 && errno != ENOENT)
      return io_error("cannot remove", meta, errno);
    const fs::path aside = dir_ / "releases" / fmt::format(".{}.del-{}", v, random_hex(6));
    if (::rename(release_dir(v).c_str(), aside.c_str()) != 0) {
      return io_error("cannot remove", release_dir(v), errno);
    }
    if (auto st = remove_tree(aside); !st) return st.error();
    removed.push_back(v);
  }
  return removed;
}

Status AppReleases::save_state() const {
  json::object o{{"port", port_}, {"last_healthy", last_healthy_}};
  return write_file_atomic(dir_ / "state.json", to_json(o));
}

void AppReleases::load_state() {
  auto text = read_file(dir_ / "state.json", 1 << 20);
  if (!text) return;
  auto v = parse_json(*text, "state.json");
  if (!v) return;
  JsonReader r(*v, "state.json");
  const int64_t port = r.i64_or("port", 0);
  const std::string last = r.str_or("last_healthy", "");
  if (!r.finish(/*allow_unknown=*/true)) return;
  port_ = port > 0 && port <= 65535 ? static_cast<int>(port) : 0;
  last_healthy_ = validate_name(NameKind::version, last) ? last : "";
}

}  // namespace slipway::agent
