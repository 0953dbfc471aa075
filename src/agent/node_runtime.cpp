#include "agent/node_runtime.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>

#include <arpa/inet.h>
#include <boost/json/object.hpp>
#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/config_files.h"
#include "agent/health.h"
#include "agent/process.h"
#include "agent/releases.h"
#include "agent/supervisor.h"
#include "artifacts/manifest.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/names.h"
#include "common/strings.h"

namespace slipway::agent {

namespace {

using protocol::StepStatus;
using SteadyClock = std::chrono::steady_clock;

constexpr Millis kProbeTimeout{2000};
constexpr Millis kDefaultStopTimeout{10'000};
constexpr size_t kStepOutputMax = 64 * 1024;

// One step of a command: reports `started` at construction and exactly one outcome later.
class Step {
 public:
  Step(StepSink& sink, const std::string& action, std::string name)
      : sink_(sink),
        action_(action),
        name_(std::move(name)),
        started_at_(now_ms()),
        t0_(SteadyClock::now()) {
    emit(StepStatus::started, "");
  }
  ~Step() {
    if (!done_) emit(StepStatus::failed, "interrupted");
  }
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;

  void ok(std::string_view output) { emit(StepStatus::ok, output); }
  void failed(std::string_view output) { emit(StepStatus::failed, output); }
  void skipped(std::string_view output) { emit(StepStatus::skipped, output); }

 private:
  void emit(StepStatus status, std::string_view output) {
    protocol::StepEvent e;
    e.action = action_;
    e.step = name_;
    e.status = status;
    e.output = tail_bytes(output, kStepOutputMax);
    e.started_at = started_at_;
    if (status != StepStatus::started) {
      done_ = true;
      e.duration_ms = std::chrono::duration_cast<Millis>(SteadyClock::now() - t0_).count();
    }
    sink_.step(e);
  }

  StepSink& sink_;
  const std::string& action_;
  std::string name_;
  TimeMs started_at_;
  SteadyClock::time_point t0_;
  bool done_ = false;
};

// A free TCP port on `address`, found by binding port 0 (the kernel's choice).
Result<int> find_free_port(const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(address.c_str(), "0", &hints, &res); rc != 0) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not an IP address: {}", address, ::gai_strerror(rc)));
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return err(Errc::io, fmt::format("cannot create a socket: {}", std::strerror(errno)));
  }
  const int rc = ::bind(fd, res->ai_addr, res->ai_addrlen);
  const int bind_errno = errno;
  ::freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (rc != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd);
    return err(Errc::io, fmt::format("cannot find a free port on {}: {}", address,
                                     std::strerror(rc != 0 ? bind_errno : errno)));
  }
  ::close(fd);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Everything needed to run one release of one app: its manifest, its variables and the
// context (working directory, environment) of its hooks, process and health commands.
struct Launch {
  std::string version;
  artifacts::Manifest manifest;
  std::map<std::string, std::string> vars;
  ProcessSpec ctx;

  std::string expand(std::string_view s) const {
    return expand_vars(s, [this](const std::string& name) -> const std::string* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : &it->second;
    });
  }
  bool supervised() const { return !manifest.start.empty(); }
  ProcessSpec spec(const std::string& command) const {
    ProcessSpec s = ctx;
    s.command = expand(command);
    return s;
  }
  artifacts::HealthCheck health() const {
    artifacts::HealthCheck h = manifest.health;
    h.target = expand(h.target);
    return h;
  }
};

std::string hook_step(std::string_view hook) {
  return "hook:" + std::string(hook);
}

std::string with_reason(std::string_view output, std::string_view reason) {
  std::string out(output);
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out + std::string(reason);
}

}  // namespace

struct NodeRuntime::Impl {
  struct AppEntry {
    std::unique_ptr<AppReleases> rel;
    bool busy = false;
    bool healthy = false;
    bool running = false;
    std::optional<Launch> launch;  // of the current release, once known
    protocol::AppState snapshot;   // what app_states() reports while the app is busy
  };

  Impl(NodeIdentity ident, Fetcher& f) : id(std::move(ident)), fetcher(f) {
    if (id.address.empty()) id.address = "127.0.0.1";
    apps_root = id.root / "apps";
    downloads = id.root / "downloads";
  }

  NodeIdentity id;
  Fetcher& fetcher;
  fs::path apps_root;
  fs::path downloads;
  Supervisor sup;
  std::atomic<bool> shutting_down{false};
  mutable std::mutex mu;
  std::map<std::string, std::unique_ptr<AppEntry>> apps;

  // With `mu` held: the entry of `app`, created (and its directories opened) on first use.
  Result<AppEntry*> entry_locked(const std::string& app) {
    if (auto it = apps.find(app); it != apps.end()) return it->second.get();
    if (auto st = validate_name(NameKind::app, app); !st) return st.error();
    auto e = std::make_unique<AppEntry>();
    e->rel = std::make_unique<AppReleases>(apps_root, app);
    if (auto st = e->rel->open(); !st) return st.error();
    e->snapshot = state_of(app, *e);
    return apps.emplace(app, std::move(e)).first->second.get();
  }

  // Marks `app` busy for the caller; fails at once when another operation holds it.
  Result<AppEntry*> acquire(const std::string& app) {
    std::lock_guard lk(mu);
    auto e = entry_locked(app);
    if (!e) return e.error();
    if ((*e)->busy) {
      return err(Errc::conflict, fmt::format("busy: another operation on {} is running", app));
    }
    (*e)->busy = true;
    return *e;
  }

  void release(const std::string& app, AppEntry& e) {
    std::lock_guard lk(mu);
    e.snapshot = state_of(app, e);
    e.busy = false;
  }

  // Reads the state of one app; the caller holds `mu` and the app is not used by anyone else.
  protocol::AppState state_of(const std::string& app, const AppEntry& e) const {
    protocol::AppState s;
    s.app = app;
    s.version = e.rel->current().value_or("");
    s.healthy = !s.version.empty() && e.healthy;
    s.running = !s.version.empty() && e.running;
    s.port = e.rel->port();
    for (const auto& r : e.rel->list())
      s.releases.push_back(r.version);
    s.last_healthy = e.rel->last_healthy().value_or("");
    return s;
  }

  std::vector<std::string> app_dirs() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(apps_root, ec)) {
      const std::string name = d.path().filename().string();
      if (d.is_directory(ec) && validate_name(NameKind::app, name)) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // The extra environment the server sent with the install of a release (its per-environment
  // config, secrets included), kept in the release for restarts of the agent and for going back
  // to it: readable by the agent's user only. Releases installed before it was kept there fall
  // back to the app's env.json.
  static fs::path env_file(const AppReleases& rel, const std::string& version) {
    return rel.release_dir(version) / ".slipway-env.json";
  }

  std::map<std::string, std::string> load_env(const AppReleases& rel,
                                              const std::string& version) const {
    std::map<std::string, std::string> out;
    auto text = read_file(env_file(rel, version), 1 << 20);
    if (!text) text = read_file(rel.dir() / "env.json", 1 << 20);
    if (!text) return out;
    auto v = parse_json(*text, "env.json");
    if (!v || !v->is_object()) return out;
    for (const auto& [k, val] : v->as_object()) {
      if (val.is_string()) out[std::string(k)] = std::string(val.as_string());
    }
    return out;
  }

  static Status save_env(const AppReleases& rel, const std::string& version,
                         const std::map<std::string, std::string>& env) {
    json::object o;
    for (const auto& [k, v] : env)
      o[k] = v;
    return write_file_atomic(env_file(rel, version), to_json(o), 0600);
  }

  // Reads the manifest of releases/VERSION and builds its launch. With `assign_port`, an app
  // without a port gets a free one, persisted.
  Result<Launch> load_launch(const std::string& app, AppReleases& rel, const std::string& version,
                             const std::map<std::string, std::string>& extra_env,
                             bool assign_port) {
    const fs::path dir = rel.release_dir(version);
    auto text = read_file(dir / "slipway.yaml", 1 << 20);
    if (!text) {
      return err(Errc::invalid_argument, fmt::format("release {} has no readable slipway.yaml: {}",
                                                     version, text.error().message));
    }
    auto m = artifacts::parse_manifest(*text);
    if (!m) return m.error();
    Launch l;
    l.version = version;
    l.manifest = std::move(*m);
    int port = l.manifest.port.value_or(0);
    if (port == 0) port = rel.port();
    if (port == 0 && assign_port) {
      auto p = find_free_port(id.address);
      if (!p) return p.error();
      port = *p;
    }
    if (assign_port && port != rel.port()) {
      if (auto st = rel.set_port(port); !st) return st.error();
    }
    std::error_code ec;
    const fs::path abs_dir = fs::absolute(dir, ec);
    l.vars = {{"SLIPWAY_ADDRESS", id.address},
              {"SLIPWAY_PORT", std::to_string(port)},
              {"SLIPWAY_APP", app},
              {"SLIPWAY_VERSION", version},
              {"SLIPWAY_ENV", id.env},
              {"SLIPWAY_NODE", id.name},
              {"SLIPWAY_RELEASE_DIR", (ec ? dir : abs_dir).string()}};
    // The manifest's env, then the server's, then the SLIPWAY_* variables, which always win; the
    // child gets them on top of the few it inherits (child_environment), never the rest of ours.
    for (const auto& [k, v] : l.manifest.env)
      l.ctx.env[k] = l.expand(v);
    for (const auto& [k, v] : extra_env)
      l.ctx.env[k] = v;
    for (const auto& [k, v] : l.vars)
      l.ctx.env[k] = v;
    l.ctx.cwd = ec ? dir : abs_dir;
    return l;
  }

  // Runs hook `name` of `l`, reported as step "hook:NAME"; no step when the manifest has none.
  Status run_hook(StepSink& sink, const std::string& action, const Launch& l,
                  std::string_view name) {
    auto it = l.manifest.hooks.find(std::string(name));
    if (it == l.manifest.hooks.end() || trim(it->second).empty()) return {};
    Step step(sink, action, hook_step(name));
    auto r = run_command(l.spec(it->second), l.manifest.hook_timeout);
    if (!r) {
      step.failed(r.error().message);
      return err(Errc::deploy_failed,
                 fmt::format("hook {} of {} failed: {}", name, l.version, r.error().message));
    }
    if (!r->ok()) {
      step.failed(with_reason(r->output, r->describe()));
      return err(Errc::deploy_failed,
                 fmt::format("hook {} of {} failed: {}", name, l.version, r->describe()));
    }
    step.ok(r->output);
    return {};
  }

  // Runs a hook inside another step (the revert): output goes into `log`.
  Status run_hook_quiet(const Launch& l, std::string_view name, std::string& log) {
    auto it = l.manifest.hooks.find(std::string(name));
    if (it == l.manifest.hooks.end() || trim(it->second).empty()) return {};
    auto r = run_command(l.spec(it->second), l.manifest.hook_timeout);
    if (!r) return r.error();
    log += fmt::format("hook {}: {}\n", name, r->describe());
    if (!r->output.empty()) log += with_reason(r->output, "");
    if (!r->ok()) {
      return err(Errc::deploy_failed,
                 fmt::format("hook {} of {} failed: {}", name, l.version, r->describe()));
    }
    return {};
  }

  // Starts release `l` of `app`: the supervised process, or the restart command. Returns a line
  // for the step output.
  Result<std::string> start_app(const std::string& app, AppEntry& e, const Launch& l) {
    if (shutting_down) return err(Errc::failed_precondition, "the agent is shutting down");
    if (l.supervised()) {
      const ProcessSpec spec = l.spec(l.manifest.start);
      if (auto st = sup.start(app, spec, e.rel->log_file(), e.rel->pid_file()); !st) {
        return st.error();
      }
      e.running = true;
      const auto s = sup.status(app);
      return fmt::format("started pid {}: {}\noutput goes to {}", s.pid, spec.command,
                         e.rel->log_file().string());
    }
    auto r = run_command(l.spec(l.manifest.restart), l.manifest.hook_timeout);
    if (!r) return r.error();
    if (!r->ok()) {
      return err(Errc::deploy_failed, with_reason(r->output, "restart command " + r->describe()));
    }
    e.running = true;
    return with_reason(r->output, "restart command " + r->describe());
  }

  // Stops what runs for `app`: the supervised process (whatever release it belongs to) and, for
  // an app started by a restart command, the manifest's stop command if it has one.
  Result<std::string> stop_app(const std::string& app, AppEntry& e, const Launch* l) {
    std::string out;
    const auto before = sup.status(app);
    const Millis timeout = l ? l->manifest.stop_timeout : kDefaultStopTimeout;
    if (auto st = sup.stop(app, timeout); !st) return st.error();
    if (before.running) {
      out += fmt::format("stopped pid {}\n", before.pid);
    }
    if (l && !l->supervised() && !l->manifest.stop.empty()) {
      auto r = run_command(l->spec(l->manifest.stop), l->manifest.stop_timeout);
      if (!r) return r.error();
      if (!r->ok()) {
        return err(Errc::deploy_failed, with_reason(r->output, "stop command " + r->describe()));
      }
      out += with_reason(r->output, "stop command " + r->describe()) + "\n";
    }
    e.running = false;
    e.healthy = false;
    if (out.empty()) out = "nothing was running";
    return out;
  }

  // Waits for release `l` of `app` to become healthy.
  HealthOutcome health_of(const std::string& app, const Launch& l) {
    std::function<bool()> alive = [] { return true; };
    if (l.supervised()) {
      // A process that has died (even if restarted since) during the wait is a failure.
      alive = [this, app] {
        const auto s = sup.status(app);
        return s.running && s.restarts == 0;
      };
    }
    HealthOutcome h = wait_healthy(l.health(), l.ctx, alive, &shutting_down);
    constexpr std::string_view kExited = "process exited: ";
    if (!h.healthy && h.detail.rfind(kExited, 0) == 0) {
      const auto s = sup.status(app);
      h.detail = fmt::format("process exited ({}) before it was healthy; {}",
                             s.last_exit.empty() ? "status unknown" : s.last_exit,
                             h.detail.substr(kExited.size()));
    }
    return h;
  }

  static std::string health_text(const HealthOutcome& h) {
    return fmt::format("{} after {} ({} probe{}): {}", h.healthy ? "healthy" : "unhealthy",
                       format_duration(h.waited), h.probes, h.probes == 1 ? "" : "s", h.detail);
  }

  protocol::InstallResult install(const protocol::InstallCommand& cmd, StepSink& sink);
  protocol::InstallResult deactivate(const protocol::DeactivateCommand& cmd, StepSink& sink);
  void revert(const protocol::InstallCommand& cmd, StepSink& sink, AppEntry& e,
              const std::optional<std::string>& prev, const std::optional<Launch>& next,
              protocol::InstallResult& res);
};

// Goes back to `prev` after a failure of release cmd.version that may have touched what was
// running. Reported as one step, "revert".
void NodeRuntime::Impl::revert(const protocol::InstallCommand& cmd, StepSink& sink, AppEntry& e,
                               const std::optional<std::string>& prev,
                               const std::optional<Launch>& next, protocol::InstallResult& res) {
  AppReleases& rel = *e.rel;
  Step step(sink, cmd.action, "revert");
  std::string log;
  if (!prev) {
    auto stopped = stop_app(cmd.app, e, next ? &*next : nullptr);
    (void)rel.deactivate();
    e.launch.reset();
    log = fmt::format("no previous release to go back to: stopped {} and removed `current`",
                      cmd.version);
    if (!stopped) log += "\nstop: " + stopped.error().message;
    if (stopped)
      step.ok(log);
    else
      step.failed(log);
    return;
  }
  if (*prev == cmd.version) {
    // A redeploy of the current release failed: there is nothing else to go back to.
    step.skipped(
        fmt::format("{} was already the current release; nothing to go back to", cmd.version));
    return;
  }
  res.reverted_to = *prev;
  auto fail = [&](std::string_view why) {
    e.healthy = false;
    step.failed(with_reason(log, fmt::format("could not bring {} back: {}", *prev, why)));
  };
  if (auto stopped = stop_app(cmd.app, e, next ? &*next : nullptr); stopped) {
    log += "stop " + cmd.version + ": " + *stopped + "\n";
  } else {
    return fail(stopped.error().message);
  }
  if (auto st = rel.activate(*prev); !st) return fail(st.error().message);
  log += fmt::format("switched `current` back to {}\n", *prev);
  auto l = load_launch(cmd.app, rel, *prev, load_env(rel, *prev), /*assign_port=*/true);
  if (!l) {
    e.launch.reset();
    return fail(l.error().message);
  }
  e.launch = *l;
  if (auto st = run_hook_quiet(*l, "before_start", log); !st) return fail(st.error().message);
  auto started = start_app(cmd.app, e, *l);
  if (!started) return fail(started.error().message);
  log += *started + "\n";
  if (auto st = run_hook_quiet(*l, "after_start", log); !st) return fail(st.error().message);
  const HealthOutcome h = health_of(cmd.app, *l);
  log += health_text(h);
  if (!h.healthy) return fail("health check: " + h.detail);
  (void)rel.mark(*prev, ReleaseState::healthy);
  e.healthy = true;
  step.ok(fmt::format("back on {}\n{}", *prev, log));
}

protocol::InstallResult NodeRuntime::Impl::install(const protocol::InstallCommand& cmd,
                                                   StepSink& sink) {
  protocol::InstallResult res;
  res.action = cmd.action;
  res.app = cmd.app;
  if (auto st = validate_name(NameKind::version, cmd.version); !st) {
    res.reason = st.error().message;
    return res;
  }
  if (!is_sha256_hex(cmd.sha256)) {
    res.reason = fmt::format("'{}' is not a SHA-256 digest", cmd.sha256);
    return res;
  }
  auto acquired = acquire(cmd.app);
  if (!acquired) {
    res.reason = acquired.error().message;
    return res;
  }
  AppEntry& e = **acquired;
  AppReleases& rel = *e.rel;
  const auto prev = rel.current();
  const std::string& version = cmd.version;

  // Fills in what is current now; run on every way out.
  auto done = [&]() -> protocol::InstallResult& {
    res.version = rel.current().value_or("");
    res.healthy = !res.version.empty() && e.healthy;
    release(cmd.app, e);
    return res;
  };
  auto fail_before_switch = [&](std::string reason) -> protocol::InstallResult& {
    res.reason = std::move(reason);
    return done();
  };

  // download, verify, unpack; then the manifest of the new release.
  Result<Launch> next = err(Errc::internal, "not loaded");
  if (rel.has_release(version, cmd.sha256)) {
    Step(sink, cmd.action, "download")
        .skipped(fmt::format("release {} already on disk (sha256 verified at unpack); nothing "
                             "downloaded",
                             version));
    Step(sink, cmd.action, "verify").skipped("verified when it was unpacked");
    Step unpack(sink, cmd.action, "unpack");
    next = load_launch(cmd.app, rel, version, cmd.env, /*assign_port=*/true);
    if (!next) {
      unpack.failed(next.error().message);
      (void)rel.mark(version, ReleaseState::failed, next.error().message);
      return fail_before_switch("unpack failed: " + next.error().message);
    }
    unpack.skipped(fmt::format("already unpacked in {}", rel.release_dir(version).string()));
  } else {
    if (auto st = ensure_dir(downloads); !st) {
      Step(sink, cmd.action, "download").failed(st.error().message);
      return fail_before_switch("download failed: " + st.error().message);
    }
    const fs::path part = downloads / (cmd.sha256 + ".part");
    {
      Step step(sink, cmd.action, "download");
      std::error_code ec;
      const auto had = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
      auto st = fetcher.fetch(cmd, part);
      const auto size = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
      if (!st) {
        // The partial file stays: the next attempt resumes from it.
        step.failed(fmt::format("{}\n{} bytes kept in {} for the next attempt", st.error().message,
                                size, part.string()));
        return fail_before_switch("download failed: " + st.error().message);
      }
      res.downloaded = true;
      step.ok(fmt::format("{} bytes from {}{}", size, cmd.url,
                          had > 0 ? fmt::format(" (resumed after {} bytes)", had) : ""));
    }
    {
      Step step(sink, cmd.action, "verify");
      auto digest = sha256_file(part);
      if (!digest) {
        step.failed(digest.error().message);
        return fail_before_switch("verify failed: " + digest.error().message);
      }
      if (*digest != cmd.sha256) {
        std::error_code ec;
        fs::remove(part, ec);
        const std::string why =
            fmt::format("sha256 mismatch: expected {}, got {}", cmd.sha256, *digest);
        step.failed(why + "\nthe downloaded file was deleted");
        return fail_before_switch("verify failed: " + why);
      }
      step.ok("sha256 " + *digest);
    }
    {
      Step step(sink, cmd.action, "unpack");
      auto stats = rel.unpack(version, cmd.sha256, part);
      std::error_code ec;
      fs::remove(part, ec);  // unpacked, or refused: either way these bytes are not needed again
      if (!stats) {
        step.failed(stats.error().message);
        return fail_before_switch("unpack failed: " + stats.error().message);
      }
      next = load_launch(cmd.app, rel, version, cmd.env, /*assign_port=*/true);
      if (!next) {
        step.failed(next.error().message);
        (void)rel.mark(version, ReleaseState::failed, next.error().message);
        return fail_before_switch("unpack failed: " + next.error().message);
      }
      step.ok(fmt::format("{} files, {} directories, {} bytes in {}", stats->files,
                          stats->directories, stats->bytes, rel.release_dir(version).string()));
    }
  }
  const Launch& l = *next;

  // The per-environment config: kept in the release, and its templates rendered with the app's
  // environment. A failure here leaves the node on what it runs now.
  if (auto st = save_env(rel, version, cmd.env); !st) {
    return fail_before_switch("cannot keep the config in the release: " + st.error().message);
  }
  if (auto rendered = render_release_templates(rel.release_dir(version), l.ctx.env); !rendered) {
    Step(sink, cmd.action, "templates").failed(rendered.error().message);
    return fail_before_switch("templates: " + rendered.error().message);
  } else if (!rendered->empty()) {
    Step(sink, cmd.action, "templates").ok("rendered " + join(*rendered, ", ") + " (mode 0600)");
  }

  // Fails release VERSION with `reason`; goes back to what ran before when `touched`.
  auto fail_after = [&](std::string reason, bool touched) -> protocol::InstallResult& {
    (void)rel.mark(version, ReleaseState::failed, reason);
    res.reason = std::move(reason);
    if (touched) revert(cmd, sink, e, prev, l, res);
    return done();
  };

  if (auto st = run_hook(sink, cmd.action, l, "after_install"); !st) {
    return fail_after(st.error().message, false);
  }

  // Stop what runs now, with the running release's own before_stop hook and stop command.
  std::optional<Launch> old;
  if (prev) {
    if (e.launch && e.launch->version == *prev) {
      old = e.launch;
    } else if (auto o = load_launch(cmd.app, rel, *prev, load_env(rel, *prev), false); o) {
      old = std::move(*o);
    }
  }
  if (old) {
    if (auto st = run_hook(sink, cmd.action, *old, "before_stop"); !st) {
      res.reason = st.error().message;
      return done();
    }
  }
  {
    Step step(sink, cmd.action, "stop");
    if (!prev && !sup.status(cmd.app).running) {
      step.skipped("nothing to stop: no release of " + cmd.app + " is active");
    } else {
      auto stopped = stop_app(cmd.app, e, old ? &*old : nullptr);
      if (!stopped) {
        step.failed(stopped.error().message);
        res.reason = "stop failed: " + stopped.error().message;
        revert(cmd, sink, e, prev, l, res);
        return done();
      }
      step.ok(*stopped);
    }
  }
  {
    Step step(sink, cmd.action, "switch");
    if (auto st = rel.activate(version); !st) {
      step.failed(st.error().message);
      return fail_after("switch failed: " + st.error().message, true);
    }
    e.launch = l;
    e.healthy = false;
    step.ok(fmt::format("current -> releases/{}", version));
  }
  if (auto st = run_hook(sink, cmd.action, l, "before_start"); !st) {
    return fail_after(st.error().message, true);
  }
  {
    Step step(sink, cmd.action, "start");
    auto started = start_app(cmd.app, e, l);
    if (!started) {
      step.failed(started.error().message);
      return fail_after("start failed: " + started.error().message, true);
    }
    step.ok(*started);
  }
  if (auto st = run_hook(sink, cmd.action, l, "after_start"); !st) {
    return fail_after(st.error().message, true);
  }
  {
    Step step(sink, cmd.action, "health");
    const HealthOutcome h = health_of(cmd.app, l);
    if (!h.healthy) {
      step.failed(health_text(h));
      return fail_after("health check failed: " + h.detail, true);
    }
    step.ok(health_text(h));
  }
  (void)rel.mark(version, ReleaseState::healthy);
  e.healthy = true;
  res.ok = true;
  {
    Step step(sink, cmd.action, "prune");
    auto removed = rel.prune(cmd.keep_releases);
    if (!removed) {
      step.failed(removed.error().message);  // the release itself is fine: still a success
    } else if (removed->empty()) {
      step.ok(fmt::format("nothing to remove (keeping {})", cmd.keep_releases));
    } else {
      step.ok("removed " + join(*removed, ", "));
    }
  }
  return done();
}

protocol::InstallResult NodeRuntime::Impl::deactivate(const protocol::DeactivateCommand& cmd,
                                                      StepSink& sink) {
  protocol::InstallResult res;
  res.action = cmd.action;
  res.app = cmd.app;
  auto acquired = acquire(cmd.app);
  if (!acquired) {
    res.reason = acquired.error().message;
    return res;
  }
  AppEntry& e = **acquired;
  AppReleases& rel = *e.rel;
  auto done = [&]() -> protocol::InstallResult& {
    res.version = rel.current().value_or("");
    res.healthy = !res.version.empty() && e.healthy;
    release(cmd.app, e);
    return res;
  };
  const auto cur = rel.current();
  std::optional<Launch> l;
  if (cur) {
    if (auto o = load_launch(cmd.app, rel, *cur, load_env(rel, *cur), false); o) l = std::move(*o);
  }
  if (l) {
    if (auto st = run_hook(sink, cmd.action, *l, "before_stop"); !st) {
      res.reason = st.error().message;
      return done();
    }
  }
  {
    Step step(sink, cmd.action, "stop");
    if (!cur && !sup.status(cmd.app).running) {
      step.skipped(cmd.app + " has no current release on this node");
    } else {
      auto stopped = stop_app(cmd.app, e, l ? &*l : nullptr);
      if (!stopped) {
        step.failed(stopped.error().message);
        res.reason = "stop failed: " + stopped.error().message;
        return done();
      }
      step.ok(*stopped);
    }
  }
  {
    Step step(sink, cmd.action, "deactivate");
    if (auto st = rel.deactivate(); !st) {
      step.failed(st.error().message);
      res.reason = st.error().message;
      return done();
    }
    e.launch.reset();
    e.running = e.healthy = false;
    step.ok(cur ? fmt::format("removed `current` (was {})", *cur) : "no `current` link");
  }
  res.ok = true;
  return done();
}

NodeRuntime::NodeRuntime(NodeIdentity id, Fetcher& fetcher)
    : impl_(std::make_unique<Impl>(std::move(id), fetcher)) {}

NodeRuntime::~NodeRuntime() {
  shutdown();
}

Status NodeRuntime::open() {
  if (auto st = ensure_dir(impl_->apps_root); !st) return st;
  return ensure_dir(impl_->downloads);
}

protocol::InstallResult NodeRuntime::install(const protocol::InstallCommand& cmd, StepSink& sink) {
  auto res = impl_->install(cmd, sink);
  res.apps = app_states();
  return res;
}

protocol::InstallResult NodeRuntime::deactivate(const protocol::DeactivateCommand& cmd,
                                                StepSink& sink) {
  auto res = impl_->deactivate(cmd, sink);
  res.apps = app_states();
  return res;
}

std::vector<std::string> NodeRuntime::resume_all() {
  std::vector<std::string> lines;
  for (const auto& app : impl_->app_dirs()) {
    auto acquired = impl_->acquire(app);
    if (!acquired) {
      lines.push_back(fmt::format("{}: {}", app, acquired.error().message));
      continue;
    }
    auto& e = **acquired;
    auto cur = e.rel->current();
    // An install the agent did not live to finish (stopped or killed after the switch, before the
    // health check passed) is undone, as the install itself would have done: back to the last
    // release that was healthy. The server counted the node as failed for that deploy.
    const auto good = e.rel->last_healthy();
    if (const auto info = cur ? e.rel->info(*cur) : std::nullopt;
        info && info->state == ReleaseState::installed && good && *good != *cur &&
        e.rel->info(*good)) {
      if (auto st = e.rel->activate(*good); st) {
        (void)e.rel->mark(*cur, ReleaseState::failed,
                          "the agent stopped before this release was healthy");
        lines.push_back(
            fmt::format("{} {}: the agent stopped before this release was healthy; back on {}", app,
                        *cur, *good));
        cur = good;
      } else {
        lines.push_back(
            fmt::format("{} {}: cannot go back to {}: {}", app, *cur, *good, st.error().message));
      }
    }
    if (!cur) {
      lines.push_back(fmt::format("{}: no current release", app));
    } else if (auto l = impl_->load_launch(app, *e.rel, *cur, impl_->load_env(*e.rel, *cur), true);
               !l) {
      lines.push_back(fmt::format("{} {}: {}", app, *cur, l.error().message));
    } else {
      e.launch = *l;
      e.healthy = false;  // probe_all() tells
      if (!l->supervised()) {
        e.running = true;
        lines.push_back(
            fmt::format("{} {}: run by its restart command; not started by the agent", app, *cur));
      } else if (auto started = impl_->start_app(app, e, *l); started) {
        lines.push_back(fmt::format("{} {}: {}", app, *cur, split(*started, '\n').front()));
      } else {
        e.running = false;
        lines.push_back(fmt::format("{} {}: cannot start: {}", app, *cur, started.error().message));
      }
    }
    impl_->release(app, e);
  }
  return lines;
}

bool NodeRuntime::probe_all() {
  bool changed = false;
  for (const auto& app : impl_->app_dirs()) {
    std::optional<Launch> l;
    {
      std::lock_guard lk(impl_->mu);
      auto e = impl_->entry_locked(app);
      if (!e || (*e)->busy) continue;  // an install reports its own health
      const auto cur = (*e)->rel->current();
      if (!cur) {
        changed |= (*e)->healthy || (*e)->running;
        (*e)->healthy = (*e)->running = false;
        continue;
      }
      if (!(*e)->launch || (*e)->launch->version != *cur) {
        auto loaded =
            impl_->load_launch(app, *(*e)->rel, *cur, impl_->load_env(*(*e)->rel, *cur), false);
        if (loaded) (*e)->launch = std::move(*loaded);
      }
      if ((*e)->launch && (*e)->launch->version == *cur) l = (*e)->launch;
    }
    bool running = false;
    bool healthy = false;
    if (l) {
      running = l->supervised() ? impl_->sup.status(app).running : true;
      if (running) healthy = probe_once(l->health(), l->ctx, kProbeTimeout).healthy;
    }
    std::lock_guard lk(impl_->mu);
    auto it = impl_->apps.find(app);
    if (it == impl_->apps.end() || it->second->busy) continue;
    auto& e = *it->second;
    if (l && (!e.launch || e.launch->version != l->version)) continue;  // switched meanwhile
    changed |= e.healthy != healthy || e.running != running;
    e.healthy = healthy;
    e.running = running;
  }
  return changed;
}

std::vector<protocol::AppState> NodeRuntime::app_states() const {
  std::vector<protocol::AppState> out;
  std::lock_guard lk(impl_->mu);
  for (const auto& app : impl_->app_dirs()) {
    auto e = impl_->entry_locked(app);
    if (!e) continue;
    if (!(*e)->busy) (*e)->snapshot = impl_->state_of(app, **e);
    out.push_back((*e)->snapshot);
  }
  return out;
}

protocol::ExecResult NodeRuntime::exec(const protocol::ExecCommand& cmd) const {
  const NodeIdentity& id = impl_->id;
  std::error_code ec;
  const fs::path root = fs::absolute(id.root, ec);
  ProcessSpec spec;
  spec.argv = cmd.argv;
  spec.cwd = ec ? id.root : root;
  spec.env = cmd.env;
  spec.env["SLIPWAY_NODE"] = id.name;
  spec.env["SLIPWAY_ENV"] = id.env;
  spec.env["SLIPWAY_ADDRESS"] = id.address;
  spec.env["SLIPWAY_ROOT"] = spec.cwd.string();
  spec.cancel = &impl_->shutting_down;

  protocol::ExecResult res;
  res.action = cmd.action;
  res.started_at = now_ms();
  const auto start = SteadyClock::now();
  auto r = run_command(spec, Millis(cmd.timeout_ms), protocol::kExecMaxOutput);
  if (!r) {
    res.exit_code = 127;  // what a shell answers for a command it cannot run
    res.output = r.error().message + "\n";
  } else {
    res.exit_code = r->exit_code;
    res.signal = r->signal;
    res.timed_out = r->timed_out;
    // Sent as JSON text: ill-formed UTF-8 becomes U+FFFD, which can make it longer than the
    // protocol allows (kExecMaxOutput and a note); then it is cut again.
    res.output = valid_utf8(r->output);
    if (res.output.size() > protocol::kExecMaxOutput + 128) {
      res.output = tail_bytes(res.output, protocol::kExecMaxOutput);
    }
    if (r->cancelled) res.output += "[" + r->describe() + "]\n";
  }
  res.duration_ms = std::chrono::duration_cast<Millis>(SteadyClock::now() - start).count();
  return res;
}

void NodeRuntime::cancel() {
  impl_->shutting_down = true;
}

void NodeRuntime::shutdown() {
  impl_->shutting_down = true;
  Millis timeout = kDefaultStopTimeout;
  {
    std::lock_guard lk(impl_->mu);
    for (const auto& [app, e] : impl_->apps) {
      if (e->launch) timeout = std::max(timeout, e->launch->manifest.stop_timeout);
    }
  }
  impl_->sup.stop_all(timeout);
  std::lock_guard lk(impl_->mu);
  for (auto& [app, e] : impl_->apps) {
    if (e->launch && e->launch->supervised()) e->running = e->healthy = false;
  }
}

}  // namespace slipway::agent
