#include "support/child_process.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace slipway::testing {

namespace {

using Clock = std::chrono::steady_clock;

int open_output(const fs::path& p) {
  if (p.empty()) return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(fmt::format("cannot open {}: {}", p.string(), std::strerror(errno)));
  }
  return fd;
}

}  // namespace

std::vector<std::string> environment_with(const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> vars;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    const std::string s(*p);
    const auto eq = s.find('=');
    if (eq != std::string::npos) vars[s.substr(0, eq)] = s.substr(eq + 1);
  }
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      vars.erase(k);
    } else {
      vars[k] = v;
    }
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : vars)
    out.push_back(k + "=" + v);
  return out;
}

ChildProcess::~ChildProcess() {
  stop(SIGTERM, std::chrono::seconds(5));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), exit_code_(other.exit_code_), term_signal_(other.term_signal_) {
  other.pid_ = 0;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    stop(SIGTERM, std::chrono::seconds(5));
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    term_signal_ = other.term_signal_;
    other.pid_ = 0;
  }
  return *this;
}

void ChildProcess::start(const ChildOptions& o) {
  if (pid_ != 0 && running()) throw std::runtime_error("the child process is running already");
  if (o.argv.empty()) throw std::runtime_error("ChildProcess::start: no program");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings = environment_with(o.env);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy = o.argv;
  std::vector<char*> args;
  for (auto& s : args_copy)
    args.push_back(s.data());
  args.push_back(nullptr);

  const int out = open_output(o.stdout_path);
  const int err = open_output(o.stderr_path);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(out);
    ::close(err);
    ::close(in);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // A copy of pass_fd above the descriptors being set up, then 0..2, then 3 (dup2 clears
    // close-on-exec on the copies it makes).
    const int pass = o.pass_fd >= 0 ? ::fcntl(o.pass_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (o.pass_fd >= 0 && pass < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (pass >= 0 && ::dup2(pass, 3) < 0) ::_exit(127);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
  ::close(in);
  pid_ = pid;
  exit_code_.reset();
  term_signal_ = 0;
}

void ChildProcess::reap(int options) {
  if (pid_ == 0) return;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, options);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    if (r == pid_ && WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
    if (r == pid_ && WIFSIGNALED(status)) term_signal_ = WTERMSIG(status);
    pid_ = 0;
  }
}

bool ChildProcess::running() {
  reap(WNOHANG);
  return pid_ != 0;
}

std::string ChildProcess::describe() const {
  if (pid_ != 0) return "running";
  if (exit_code_) return fmt::format("exited with code {}", *exit_code_);
  if (term_signal_ != 0) return fmt::format("killed by signal {}", term_signal_);
  return "not started";
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

bool ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  return poll_until([this] { return !running(); }, timeout, std::chrono::milliseconds(10));
}

std::string ChildProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (running()) {
    ::kill(pid_, sig);
    if (!wait_exit(grace)) {
      ::kill(pid_, SIGKILL);
      reap(0);
    }
  }
  return describe();
}

bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tail_of(const fs::path& p, size_t lines) {
  const std::string text = read_text(p);
  size_t pos = text.size();
  if (pos > 0 && text.back() == '\n') --pos;
  for (size_t n = 0; n < lines && pos > 0; ++n) {
    const auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return text.substr(pos == 0 ? 0 : pos + 1);
}

}  // namespace slipway::testing
