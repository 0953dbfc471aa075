// The releases of one app on one node:
//
//   ROOT/apps/APP/releases/VERSION/     unpacked artifact (never modified after unpacking)
//   ROOT/apps/APP/current -> releases/VERSION   switched atomically (rename of a new link)
//   ROOT/apps/APP/meta/VERSION.json     sha256, installed_at, state ("installed", "healthy",
//                                       "failed"), reason
//   ROOT/apps/APP/state.json            port, last_healthy version
//   ROOT/apps/APP/app.log, app.pid      output and pid of the supervised process
//
// Metadata lives outside the release directory so the app cannot change it.
// Thread-safety: none; the runtime serialises all work on one app.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "artifacts/archive.h"
#include "common/clock.h"
#include "common/error.h"

namespace slipway::agent {

namespace fs = std::filesystem;

enum class ReleaseState { installed, healthy, failed };
std::string_view release_state_name(ReleaseState s);

struct ReleaseInfo {
  std::string version;
  std::string sha256;
  TimeMs installed_at = 0;
  ReleaseState state = ReleaseState::installed;
  std::string reason;  // why it failed
};

class AppReleases {
 public:
  AppReleases(const fs::path& apps_root, std::string app);  // apps_root = ROOT/apps

  Status open();  // creates the directories

  const fs::path& dir() const { return dir_; }
  fs::path release_dir(const std::string& version) const;
  fs::path current_link() const;
  fs::path log_file() const;
  fs::path pid_file() const;

  // The version `current` points to, if any.
  std::optional<std::string> current() const;
  // True when releases/VERSION is on disk, complete, and was unpacked from `sha256`.
  bool has_release(const std::string& version, const std::string& sha256) const;
  // Releases on disk, oldest install first.
  std::vector<ReleaseInfo> list() const;
  std::optional<ReleaseInfo> info(const std::string& version) const;

  // Unpacks `archive` into releases/VERSION (through a temporary directory that is renamed into
  // place, so a release directory is always complete). An existing directory for VERSION is
  // replaced unless it is current.
  Result<artifacts::ExtractStats> unpack(const std::string& version, const std::string& sha256,
                                         const fs::path& archive,
                                         const artifacts::ExtractLimits& limits = {});
  Status activate(const std::string& version);  // switch `current` atomically
  Status deactivate();                          // remove `current`
  Status mark(const std::string& version, ReleaseState state, const std::string& reason = "");

  std::optional<std::string> last_healthy() const;
  int port() const;  // 0 when none assigned yet
  Status set_port(int port);

  // Keeps the newest `keep` releases (by install time) and removes older ones, but never the
  // current release nor the last healthy one. Returns the versions removed.
  Result<std::vector<std::string>> prune(int keep);

 private:
  Status save_state() const;
  void load_state();

  fs::path dir_;
  std::string app_;
  int port_ = 0;
  std::string last_healthy_;
};

}  // namespace slipway::agent
