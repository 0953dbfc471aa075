#include "agent/supervisor.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/strings.h"

namespace slipway::agent {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr Millis kFirstBackoff{1000};
constexpr Millis kMaxBackoff{30'000};
constexpr Millis kStableUptime{60'000};  // a process up this long starts again from kFirstBackoff
constexpr Millis kReplaceTimeout{10'000};
constexpr Millis kLeftoverTimeout{5'000};
constexpr Millis kAfterKillTimeout{5'000};

// Opens the app's log for appending, mode 0640 (what an app prints may say more than it should),
// also when it existed with a wider one.
int open_log(const fs::path& log_file) {
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd >= 0) (void)::fchmod(fd, 0640);
  return fd;
}

// Appends one line to the app's log, so that its output shows what the supervisor did.
void log_line(const fs::path& log_file, std::string_view text) {
  const int fd = open_log(log_file);
  if (fd < 0) return;
  const std::string line = fmt::format("[slipway {}] {}\n", format_time(now_ms()), text);
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

// The start time of `pid` in seconds since the epoch, from /proc; nullopt when unknown.
std::optional<int64_t> process_start_epoch(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid), 1 << 16);
  auto sys = read_file("/proc/stat", 1 << 20);
  if (!stat || !sys) return std::nullopt;
  // Fields after "(comm)": state is field 3, starttime field 22.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  const auto fields = split(std::string_view(*stat).substr(close + 1), ' ');
  if (fields.size() < 20) return std::nullopt;
  int64_t start_ticks = 0;
  const auto& f = fields[19];
  if (std::from_chars(f.data(), f.data() + f.size(), start_ticks).ec != std::errc()) {
    return std::nullopt;
  }
  int64_t btime = -1;
  for (const auto& line : split(*sys, '\n')) {
    if (line.rfind("btime ", 0) == 0) btime = std::atoll(line.c_str() + 6);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (btime < 0 || ticks <= 0) return std::nullopt;
  return btime + start_ticks / ticks;
}

// dash does not exec the last command of `sh -c`: `sh -c './server'` leaves the shell as the
// parent of the app. Then PR_SET_PDEATHSIG (set on the shell) would not reach the app, and the
// exit status seen would be the shell's. A simple command (no operators, no leading assignment, no
// reserved word or builtin first) means the same with `exec ` in front, so it gets it.
std::string supervised_command(const std::string& command) {
  const std::string_view cmd = trim(command);
  if (cmd.empty() || cmd.find_first_of(";&|()`\n") != std::string_view::npos) return command;
  const std::string_view first = cmd.substr(0, cmd.find_first_of(" \t"));
  if (first.find('=') != std::string_view::npos) return command;
  static constexpr std::string_view kNotExecutable[] = {
      "!",    "{",      "}",     "if",     "then",   "else",     "elif",  "fi",     "case",
      "esac", "for",    "while", "until",  "do",     "done",     "exec",  "cd",     "export",
      "set",  "unset",  "eval",  ".",      "source", "trap",     "wait",  "read",   "alias",
      "exit", "return", "shift", "ulimit", "umask",  "readonly", "local", "command"};
  for (const auto w : kNotExecutable) {
    if (first == w) return command;
  }
  return "exec " + std::string(cmd);
}

}  // namespace

struct Supervisor::Impl {
  struct Proc {
    std::string app;
    ProcessSpec spec;
    fs::path log_file;
    fs::path pid_file;
    pid_t pid = 0;
    int pidfd = -1;
    bool stopping = false;
    int restarts = 0;
    int last_exit_code = 0;
    std::string last_exit;
    SteadyClock::time_point started_at;
    Millis backoff = kFirstBackoff;
    std::optional<SteadyClock::time_point> restart_at;
  };
  struct SpawnRequest {
    std::shared_ptr<Proc> proc;
    bool done = false;
    Status result;
  };

  mutable std::mutex mu;
  std::condition_variable cv;  // notified whenever a process is reaped or a spawn completes
  std::map<std::string, std::shared_ptr<Proc>> procs;
  // Only the monitor thread forks: PR_SET_PDEATHSIG fires when the *thread* that forked exits,
  // so a child forked by a short-lived worker thread would be killed when that thread ends.
  std::deque<std::shared_ptr<SpawnRequest>> spawn_queue;
  bool quit = false;
  int wake_fd = -1;
  std::thread thread;

  void wake() {
    const uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  // Monitor thread, with `mu` held.
  Status spawn(Proc& p) {
    const int log_fd = open_log(p.log_file);
    if (log_fd < 0) {
      return err(Errc::io, fmt::format("cannot open log file {}: {}", p.log_file.string(),
                                       std::strerror(errno)));
    }
    auto pid = spawn_shell(p.spec, log_fd, /*die_with_parent=*/true);
    ::close(log_fd);
    if (!pid) return pid.error();
    p.pid = *pid;
    p.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
    p.started_at = SteadyClock::now();
    p.restart_at.reset();
    if (auto st = write_file_atomic(p.pid_file, fmt::format("{}\n", p.pid)); !st) {
      log_line(p.log_file, "cannot write pid file: " + st.error().message);
    }
    log_line(p.log_file, fmt::format("started pid {}: {}", p.pid, p.spec.command));
    return {};
  }

  // Monitor thread, with `mu` held: the leader of `p` exited with `status`.
  void on_exit(Proc& p, int status) {
    const pid_t old = p.pid;
    p.pid = 0;
    if (p.pidfd >= 0) ::close(p.pidfd);
    p.pidfd = -1;
    p.last_exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    p.last_exit = describe_wait_status(status);
    if (p.stopping) return;  // stop() takes care of the rest of the group
    // Whatever the leader left behind in its group would hold ports and files the next
    // instance needs. (The group id stays reserved as long as a member lives.)
    if (process_group_alive(old)) ::kill(-old, SIGKILL);
    ::unlink(p.pid_file.c_str());
    const auto now = SteadyClock::now();
    if (now - p.started_at >= kStableUptime) p.backoff = kFirstBackoff;
    p.restart_at = now + p.backoff;
    log_line(p.log_file, fmt::format("pid {} exited ({}); restarting in {}", old, p.last_exit,
                                     format_duration(p.backoff)));
    p.backoff = std::min(p.backoff * 2, kMaxBackoff);
  }

  void monitor() {
    std::unique_lock lk(mu);
    for (;;) {
      while (!spawn_queue.empty()) {
        auto req = spawn_queue.front();
        spawn_queue.pop_front();
        if (quit) {
          req->result = err(Errc::failed_precondition, "the supervisor is shutting down");
        } else if (req->proc->stopping) {
          req->result = err(Errc::failed_precondition,
                            fmt::format("{} was stopped before it started", req->proc->app));
        } else {
          req->result = spawn(*req->proc);
        }
        req->done = true;
      }
      if (quit) break;
      const auto now = SteadyClock::now();
      auto next = now + Millis(1000);
      bool need_tick = false;
      std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
      for (auto& [app, p] : procs) {
        if (p->pid != 0) {
          int status = 0;
          const pid_t r = ::waitpid(p->pid, &status, WNOHANG);
          if (r == p->pid) {
            on_exit(*p, status);
          } else if (r < 0 && errno == ECHILD) {
            on_exit(*p, 0);  // someone else reaped it; the status is lost
          }
        }
        if (p->pid == 0 && p->restart_at && !p->stopping && *p->restart_at <= now) {
          if (auto st = spawn(*p); st) {
            ++p->restarts;
          } else {
            log_line(p->log_file, "restart failed: " + st.error().message);
            p->last_exit = st.error().message;
            p->restart_at = now + p->backoff;
            p->backoff = std::min(p->backoff * 2, kMaxBackoff);
          }
        }
        if (p->pid != 0) {
          if (p->pidfd >= 0) {
            fds.push_back({p->pidfd, POLLIN, 0});
          } else {
            need_tick = true;
          }
        }
        if (p->pid == 0 && p->restart_at && !p->stopping) next = std::min(next, *p->restart_at);
      }
      cv.notify_all();
      if (need_tick) next = std::min(next, now + Millis(50));
      const auto wait_ms = std::chrono::duration_cast<Millis>(next - now).count();
      lk.unlock();
      ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait_ms, 0, INT_MAX)));
      uint64_t drained;
      while (::read(wake_fd, &drained, sizeof drained) > 0) {
      }
      lk.lock();
    }
    cv.notify_all();
  }

  // Kills what a previous agent left running under `pid_file`: a process that is still alive,
  // leads its own process group and started before the pid file was written (so it is not an
  // unrelated process that got the same pid since), or a group whose leader is gone.
  void kill_leftover(const fs::path& pid_file) {
    auto text = read_file(pid_file, 64);
    if (!text) return;
    const std::string_view t = trim(*text);
    int pid = 0;
    if (std::from_chars(t.data(), t.data() + t.size(), pid).ec != std::errc() || pid <= 1) return;
    {
      std::lock_guard lk(mu);
      for (const auto& [app, p] : procs) {
        if (p->pid == pid) return;  // ours, and alive
      }
    }
    if (::kill(pid, 0) == 0) {
      if (::getpgid(pid) != pid) return;
      struct stat st {};
      if (::stat(pid_file.c_str(), &st) == 0) {
        if (auto started = process_start_epoch(pid); started && *started > st.st_mtime + 5) return;
      }
    } else if (!process_group_alive(pid)) {
      ::unlink(pid_file.c_str());
      return;
    }
    ::kill(-pid, SIGTERM);
    const auto deadline = SteadyClock::now() + kLeftoverTimeout;
    while (process_group_alive(pid) && SteadyClock::now() < deadline)
      ::usleep(20'000);
    if (process_group_alive(pid)) ::kill(-pid, SIGKILL);
    ::unlink(pid_file.c_str());
  }
};

Supervisor::Supervisor() : impl_(std::make_unique<Impl>()) {
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->thread = std::thread([this] { impl_->monitor(); });
}

Supervisor::~Supervisor() {
  stop_all(kReplaceTimeout);
  {
    std::lock_guard lk(impl_->mu);
    impl_->quit = true;
  }
  impl_->wake();
  impl_->thread.join();
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
}

Status Supervisor::start(const std::string& app, const ProcessSpec& spec, const fs::path& log_file,
                         const fs::path& pid_file) {
  if (auto st = stop(app, kReplaceTimeout); !st) return st;
  impl_->kill_leftover(pid_file);

  auto p = std::make_shared<Impl::Proc>();
  p->app = app;
  p->spec = spec;
  p->spec.command = supervised_command(spec.command);
  p->log_file = log_file;
  p->pid_file = pid_file;
  auto req = std::make_shared<Impl::SpawnRequest>();
  req->proc = p;

  std::unique_lock lk(impl_->mu);
  if (impl_->quit) return err(Errc::failed_precondition, "the supervisor is shutting down");
  impl_->procs[app] = p;
  impl_->spawn_queue.push_back(req);
  impl_->wake();
  impl_->cv.wait(lk, [&] { return req->done; });
  if (!req->result) {
    if (auto it = impl_->procs.find(app); it != impl_->procs.end() && it->second == p) {
      impl_->procs.erase(it);
    }
    return req->result;
  }
  return {};
}

Status Supervisor::stop(const std::string& app, Millis timeout) {
  std::unique_lock lk(impl_->mu);
  auto it = impl_->procs.find(app);
  if (it == impl_->procs.end()) return {};
  auto p = it->second;
  p->stopping = true;  // from now on the monitor does not restart it
  p->restart_at.reset();
  if (p->pid != 0) {
    const pid_t pgid = p->pid;
    ::kill(-pgid, SIGTERM);
    const auto deadline = SteadyClock::now() + timeout;
    impl_->cv.wait_until(lk, deadline, [&] { return p->pid == 0; });
    // The leader is gone (or time is up); give the rest of its group the same deadline.
    while (p->pid == 0 && process_group_alive(pgid) && SteadyClock::now() < deadline) {
      lk.unlock();
      ::usleep(20'000);
      lk.lock();
    }
    if (process_group_alive(pgid)) ::kill(-pgid, SIGKILL);
    if (!impl_->cv.wait_for(lk, kAfterKillTimeout, [&] { return p->pid == 0; })) {
      return err(Errc::io, fmt::format("process {} of {} did not exit after SIGKILL", pgid, app));
    }
    log_line(p->log_file, fmt::format("stopped pid {} ({})", pgid, p->last_exit));
  }
  ::unlink(p->pid_file.c_str());
  if (auto cur = impl_->procs.find(app); cur != impl_->procs.end() && cur->second == p) {
    impl_->procs.erase(cur);
  }
  return {};
}

ProcessStatus Supervisor::status(const std::string& app) const {
  std::lock_guard lk(impl_->mu);
  ProcessStatus s;
  auto it = impl_->procs.find(app);
  if (it == impl_->procs.end()) return s;
  const auto& p = *it->second;
  s.running = p.pid != 0;
  s.pid = p.pid;
  s.restarts = p.restarts;
  s.last_exit_code = p.last_exit_code;
  s.last_exit = p.last_exit;
  return s;
}

void Supervisor::stop_all(Millis timeout) {
  std::vector<std::string> apps;
  {
    // Signal every group first so that they all wind down in parallel, then wait for each.
    std::lock_guard lk(impl_->mu);
    for (auto& [app, p] : impl_->procs) {
      apps.push_back(app);
      p->stopping = true;
      p->restart_at.reset();
      if (p->pid != 0) ::kill(-p->pid, SIGTERM);
    }
  }
  const auto deadline = SteadyClock::now() + timeout;
  for (const auto& app : apps) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now());
    (void)stop(app, std::max(left, Millis(0)));
  }
}

}  // namespace slipway::agent
