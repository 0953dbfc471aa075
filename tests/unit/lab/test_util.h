// Helpers for the lab tests: temporary directories, child processes with a captured standard
// output, and raw HTTP exchanges over a socket (so that malformed requests can be sent too).
#pragma once

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace slipway::lab::testing {

namespace fs = std::filesystem;

using slipway::testing::TempDir;

// Whether a process exists and is not a zombie.
inline bool process_alive(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string s(buf, n);
  const size_t close = s.rfind(')');
  if (close == std::string::npos || close + 2 >= s.size()) return false;
  return s[close + 2] != 'Z' && s[close + 2] != 'X';
}

// Waits (bounded) until `pred` holds; the bound only keeps a broken test from hanging.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A child process whose standard output is a pipe we read; killed (SIGKILL) and reaped by the
// destructor if still running.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string s = *e;
      const std::string key = s.substr(0, s.find('='));
      if (env.count(key) == 0) env_strings.push_back(s);
    }
    for (const auto& [k, v] : env)
      env_strings.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env_strings)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
  }
  ~Child() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of standard output (without '\n'); nullopt at EOF or after `bound`.
  std::optional<std::string> read_line(std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::read(out_fd_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Waits (bounded) for the exit; the raw wait status, or nullopt if it did not exit in time.
  std::optional<int> wait(std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    if (exit_status_) return exit_status_;
    const auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exit_status_ = st;
        return st;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // The exit code, or -1 when it was killed by a signal or did not exit in time.
  int exit_code(std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    auto st = wait(bound);
    if (!st || !WIFEXITED(*st)) return -1;
    return WEXITSTATUS(*st);
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  std::optional<int> exit_status_;
};

// A TCP connection to 127.0.0.1:port (throws when it cannot connect).
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
    }
    timeval tv{30, 0};  // a bound, so that a broken server fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Conn() { ::close(fd_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Everything until the server closes the connection.
  std::string read_to_eof() {
    std::string out;
    char buf[8192];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

  // One response with a Content-Length body; empty on EOF or error.
  std::string read_response() {
    for (;;) {
      const size_t head_end = buf_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        const std::string head = buf_.substr(0, head_end);
        const size_t cl = head.find("Content-Length: ");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 16));
        if (buf_.size() >= head_end + 4 + length) {
          std::string r = buf_.substr(0, head_end + 4 + length);
          buf_.erase(0, head_end + 4 + length);
          return r;
        }
      }
      char tmp[8192];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return {};
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Whether the server closed the connection (after what was read so far).
  bool closed_by_peer() {
    if (!buf_.empty()) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0;
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

// One request on a fresh connection; the whole raw response.
inline std::string http_exchange(int port, std::string_view request) {
  Conn c(port);
  c.send(request);
  return c.read_to_eof();
}

inline std::string get(int port, std::string_view path) {
  return http_exchange(port, "GET " + std::string(path) +
                                 " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
}

inline int status_of(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 9, "HTTP/1.1 ") != 0) return -1;
  return std::stoi(response.substr(9, 3));
}

inline std::string body_of(const std::string& response) {
  const size_t p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

// A port that was free a moment ago (for the one test that must pass an explicit port).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace slipway::lab::testing
