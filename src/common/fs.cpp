#include "common/fs.h"

#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace slipway {

namespace {
Error io_error(std::string_view what, const fs::path& path, int e) {
  return err(Errc::io, fmt::format("{} {}: {}", what, path.string(), std::strerror(e)));
}

std::string temp_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format(".tmp.{}.{:x}", ::getpid(), rng() & 0xffffff);
}
}  // namespace

Result<std::string> read_file(const fs::path& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return err(Errc::not_found, fmt::format("{} does not exist", path.string()));
    return io_error("cannot open", path, e);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return io_error("cannot read", path, e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return err(Errc::too_large,
                 fmt::format("{} is larger than {} bytes", path.string(), max_bytes));
    }
  }
  ::close(fd);
  return out;
}

Status write_file_atomic(const fs::path& path, std::string_view content, unsigned mode) {
  const fs::path tmp = path.string() + temp_suffix();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return io_error("cannot create", tmp, errno);
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return io_error("cannot write", tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);  // O_CREAT's mode is filtered by the umask; the caller asked for this one
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot flush", tmp, e);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot rename into", path, e);
  }
  return {};
}

Status ensure_dir(const fs::path& path, unsigned mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    return err(Errc::io,
               fmt::format("cannot create directory {}: {}", path.string(), ec.message()));
  }
  if (!fs::is_directory(path, ec)) {
    return err(Errc::io, fmt::format("{} exists and is not a directory", path.string()));
  }
  ::chmod(path.c_str(), mode);
  return {};
}

Status replace_symlink(const fs::path& link, const fs::path& target) {
  const fs::path tmp = link.string() + temp_suffix();
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    return io_error("cannot create link", tmp, errno);
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot switch link", link, e);
  }
  // Make the switch durable: fsync the directory that holds the link.
  const int dfd = ::open(link.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

Status remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return err(Errc::io, fmt::format("cannot remove {}: {}", path.string(), ec.message()));
  return {};
}

}  // namespace slipway
