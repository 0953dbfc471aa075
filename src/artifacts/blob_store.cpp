#include "artifacts/blob_store.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/strings.h"

namespace slipway::artifacts {

namespace {

Error io_error(std::string_view what, const fs::path& path, int e) {
  return err(Errc::io, fmt::format("{} {}: {}", what, path.string(), std::strerror(e)));
}

Error bad_digest(std::string_view sha256) {
  return err(
      Errc::invalid_argument,
      fmt::format("'{}' is not a SHA-256 digest (64 lower-case hex digits)", sha256.substr(0, 80)));
}

// Flushes a file's or a directory's content to disk.
Status fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno);
  const int r = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (r != 0) return io_error("cannot flush", path, e);
  return {};
}

}  // namespace

BlobStore::BlobStore(fs::path root) : root_(std::move(root)) {}

Status BlobStore::open() {
  if (auto st = ensure_dir(root_ / "sha256"); !st) return st;
  if (auto st = ensure_dir(root_ / "tmp", 0700); !st) return st;
  // Anything in tmp is an upload that a crash interrupted: nobody can finish it any more.
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rm_ec;
    fs::remove_all(it->path(), rm_ec);
    if (rm_ec) {
      return err(Errc::io, fmt::format("cannot remove the leftover upload {}: {}",
                                       it->path().string(), rm_ec.message()));
    }
  }
  if (ec) {
    return err(Errc::io, fmt::format("cannot list {}: {}", (root_ / "tmp").string(), ec.message()));
  }
  return {};
}

fs::path BlobStore::temp_path() {
  return root_ / "tmp" / ("upload-" + random_hex(16));
}

fs::path BlobStore::path_of(const std::string& sha256) const {
  if (!is_sha256_hex(sha256)) return {};
  return root_ / "sha256" / sha256.substr(0, 2) / sha256;
}

bool BlobStore::contains(const std::string& sha256) const {
  if (!is_sha256_hex(sha256)) return false;
  struct stat st;
  return ::stat(path_of(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::string> BlobStore::commit(const fs::path& temp_file,
                                      const std::optional<std::string>& expected_sha256) {
  auto discard = [&] { ::unlink(temp_file.c_str()); };
  std::optional<std::string> expected;
  if (expected_sha256) {
    expected = to_lower(*expected_sha256);
    if (!is_sha256_hex(*expected)) {
      discard();
      return bad_digest(*expected_sha256);
    }
  }
  auto digest = sha256_file(temp_file);
  if (!digest) {
    discard();
    return digest.error();
  }
  if (expected && *expected != *digest) {
    discard();
    return err(Errc::invalid_argument,
               fmt::format("the content's SHA-256 is {}, not the expected {}", *digest, *expected));
  }
  const fs::path final_path = path_of(*digest);
  if (contains(*digest)) {
    // Stored already: content addressing makes the two identical.
    discard();
    return *digest;
  }
  // The content must be on disk before its name is, or a crash could leave a named, empty blob.
  // Blobs are immutable: read-only for everyone.
  if (::chmod(temp_file.c_str(), 0444) != 0) {
    const int e = errno;
    discard();
    return io_error("cannot set the mode of", temp_file, e);
  }
  if (auto st = fsync_path(temp_file, false); !st) {
    discard();
    return st.error();
  }
  const fs::path dir = final_path.parent_path();
  if (auto st = ensure_dir(dir); !st) {
    discard();
    return st.error();
  }
  // rename(2) replaces atomically: two commits of the same content may race here harmlessly.
  if (::rename(temp_file.c_str(), final_path.c_str()) != 0) {
    const int e = errno;
    if (e != EXDEV) {
      discard();
      return io_error("cannot move the upload to", final_path, e);
    }
    // The temporary file lives on another file system: copy it into ours first.
    const fs::path local = temp_path();
    std::error_code ec;
    fs::copy_file(temp_file, local, ec);
    discard();
    if (ec) {
      ::unlink(local.c_str());
      return err(Errc::io,
                 fmt::format("cannot copy the upload to {}: {}", local.string(), ec.message()));
    }
    ::chmod(local.c_str(), 0444);
    if (auto st = fsync_path(local, false); !st) {
      ::unlink(local.c_str());
      return st.error();
    }
    if (::rename(local.c_str(), final_path.c_str()) != 0) {
      const int e2 = errno;
      ::unlink(local.c_str());
      return io_error("cannot move the upload to", final_path, e2);
    }
  }
  if (auto st = fsync_path(dir, true); !st) return st.error();
  return *digest;
}

Result<uint64_t> BlobStore::size_of(const std::string& sha256) const {
  if (!is_sha256_hex(sha256)) return bad_digest(sha256);
  struct stat st;
  if (::stat(path_of(sha256).c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) return err(Errc::not_found, fmt::format("no blob {}", sha256));
    return io_error("cannot stat", path_of(sha256), e);
  }
  return static_cast<uint64_t>(st.st_size);
}

Status BlobStore::verify(const std::string& sha256) const {
  if (!is_sha256_hex(sha256)) return bad_digest(sha256);
  if (!contains(sha256)) return err(Errc::not_found, fmt::format("no blob {}", sha256));
  auto digest = sha256_file(path_of(sha256));
  if (!digest) return digest.error();
  if (*digest != sha256) {
    return err(Errc::io,
               fmt::format("blob {} is corrupt: its content hashes to {}", sha256, *digest));
  }
  return {};
}

Status BlobStore::remove(const std::string& sha256) {
  if (!is_sha256_hex(sha256)) return bad_digest(sha256);
  const fs::path p = path_of(sha256);
  if (::unlink(p.c_str()) != 0) {
    const int e = errno;
    if (e == ENOENT) return {};  // removing what is gone is not an error (retention may race)
    return io_error("cannot remove", p, e);
  }
  if (auto st = fsync_path(p.parent_path(), true); !st) return st.error();
  return {};
}

}  // namespace slipway::artifacts
