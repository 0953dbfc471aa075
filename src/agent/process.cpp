#include "agent/process.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace slipway::agent {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The argument and environment vectors of the child. They are built before fork(): the child of
// a multi-threaded process may only call async-signal-safe functions, so no allocation there.
struct ExecImage {
  std::string path;  // what to execute; empty when argv[0] was not found
  std::vector<std::string> strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// Where execvp would find `name`: itself when it holds a '/', else the first executable regular
// file of that name in a directory of `path` (relative ones taken from `cwd`); "" when none.
std::string find_program(const std::string& name, const std::string& path, const fs::path& cwd) {
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  for (;;) {
    const size_t end = std::min(path.find(':', start), path.size());
    const std::string dir = path.substr(start, end - start);
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (candidate.is_relative() && !cwd.empty()) candidate = cwd / candidate;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
    if (end == path.size()) return "";
    start = end + 1;
  }
}

ExecImage make_image(const ProcessSpec& spec) {
  const std::map<std::string, std::string> env = child_environment(environ, spec.env);

  ExecImage img;
  if (spec.argv.empty()) {
    img.path = "/bin/sh";
    img.strings = {"sh", "-c", spec.command};
  } else {
    img.path = find_program(spec.argv.front(), env.at("PATH"), spec.cwd);
    img.strings = spec.argv;
  }
  const size_t argc = img.strings.size();
  img.strings.reserve(argc + env.size());
  for (const auto& [k, v] : env)
    img.strings.push_back(std::string(k).append("=").append(v));
  // Pointers are taken only now that `strings` no longer grows.
  for (size_t i = 0; i < argc; ++i)
    img.argv.push_back(img.strings[i].data());
  img.argv.push_back(nullptr);
  for (size_t i = argc; i < img.strings.size(); ++i)
    img.envp.push_back(img.strings[i].data());
  img.envp.push_back(nullptr);
  return img;
}

// Stages at which the child can fail before exec, reported to the parent through a pipe.
enum ChildStage : int { kSetpgid = 1, kPdeathsig, kRedirect, kChdir, kExec };

struct ChildArgs {
  const ExecImage* img;
  const char* cwd;  // nullptr: stay where we are
  int out_fd;
  int devnull;
  int err_fd;  // close-on-exec: EOF on it tells the parent that exec succeeded
  bool die_with_parent;
  pid_t parent;
  long max_fd;
};

// Runs in the child between fork() and exec(): async-signal-safe calls only.
[[noreturn]] void child_exec(const ChildArgs& a) {
  int err_fd = a.err_fd;
  auto fail = [&err_fd](int stage) {
    const int report[2] = {stage, errno};
    (void)!::write(err_fd, report, sizeof report);
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail(kSetpgid);
  if (a.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(kPdeathsig);
    // The parent may have died before prctl took effect; then no signal would ever come.
    if (::getppid() != a.parent) ::_exit(1);
  }
  // Dispositions set to "ignore" (the agent ignores SIGPIPE, say) survive exec; reset them all.
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::dup2(a.devnull, 0) < 0 || ::dup2(a.out_fd, 1) < 0 || ::dup2(a.out_fd, 2) < 0) {
    fail(kRedirect);
  }
  // Keep the error pipe at descriptor 3 (close-on-exec) and close everything above it, so the
  // child inherits none of the agent's sockets or files, whatever flags they were opened with.
  if (err_fd != 3) {
    if (::dup3(err_fd, 3, O_CLOEXEC) < 0) fail(kRedirect);
    err_fd = 3;
  }
  if (a.cwd != nullptr && ::chdir(a.cwd) != 0) fail(kChdir);
  if (::close_range(4, ~0U, 0) != 0) {
    for (long fd = 4; fd < a.max_fd; ++fd)
      ::close(static_cast<int>(fd));
  }
  ::execve(a.img->path.c_str(), a.img->argv.data(), a.img->envp.data());
  fail(kExec);
  ::_exit(127);  // not reached
}

std::string stage_text(int stage, const ProcessSpec& spec, const ExecImage& img) {
  switch (stage) {
    case kSetpgid:
      return "cannot create a process group";
    case kPdeathsig:
      return "cannot set the parent-death signal";
    case kRedirect:
      return "cannot redirect standard descriptors";
    case kChdir:
      return fmt::format("cannot change to directory {}", spec.cwd.string());
    case kExec:
      return "cannot execute " + img.path;
    default:
      return "cannot start";
  }
}

// Keeps the last `max` bytes of a stream without holding more than about twice that.
class OutputTail {
 public:
  explicit OutputTail(size_t max) : max_(max) {}
  void append(const char* data, size_t n) {
    total_ += n;
    buf_.append(data, n);
    if (buf_.size() > 2 * max_ + 65536) buf_.erase(0, buf_.size() - max_);
  }
  std::string finish() const {
    if (total_ <= max_) return buf_;
    // The same note as tail_bytes(), counted over the whole stream.
    return "[... " + std::to_string(total_ - max_) + " bytes cut ...]\n" +
           buf_.substr(buf_.size() - max_);
  }

 private:
  size_t max_;
  uint64_t total_ = 0;
  std::string buf_;
};

// Reads what is available on `fd` into `tail`; false on EOF or error.
bool read_some(int fd, OutputTail& tail) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      tail.append(buf, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

}  // namespace

bool inherited_by_children(std::string_view name) {
  static constexpr std::string_view kNames[] = {"PATH", "HOME", "USER",   "LOGNAME",  "SHELL",
                                                "LANG", "TZ",   "TMPDIR", "LANGUAGE", "TERM"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames) ||
         (name.starts_with("LC_") && name.size() > 3);
}

std::map<std::string, std::string> child_environment(
    const char* const* agent_env, const std::map<std::string, std::string>& vars) {
  std::map<std::string, std::string> env;
  for (const char* const* e = agent_env; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0 || !inherited_by_children(kv.substr(0, eq))) {
      continue;
    }
    // The first wins, as getenv finds it (a block may name a variable twice).
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  for (const auto& [k, v] : vars)
    env[k] = v;
  env.emplace("PATH", kDefaultPath);
  return env;
}

bool process_group_alive(pid_t pgid) {
  if (pgid <= 0) return false;
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool alive = false;
  while (!alive) {
    const dirent* ent = ::readdir(proc);
    if (ent == nullptr) break;
    if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
    char path[300];
    std::snprintf(path, sizeof path, "/proc/%s/stat", ent->d_name);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
    const char* close = std::strrchr(buf, ')');
    char state = 0;
    int ppid = 0;
    int pgrp = 0;
    if (close == nullptr || std::sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) {
      continue;
    }
    alive = pgrp == pgid && state != 'Z' && state != 'X';
  }
  ::closedir(proc);
  return alive;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev != nullptr) return fmt::format("killed by signal {} (SIG{})", sig, abbrev);
    return fmt::format("killed by signal {}", sig);
  }
  return fmt::format("wait status {}", status);
}

std::string RunResult::describe() const {
  if (cancelled) return "stopped: the agent is shutting down";
  if (timed_out) return "timed out after " + format_duration(timeout);
  if (signal != 0) {
    const char* abbrev = ::sigabbrev_np(signal);
    if (abbrev != nullptr) return fmt::format("killed by signal {} (SIG{})", signal, abbrev);
    return fmt::format("killed by signal {}", signal);
  }
  return fmt::format("exit code {}", exit_code);
}

Result<pid_t> spawn_shell(const ProcessSpec& spec, int out_fd, bool die_with_parent) {
  const ExecImage img = make_image(spec);
  if (img.path.empty()) {
    return err(Errc::not_found, fmt::format("{}: command not found", spec.argv.front()));
  }
  const std::string cwd = spec.cwd.string();
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    return err(Errc::io, fmt::format("cannot open /dev/null: {}", std::strerror(errno)));
  }
  int errp[2];
  if (::pipe2(errp, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(devnull);
    return err(Errc::io, fmt::format("cannot create a pipe: {}", std::strerror(e)));
  }
  long max_fd = ::sysconf(_SC_OPEN_MAX);
  if (max_fd <= 0 || max_fd > 65536) max_fd = 65536;
  const ChildArgs args{&img,       cwd.empty() ? nullptr : cwd.c_str(),
                       out_fd,     devnull,
                       errp[1],    die_with_parent,
                       ::getpid(), max_fd};
  const pid_t pid = ::fork();
  if (pid == 0) child_exec(args);
  const int fork_errno = errno;
  ::close(errp[1]);
  ::close(devnull);
  if (pid < 0) {
    ::close(errp[0]);
    return err(Errc::io, fmt::format("cannot fork to run '{}': {}",
                                     spec.argv.empty() ? spec.command : spec.argv.front(),
                                     std::strerror(fork_errno)));
  }
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(errp[0], report, sizeof report);
  } while (n < 0 && errno == EINTR);
  ::close(errp[0]);
  if (n == static_cast<ssize_t>(sizeof report)) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return err(Errc::io,
               fmt::format("{}: {}", stage_text(report[0], spec, img), std::strerror(report[1])));
  }
  return pid;  // EOF: exec succeeded (the pipe was closed on exec)
}

Result<RunResult> run_command(const ProcessSpec& spec, Millis timeout, size_t max_output) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return err(Errc::io, fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  const auto start = SteadyClock::now();
  // The calling thread waits for the shell, so tying the shell's life to it (PDEATHSIG) only
  // matters when the whole agent dies: then a hook does not run on unsupervised.
  auto spawned = spawn_shell(spec, out[1], /*die_with_parent=*/true);
  ::close(out[1]);
  if (!spawned) {
    ::close(out[0]);
    return spawned.error();
  }
  const pid_t pid = *spawned;
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  // A pidfd makes the child's exit wake poll(); without one (old kernels) poll ticks.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));

  const auto deadline = timeout.count() > 0 ? start + timeout : SteadyClock::time_point::max();
  constexpr Millis kKillGrace{2000};
  OutputTail tail(max_output);
  bool pipe_open = true;
  bool exited = false;
  bool status_known = false;
  int status = 0;
  bool timed_out = false;
  bool cancelled = false;
  bool kill_pending = false;  // SIGKILL due at kill_at
  SteadyClock::time_point kill_at{};

  auto try_reap = [&] {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      exited = status_known = true;
    } else if (r < 0 && errno == ECHILD) {
      exited = true;  // someone set SIGCHLD to SIG_IGN: the status is lost
    }
  };

  while (!exited) {
    try_reap();
    if (exited) break;
    const auto now = SteadyClock::now();
    if (!timed_out && spec.cancel != nullptr && spec.cancel->load()) cancelled = true;
    if (!timed_out && (now >= deadline || cancelled)) {
      timed_out = true;
      ::kill(-pid, SIGTERM);
      kill_at = now + kKillGrace;
      kill_pending = true;
    }
    if (kill_pending && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_pending = false;
    }
    auto wake = timed_out ? (kill_pending ? kill_at : now + Millis(50)) : deadline;
    if (pidfd < 0 || !pipe_open) wake = std::min(wake, now + Millis(20));
    if (spec.cancel != nullptr) wake = std::min(wake, now + Millis(100));
    const auto wait_ms = std::chrono::duration_cast<Millis>(wake - now).count();
    pollfd fds[2];
    nfds_t nfds = 0;
    int pipe_idx = -1;
    if (pipe_open) {
      pipe_idx = static_cast<int>(nfds);
      fds[nfds++] = {out[0], POLLIN, 0};
    }
    if (pidfd >= 0) fds[nfds++] = {pidfd, POLLIN, 0};
    const int pr = ::poll(fds, nfds, static_cast<int>(std::clamp<int64_t>(wait_ms, 0, INT_MAX)));
    if (pr > 0 && pipe_idx >= 0 && (fds[pipe_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
      pipe_open = read_some(out[0], tail);
    }
  }
  // The shell is gone; take what is already in the pipe, but do not wait for EOF, which a
  // background grandchild holding the pipe could delay forever.
  while (pipe_open) {
    pollfd pfd{out[0], POLLIN, 0};
    if (::poll(&pfd, 1, 0) <= 0) break;
    pipe_open = read_some(out[0], tail);
  }
  // On a timeout the whole group goes, not just the shell: give what is left of it the rest of
  // the grace period, then SIGKILL. (Its id stays reserved while any member lives.)
  if (timed_out) {
    while (process_group_alive(pid) && kill_pending && SteadyClock::now() < kill_at) {
      ::usleep(20'000);
    }
    if (process_group_alive(pid)) ::kill(-pid, SIGKILL);
  }
  if (pidfd >= 0) ::close(pidfd);
  ::close(out[0]);

  RunResult r;
  r.timed_out = timed_out && !cancelled;
  r.cancelled = cancelled;
  r.timeout = timeout;
  r.output = tail.finish();
  r.duration = std::chrono::duration_cast<Millis>(SteadyClock::now() - start);
  if (status_known && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (status_known && WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (timed_out) r.exit_code = -1;
  return r;
}

}  // namespace slipway::agent
