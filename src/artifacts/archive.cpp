#include "artifacts/archive.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/strings.h"

namespace slipway::artifacts {

namespace {

struct ReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using ReadPtr = std::unique_ptr<struct archive, ReadDeleter>;
using WritePtr = std::unique_ptr<struct archive, WriteDeleter>;
using EntryPtr = std::unique_ptr<struct archive_entry, EntryDeleter>;

std::string lib_error(struct archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown error";
}

// libarchive's status codes: ARCHIVE_OK and ARCHIVE_WARN mean the call did its job;
// everything else fails, including ARCHIVE_RETRY (-10), which compares above ARCHIVE_WARN (-20)
// and so must not be tested with "< ARCHIVE_WARN" (a damaged tar header reports RETRY).
bool lib_ok(la_ssize_t r) {
  return r == ARCHIVE_OK || r == ARCHIVE_WARN;
}

// CRC-32 as gzip computes it (reflected polynomial 0xEDB88320).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i)
    crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// Limits on the decompressed stream as a whole (headers, padding and anything after the end of
// the tar data included), so that no part of an archive can make us inflate without bound.
struct StreamLimits {
  uint64_t max_bytes;
  uint64_t max_ratio;
  uint64_t min_bytes_for_ratio;
};

StreamLimits stream_limits(const ExtractLimits& l) {
  // Room for headers beyond the file data: generous for real archives, still bounded.
  const uint64_t overhead = (16ULL << 20) + 4096ULL * l.max_entries;
  const uint64_t max =
      l.max_total_bytes > UINT64_MAX - overhead ? UINT64_MAX : l.max_total_bytes + overhead;
  return {max, l.max_ratio, l.min_bytes_for_ratio};
}

// A tar archive, compressed or not, read in two stages: a "raw" reader decompresses the file, and
// a tar reader parses what it produces. The split lets us see every decompressed byte, which
// libarchive's gzip decompressor does not check against the CRC-32 in the gzip trailer: we do.
// (A gzip file made of several concatenated members is therefore refused; tar tools write one.)
//
// The decompressors are named one by one rather than with archive_read_support_filter_all():
// "all" includes filters (lrzip, grzip, lzop, ...) that run an external program on the
// (untrusted) input.
//
// Not movable: the tar reader holds a pointer to it.
class TarStream {
 public:
  static Result<std::unique_ptr<TarStream>> open(const fs::path& archive, StreamLimits limits) {
    std::unique_ptr<TarStream> s(new TarStream(archive, limits));
    struct stat st;
    if (::stat(archive.c_str(), &st) != 0) {
      const int e = errno;
      if (e == ENOENT) {
        return err(Errc::not_found, fmt::format("archive {} does not exist", archive.string()));
      }
      return err(Errc::io,
                 fmt::format("cannot read archive {}: {}", archive.string(), std::strerror(e)));
    }
    s->archive_size_ = static_cast<uint64_t>(st.st_size);

    s->raw_.reset(archive_read_new());
    s->tar_.reset(archive_read_new());
    if (!s->raw_ || !s->tar_) return err(Errc::internal, "cannot allocate an archive reader");
    struct archive* raw = s->raw_.get();
    archive_read_support_filter_none(raw);
    archive_read_support_filter_gzip(raw);
    archive_read_support_filter_bzip2(raw);
    archive_read_support_filter_xz(raw);
    archive_read_support_filter_lzma(raw);
    archive_read_support_filter_zstd(raw);
    archive_read_support_filter_lz4(raw);
    archive_read_support_format_raw(raw);
    if (archive_read_open_filename(raw, archive.c_str(), 64 * 1024) != ARCHIVE_OK) {
      return err(Errc::invalid_argument,
                 fmt::format("archive {} is empty, corrupt or not a tar archive: {}",
                             archive.string(), lib_error(raw)));
    }
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(raw, &entry);
    if (r == ARCHIVE_EOF) {
      s->eof_ = true;  // an empty file: the tar reader will say it is not an archive
    } else if (!lib_ok(r)) {
      return err(Errc::invalid_argument,
                 fmt::format("archive {} is empty, corrupt or not a tar archive: {}",
                             archive.string(), lib_error(raw)));
    }
    s->gzip_ = archive_filter_code(raw, 0) == ARCHIVE_FILTER_GZIP;

    struct archive* tar = s->tar_.get();
    archive_read_support_filter_none(tar);
    archive_read_support_format_tar(tar);  // ustar, pax, GNU tar
    if (archive_read_open(tar, s.get(), nullptr, &TarStream::read_callback, nullptr) !=
        ARCHIVE_OK) {
      return s->failure();
    }
    return s;
  }

  struct archive* tar() const {
    return tar_.get();
  }
  uint64_t archive_size() const { return archive_size_; }

  // The error after a tar reader call failed: ours when the first stage failed, else libarchive's.
  Error failure() const {
    if (pending_) return *pending_;
    return err(Errc::invalid_argument, fmt::format("archive {} is corrupt or not a tar archive: {}",
                                                   path_.string(), lib_error(tar_.get())));
  }

  // Once the tar reader is done: reads what is left of the stream and checks the gzip trailer.
  Status finish() {
    const void* buf = nullptr;
    while (!eof_) {
      if (read_more(&buf) < 0) return *pending_;
    }
    if (!gzip_) return {};
    unsigned char trailer[8];
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && archive_size_ >= 18 &&
                    ::pread(fd, trailer, 8, static_cast<off_t>(archive_size_ - 8)) == 8;
    if (fd >= 0) ::close(fd);
    auto le32 = [&](int at) {
      return static_cast<uint32_t>(trailer[at]) | static_cast<uint32_t>(trailer[at + 1]) << 8 |
             static_cast<uint32_t>(trailer[at + 2]) << 16 |
             static_cast<uint32_t>(trailer[at + 3]) << 24;
    };
    if (!ok || le32(0) != crc_ || le32(4) != static_cast<uint32_t>(size_)) {
      return err(Errc::invalid_argument,
                 fmt::format("archive {} is corrupt: its gzip checksum does not match its content",
                             path_.string()));
    }
    return {};
  }

 private:
  TarStream(fs::path path, StreamLimits limits) : path_(std::move(path)), limits_(limits) {}

  static la_ssize_t read_callback(struct archive* tar, void* self, const void** buf) {
    auto* s = static_cast<TarStream*>(self);
    const la_ssize_t n = s->read_more(buf);
    if (n < 0) archive_set_error(tar, EINVAL, "%s", s->pending_->message.c_str());
    return n;
  }

  // The next block of decompressed bytes: its size, 0 at the end, -1 on an error (in pending_).
  la_ssize_t read_more(const void** buf) {
    while (!eof_) {
      size_t size = 0;
      la_int64_t offset = 0;
      const int r = archive_read_data_block(raw_.get(), buf, &size, &offset);
      if (r == ARCHIVE_EOF) {
        eof_ = true;
        break;
      }
      if (!lib_ok(r)) {
        pending_ = err(Errc::invalid_argument, fmt::format("archive {} is corrupt: {}",
                                                           path_.string(), lib_error(raw_.get())));
        return -1;
      }
      if (size == 0) continue;
      crc_ = crc32_update(crc_, *buf, size);
      size_ += size;
      if (size_ > limits_.max_bytes) {
        pending_ = err(Errc::too_large,
                       fmt::format("archive expands to more than {} bytes", limits_.max_bytes));
        return -1;
      }
      if (size_ > limits_.min_bytes_for_ratio &&
          static_cast<unsigned __int128>(size_) >
              static_cast<unsigned __int128>(archive_size_) * limits_.max_ratio) {
        pending_ = err(Errc::too_large,
                       fmt::format("archive expands more than {} times its size of {} bytes",
                                   limits_.max_ratio, archive_size_));
        return -1;
      }
      return static_cast<la_ssize_t>(size);
    }
    return 0;
  }

  fs::path path_;
  StreamLimits limits_;
  uint64_t archive_size_ = 0;
  ReadPtr raw_;
  ReadPtr tar_;
  bool gzip_ = false;
  bool eof_ = false;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
  std::optional<Error> pending_;
};

// Splits an entry's path into components, dropping "." and empty ones ("./a//b/" -> a, b).
// Returns nullopt for an absolute path or one with a ".." component.
std::optional<std::vector<std::string>> safe_components(std::string_view path) {
  if (path.starts_with('/')) return std::nullopt;
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const auto c = path.substr(i, j - i);
    if (c == "..") return std::nullopt;
    if (!c.empty() && c != ".") out.emplace_back(c);
    i = j + 1;
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i) out += '/';
    out += parts[i];
  }
  return out;
}

// Where a relative symlink target lands, resolved lexically from the link's directory: false when
// it climbs above the root (`dir` holds the components of the link's directory).
bool lexically_inside(std::vector<std::string> dir, std::string_view target) {
  size_t i = 0;
  while (i <= target.size()) {
    size_t j = target.find('/', i);
    if (j == std::string_view::npos) j = target.size();
    const auto c = target.substr(i, j - i);
    if (c == "..") {
      if (dir.empty()) return false;
      dir.pop_back();
    } else if (!c.empty() && c != ".") {
      dir.emplace_back(c);
    }
    i = j + 1;
  }
  return true;
}

// Resolves the symbolic link `link` (relative to `root`) as the kernel would, one component at a
// time with lstat/readlink, following links inside the tree (at most 40 of them, as Linux does).
// Returns "" when every step stays inside `root`, else the reason. Once a component does not exist
// the rest is resolved lexically, which is stricter than the kernel (it would stop there).
std::string physically_inside(const std::string& root, const std::string& link) {
  std::vector<std::string> at;  // components of the current position under root
  std::deque<std::string> todo;
  // (A named variable: a range-for over *temporary would dangle before C++23.)
  auto start = safe_components(link);
  if (!start) return "its path is not safe";
  for (auto& c : *start)
    todo.push_back(std::move(c));
  bool physical = true;
  int hops = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (at.empty()) return "it leads outside the release directory";
      at.pop_back();
      continue;
    }
    at.push_back(std::move(c));
    if (!physical) continue;
    const std::string here = root + "/" + join_path(at, at.size());
    struct stat st;
    if (::lstat(here.c_str(), &st) != 0) {
      physical = false;
      continue;
    }
    if (!S_ISLNK(st.st_mode)) continue;
    if (++hops > 40) return "too many levels of symbolic links";
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(here.c_str(), buf, sizeof buf);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return "a link on its way cannot be read";
    const std::string_view target(buf, static_cast<size_t>(n));
    if (target.starts_with('/')) return "a link on its way is absolute";
    at.pop_back();  // the link is replaced by its target, read from the link's directory
    std::vector<std::string> parts;
    size_t i = 0;
    while (i <= target.size()) {
      size_t j = target.find('/', i);
      if (j == std::string_view::npos) j = target.size();
      parts.emplace_back(target.substr(i, j - i));
      i = j + 1;
    }
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  return {};
}

// The sizes regular files declare, summed over the archive and held to the limits of the bytes
// that come out (the total, and the ratio once past min_bytes_for_ratio) before a byte of the
// entry is read or written. A sparse entry declares its apparent size, holes included: gigabytes
// in a few bytes of data, which the counts of data produced never see. Every tool that later
// reads such a file (hashing, copying, serving) reads the holes too.
class DeclaredSizes {
 public:
  DeclaredSizes(const ExtractLimits& limits, uint64_t archive_size)
      : limits_(limits), archive_size_(archive_size) {}

  // Adds a regular file's declared size (hard links declare nothing): too_large over a limit.
  Status add(struct archive_entry* entry) {
    if (!archive_entry_size_is_set(entry)) return {};
    const auto size = static_cast<uint64_t>(std::max<la_int64_t>(0, archive_entry_size(entry)));
    const char* sparse = archive_entry_sparse_count(entry) > 0 ? " (sparse files count at their "
                                                                 "full size)"
                                                               : "";
    if (size > limits_.max_total_bytes || total_ + size > limits_.max_total_bytes) {
      return err(Errc::too_large, fmt::format("archive expands to more than {} bytes{}",
                                              limits_.max_total_bytes, sparse));
    }
    total_ += size;
    if (total_ > limits_.min_bytes_for_ratio &&
        static_cast<unsigned __int128>(total_) >
            static_cast<unsigned __int128>(archive_size_) * limits_.max_ratio) {
      return err(Errc::too_large,
                 fmt::format("archive expands more than {} times its size of {} bytes{}",
                             limits_.max_ratio, archive_size_, sparse));
    }
    return {};
  }

 private:
  const ExtractLimits& limits_;
  uint64_t archive_size_;
  uint64_t total_ = 0;
};

enum class Kind { directory, file, symlink };

class Extractor {
 public:
  Extractor(fs::path archive, std::string root, const ExtractLimits& limits, uint64_t archive_size)
      : archive_(std::move(archive)),
        root_(std::move(root)),
        limits_(limits),
        archive_size_(archive_size),
        declared_(limits_, archive_size) {}

  Result<ExtractStats> run() {
    auto stream = TarStream::open(archive_, stream_limits(limits_));
    if (!stream) return stream.error();
    stream_ = stream->get();
    struct archive* in = stream_->tar();
    WritePtr out(archive_write_disk_new());
    if (!out) return err(Errc::internal, "cannot allocate an archive writer");
    // No ARCHIVE_EXTRACT_OWNER (owners are not restored) and no ARCHIVE_EXTRACT_PERM (the
    // process's umask applies, so an archive cannot make files world-writable); no ACLs, xattrs or
    // file flags. The SECURE flags are a second line of defence behind the checks below.
    archive_write_disk_set_options(
        out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                       ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_NO_OVERWRITE);
    for (;;) {
      struct archive_entry* entry = nullptr;
      const int r = archive_read_next_header(in, &entry);
      if (r == ARCHIVE_EOF) break;
      if (!lib_ok(r)) return stream_->failure();
      if (++entries_ > limits_.max_entries) {
        return err(Errc::too_large,
                   fmt::format("archive has more than {} entries", limits_.max_entries));
      }
      if (auto st = extract_one(in, out.get(), entry); !st) return st.error();
    }
    if (auto st = stream_->finish(); !st) return st.error();
    // Applies the permissions and times of directories, deferred until every entry is in.
    if (!lib_ok(archive_write_close(out.get()))) {
      return err(Errc::io,
                 fmt::format("cannot finish extracting into {}: {}", root_, lib_error(out.get())));
    }
    // The lexical checks cannot see what a chain of links does once it is on disk
    // (d/s -> ../t/.. with t -> . leads out although each looks harmless): follow each for real.
    for (const auto& link : symlinks_) {
      if (auto why = physically_inside(root_, link); !why.empty()) {
        return err(
            Errc::invalid_argument,
            fmt::format("archive entry '{}': symbolic link refused: {}", excerpt(link, 160), why));
      }
    }
    return stats_;
  }

 private:
  Error refuse(std::string_view path, std::string_view why) const {
    return err(Errc::invalid_argument,
               fmt::format("archive entry '{}': {}", excerpt(path, 160), why));
  }

  // Checks one entry against everything seen so far, then writes it.
  Status extract_one(struct archive* in, struct archive* out, struct archive_entry* entry) {
    const char* raw_path = archive_entry_pathname(entry);
    if (!raw_path || !*raw_path) return refuse("", "has no path");
    // Copies: the entry's strings are replaced below (absolute path, hard link target).
    const std::string path(raw_path);
    if (path.size() > limits_.max_path_length) {
      return refuse(path, fmt::format("path is longer than {} bytes", limits_.max_path_length));
    }
    if (path.starts_with('/')) return refuse(path, "absolute paths are not allowed");
    auto parts = safe_components(path);
    if (!parts) return refuse(path, "'..' is not allowed in a path");
    for (const auto& c : *parts) {
      if (c.size() > NAME_MAX) return refuse(path, "a path component is longer than 255 bytes");
    }
    const std::string rel = join_path(*parts, parts->size());
    const std::string abs = root_ + "/" + rel;
    if (abs.size() >= PATH_MAX) return refuse(path, "path is too long for this system");

    // The type, hard links first (their file type may read as regular).
    const char* raw_hardlink = archive_entry_hardlink(entry);
    const bool is_hardlink = raw_hardlink != nullptr;
    const std::string hardlink = is_hardlink ? raw_hardlink : "";
    const mode_t type = archive_entry_filetype(entry);
    Kind kind;
    if (is_hardlink || type == AE_IFREG) {
      kind = Kind::file;
    } else if (type == AE_IFDIR) {
      kind = Kind::directory;
    } else if (type == AE_IFLNK) {
      kind = Kind::symlink;
    } else {
      const char* what = type == AE_IFCHR    ? "character devices"
                         : type == AE_IFBLK  ? "block devices"
                         : type == AE_IFIFO  ? "FIFOs"
                         : type == AE_IFSOCK ? "sockets"
                                             : "entries of this type";
      return refuse(path, fmt::format("{} are not allowed", what));
    }

    if (rel.empty()) {
      // "." or "./": the release directory itself, which exists already.
      if (kind != Kind::directory || is_hardlink) return refuse(path, "has no file name");
      return {};
    }

    // Parents must be directories (named earlier or implied by earlier entries), never a link.
    for (size_t n = 1; n < parts->size(); ++n) {
      const std::string parent = join_path(*parts, n);
      auto it = seen_.find(parent);
      if (it == seen_.end()) {
        seen_.emplace(parent, Kind::directory);
      } else if (it->second == Kind::symlink) {
        return refuse(path, fmt::format("it lies inside the symbolic link '{}' of this archive",
                                        excerpt(parent, 160)));
      } else if (it->second == Kind::file) {
        return refuse(path, fmt::format("its parent '{}' is a file", excerpt(parent, 160)));
      }
    }
    if (auto it = seen_.find(rel); it != seen_.end()) {
      if (!(it->second == Kind::directory && kind == Kind::directory)) {
        return refuse(path, "appears more than once in the archive");
      }
    }

    if (is_hardlink) {
      auto target = safe_components(hardlink);
      if (!target || target->empty()) {
        return refuse(path, fmt::format("hard link to '{}' leaves the release directory",
                                        excerpt(hardlink, 160)));
      }
      const std::string target_rel = join_path(*target, target->size());
      auto it = seen_.find(target_rel);
      if (it == seen_.end() || it->second != Kind::file) {
        return refuse(path, fmt::format("hard link to '{}', which is not a regular file extracted "
                                        "before it",
                                        excerpt(hardlink, 160)));
      }
      archive_entry_set_hardlink(entry, (root_ + "/" + target_rel).c_str());
      // Data stored with a hard link would be written into the file it links to: ignore it.
      archive_entry_set_size(entry, 0);
      ++stats_.hardlinks;
    } else if (kind == Kind::symlink) {
      const char* target = archive_entry_symlink(entry);
      if (!target || !*target) return refuse(path, "symbolic link has no target");
      const std::string_view t(target);
      if (t.size() > limits_.max_path_length) {
        return refuse(path, "symbolic link target is too long");
      }
      if (t.starts_with('/')) {
        return refuse(path, fmt::format("symbolic link to the absolute path '{}' is not allowed",
                                        excerpt(t, 160)));
      }
      std::vector<std::string> dir(parts->begin(), parts->end() - 1);
      if (!lexically_inside(std::move(dir), t)) {
        return refuse(path, fmt::format("symbolic link to '{}' leads outside the release directory",
                                        excerpt(t, 160)));
      }
      symlinks_.push_back(rel);
      ++stats_.symlinks;
    } else if (kind == Kind::directory) {
      ++stats_.directories;
    } else {
      ++stats_.files;
    }
    seen_[rel] = kind;

    // Declared sizes count too, so that a huge sparse or skipped entry is refused up front.
    if (!is_hardlink && kind == Kind::file) {
      if (auto st = declared_.add(entry); !st) return st;
    }

    archive_entry_set_pathname(entry, abs.c_str());
    // setuid, setgid and sticky bits are dropped; directories stay usable by their owner so that
    // later entries can be written into them and the tree can be removed.
    mode_t perm = archive_entry_perm(entry) & 0777;
    if (kind == Kind::directory) perm |= 0700;
    archive_entry_set_perm(entry, perm);

    if (!lib_ok(archive_write_header(out, entry))) {
      return err(Errc::io,
                 fmt::format("cannot create '{}': {}", excerpt(path, 160), lib_error(out)));
    }
    if (kind == Kind::file && !is_hardlink) {
      if (auto st = copy_data(in, out, path); !st) return st;
    }
    if (!lib_ok(archive_write_finish_entry(out))) {
      return err(Errc::io,
                 fmt::format("cannot write '{}': {}", excerpt(path, 160), lib_error(out)));
    }
    return {};
  }

  Error too_big() const {
    return err(Errc::too_large,
               fmt::format("archive expands to more than {} bytes", limits_.max_total_bytes));
  }

  // Copies one file's data, counting the bytes actually produced by the decompressor (a header
  // can claim anything).
  Status copy_data(struct archive* in, struct archive* out, std::string_view path) {
    for (;;) {
      const void* buf = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      const int r = archive_read_data_block(in, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) return {};
      if (!lib_ok(r)) return stream_->failure();
      stats_.bytes += size;
      if (stats_.bytes > limits_.max_total_bytes) return too_big();
      if (stats_.bytes > limits_.min_bytes_for_ratio &&
          static_cast<unsigned __int128>(stats_.bytes) >
              static_cast<unsigned __int128>(archive_size_) * limits_.max_ratio) {
        return err(Errc::too_large,
                   fmt::format("archive expands more than {} times its size of {} bytes",
                               limits_.max_ratio, archive_size_));
      }
      if (!lib_ok(archive_write_data_block(out, buf, size, offset))) {
        return err(Errc::io,
                   fmt::format("cannot write '{}': {}", excerpt(path, 160), lib_error(out)));
      }
    }
  }

  fs::path archive_;
  std::string root_;
  ExtractLimits limits_;
  uint64_t archive_size_;
  uint64_t entries_ = 0;
  DeclaredSizes declared_;
  ExtractStats stats_;
  std::map<std::string, Kind> seen_;  // every path written or implied so far
  std::vector<std::string> symlinks_;
  TarStream* stream_ = nullptr;
};

}  // namespace

Result<ExtractStats> extract_archive(const fs::path& archive, const fs::path& dest,
                                     const ExtractLimits& limits) {
  struct stat ast;
  if (::stat(archive.c_str(), &ast) != 0) {
    const int e = errno;
    if (e == ENOENT) {
      return err(Errc::not_found, fmt::format("archive {} does not exist", archive.string()));
    }
    return err(Errc::io,
               fmt::format("cannot read archive {}: {}", archive.string(), std::strerror(e)));
  }
  if (!S_ISREG(ast.st_mode)) {
    return err(Errc::invalid_argument, fmt::format("{} is not a file", archive.string()));
  }

  // dest is built from the real path of its parent, so that no symbolic link lies on the way to
  // it, and every entry is written by absolute path under it (never chdir: other threads run).
  fs::path d = dest;
  if (!d.has_filename()) d = d.parent_path();
  const std::string name = d.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return err(Errc::invalid_argument,
               fmt::format("{} is not a valid destination directory", dest.string()));
  }
  const fs::path parent = d.has_parent_path() ? d.parent_path() : fs::path(".");
  char* real = ::realpath(parent.c_str(), nullptr);
  if (!real) {
    return err(Errc::io, fmt::format("cannot resolve the directory {}: {}", parent.string(),
                                     std::strerror(errno)));
  }
  std::string root = real;
  std::free(real);
  if (root != "/") root += '/';
  root += name;

  // Private while it is filled; opened up once the content has been checked.
  if (::mkdir(root.c_str(), 0700) != 0) {
    const int e = errno;
    if (e == EEXIST) {
      return err(Errc::conflict, fmt::format("cannot extract into {}: it exists already", root));
    }
    return err(Errc::io, fmt::format("cannot create {}: {}", root, std::strerror(e)));
  }

  auto result = Extractor(archive, root, limits, static_cast<uint64_t>(ast.st_size)).run();
  if (result && ::chmod(root.c_str(), 0755) != 0) {
    result =
        err(Errc::io, fmt::format("cannot set the mode of {}: {}", root, std::strerror(errno)));
  }
  if (!result) {
    (void)remove_tree(root);
  }
  return result;
}

Result<std::string> read_archive_file(const fs::path& archive, std::string_view name,
                                      size_t max_bytes) {
  const auto wanted = safe_components(name);
  if (!wanted || wanted->empty()) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a valid file name", excerpt(name, 160)));
  }
  const std::string wanted_rel = join_path(*wanted, wanted->size());
  auto stream = TarStream::open(archive, stream_limits(ExtractLimits{}));
  if (!stream) return stream.error();
  struct archive* in = (*stream)->tar();
  for (;;) {
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) break;
    if (!lib_ok(r)) return (*stream)->failure();
    const char* p = archive_entry_pathname(entry);
    if (!p) continue;
    const auto parts = safe_components(p);
    if (!parts || join_path(*parts, parts->size()) != wanted_rel) continue;
    if (archive_entry_hardlink(entry) || archive_entry_filetype(entry) != AE_IFREG) {
      return err(Errc::invalid_argument, fmt::format("{} in archive {} is not a regular file",
                                                     wanted_rel, archive.string()));
    }
    std::string out;
    char buf[16384];
    for (;;) {
      const la_ssize_t n = archive_read_data(in, buf, sizeof buf);
      if (n < 0) return (*stream)->failure();
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > max_bytes) {
        return err(Errc::too_large, fmt::format("{} in archive {} is larger than {} bytes",
                                                wanted_rel, archive.string(), max_bytes));
      }
    }
    return out;
  }
  return err(Errc::not_found,
             fmt::format("archive {} holds no file {}", archive.string(), wanted_rel));
}

Result<std::vector<ListedEntry>> list_archive(const fs::path& archive,
                                              const ExtractLimits& limits) {
  auto stream = TarStream::open(archive, stream_limits(limits));
  if (!stream) return stream.error();
  struct archive* in = (*stream)->tar();
  DeclaredSizes declared(limits, (*stream)->archive_size());
  std::vector<ListedEntry> out;
  uint64_t total = 0;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) break;
    if (!lib_ok(r)) return (*stream)->failure();
    if (out.size() >= limits.max_entries) {
      return err(Errc::too_large, fmt::format("archive {} has more than {} entries",
                                              archive.string(), limits.max_entries));
    }
    const char* p = archive_entry_pathname(entry);
    if (!p) continue;
    if (std::strlen(p) > limits.max_path_length) {
      return err(Errc::invalid_argument,
                 fmt::format("an entry path of archive {} is longer than {} bytes",
                             archive.string(), limits.max_path_length));
    }
    const auto parts = safe_components(p);
    if (!parts) {
      return err(Errc::invalid_argument, fmt::format("archive {}: unsafe entry path '{}'",
                                                     archive.string(), excerpt(p, 160)));
    }
    if (parts->empty()) continue;  // "." itself
    ListedEntry e;
    e.path = join_path(*parts, parts->size());
    e.mode = static_cast<unsigned>(archive_entry_perm(entry));
    if (const char* hl = archive_entry_hardlink(entry)) {
      e.type = EntryType::hardlink;
      e.link_target = hl;
    } else {
      switch (archive_entry_filetype(entry)) {
        case AE_IFREG:
          e.type = EntryType::file;
          break;
        case AE_IFDIR:
          e.type = EntryType::directory;
          break;
        case AE_IFLNK:
          e.type = EntryType::symlink;
          e.link_target = archive_entry_symlink(entry) ? archive_entry_symlink(entry) : "";
          break;
        case AE_IFCHR:
          e.type = EntryType::char_device;
          break;
        case AE_IFBLK:
          e.type = EntryType::block_device;
          break;
        default:
          e.type = EntryType::fifo;
          break;
      }
    }
    if (e.type == EntryType::file) {
      // Reading a sparse file's data fills its holes with zeros: its apparent size is hashed.
      if (auto st = declared.add(entry); !st) {
        return err(Errc::too_large,
                   fmt::format("archive {}: {}", archive.string(), st.error().message));
      }
      Sha256 h;
      for (;;) {
        const la_ssize_t n = archive_read_data(in, buf.data(), buf.size());
        if (n < 0) return (*stream)->failure();
        if (n == 0) break;
        h.update(buf.data(), static_cast<size_t>(n));
        e.size += static_cast<uint64_t>(n);
        total += static_cast<uint64_t>(n);
        if (total > limits.max_total_bytes) {
          return err(Errc::too_large, fmt::format("archive {} holds more than {} bytes",
                                                  archive.string(), limits.max_total_bytes));
        }
      }
      e.sha256 = h.hex_digest();
    }
    out.push_back(std::move(e));
  }
  return out;
}

ReleaseDiff diff_listings(const std::vector<ListedEntry>& from,
                          const std::vector<ListedEntry>& to) {
  std::map<std::string, const ListedEntry*> a;
  std::map<std::string, const ListedEntry*> b;
  for (const auto& e : from)
    a[e.path] = &e;
  for (const auto& e : to)
    b[e.path] = &e;
  ReleaseDiff d;
  for (const auto& [path, e] : b) {
    auto it = a.find(path);
    if (it == a.end()) {
      d.added.push_back(*e);
      continue;
    }
    const ListedEntry& old = *it->second;
    const bool same =
        old.type == e->type && old.mode == e->mode &&
        (e->type == EntryType::directory ||
         (old.sha256 == e->sha256 && old.size == e->size && old.link_target == e->link_target));
    if (same) {
      ++d.unchanged;
    } else {
      d.changed.emplace_back(old, *e);
    }
  }
  for (const auto& [path, e] : a) {
    if (!b.count(path)) d.removed.push_back(*e);
  }
  return d;
}

namespace {

// A fixed time for entries written by write_tar_gz, so that the same entries give the same bytes.
constexpr time_t kFixedMtime = 1'700'000'000;  // 2023-11-14

Result<WritePtr> open_writer(const fs::path& out) {
  WritePtr a(archive_write_new());
  if (!a) return err(Errc::internal, "cannot allocate an archive writer");
  if (archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK) {
    return err(Errc::internal,
               fmt::format("cannot set up a .tar.gz writer: {}", lib_error(a.get())));
  }
  // No time stamp in the gzip header: the output depends on the entries only.
  archive_write_set_options(a.get(), "gzip:!timestamp");
  if (archive_write_open_filename(a.get(), out.c_str()) != ARCHIVE_OK) {
    return err(Errc::io, fmt::format("cannot create {}: {}", out.string(), lib_error(a.get())));
  }
  return a;
}

Status write_failed(struct archive* a, const fs::path& out, std::string_view entry) {
  return err(Errc::io, fmt::format("cannot write '{}' to {}: {}", excerpt(entry, 160), out.string(),
                                   lib_error(a)));
}

Status write_entries(struct archive* a, const fs::path& out,
                     const std::vector<ArchiveEntry>& entries) {
  for (const auto& e : entries) {
    EntryPtr ae(archive_entry_new());
    archive_entry_copy_pathname(ae.get(), e.path.c_str());
    archive_entry_set_mtime(ae.get(), kFixedMtime, 0);
    archive_entry_set_perm(ae.get(), e.mode & 07777);
    std::string_view data;
    switch (e.type) {
      case EntryType::file:
        archive_entry_set_filetype(ae.get(), AE_IFREG);
        archive_entry_set_size(ae.get(), e.declared_size >= 0
                                             ? e.declared_size
                                             : static_cast<int64_t>(e.content.size()));
        data = e.content;
        break;
      case EntryType::directory:
        archive_entry_set_filetype(ae.get(), AE_IFDIR);
        break;
      case EntryType::symlink:
        archive_entry_set_filetype(ae.get(), AE_IFLNK);
        archive_entry_copy_symlink(ae.get(), e.link_target.c_str());
        break;
      case EntryType::hardlink:
        archive_entry_set_filetype(ae.get(), AE_IFREG);
        archive_entry_copy_hardlink(ae.get(), e.link_target.c_str());
        archive_entry_set_size(ae.get(), 0);
        break;
      case EntryType::fifo:
        archive_entry_set_filetype(ae.get(), AE_IFIFO);
        break;
      case EntryType::char_device:
        archive_entry_set_filetype(ae.get(), AE_IFCHR);
        archive_entry_set_rdevmajor(ae.get(), 1);  // /dev/null's numbers
        archive_entry_set_rdevminor(ae.get(), 3);
        break;
      case EntryType::block_device:
        archive_entry_set_filetype(ae.get(), AE_IFBLK);
        archive_entry_set_rdevmajor(ae.get(), 7);  // a loop device
        archive_entry_set_rdevminor(ae.get(), 0);
        break;
    }
    if (!lib_ok(archive_write_header(a, ae.get()))) return write_failed(a, out, e.path);
    // The tar writer stores exactly the declared size: it cuts longer content and pads shorter
    // content with zero bytes.
    size_t off = 0;
    while (off < data.size()) {
      const la_ssize_t n = archive_write_data(a, data.data() + off, data.size() - off);
      if (n < 0) return write_failed(a, out, e.path);
      if (n == 0) break;  // the declared size is reached
      off += static_cast<size_t>(n);
    }
    if (!lib_ok(archive_write_finish_entry(a))) return write_failed(a, out, e.path);
  }
  return {};
}

Status write_dir_entries(struct archive* a, const fs::path& out, const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> paths;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  if (ec) return err(Errc::io, fmt::format("cannot read {}: {}", dir.string(), ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    paths.push_back(it->path().lexically_relative(dir));
  }
  if (ec) return err(Errc::io, fmt::format("cannot read {}: {}", dir.string(), ec.message()));
  std::sort(paths.begin(), paths.end());

  // The archive itself may be written inside `dir`: leave it out.
  struct stat out_st {};
  const bool have_out = ::stat(out.c_str(), &out_st) == 0;

  std::vector<char> buf(1 << 16);
  for (const auto& rel : paths) {
    const fs::path full = dir / rel;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) {
      return err(Errc::io, fmt::format("cannot stat {}: {}", full.string(), std::strerror(errno)));
    }
    if (have_out && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino) continue;
    EntryPtr ae(archive_entry_new());
    archive_entry_copy_pathname(ae.get(), rel.c_str());
    archive_entry_set_mtime(ae.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    archive_entry_set_perm(ae.get(), st.st_mode & 07777);
    int fd = -1;
    if (S_ISREG(st.st_mode)) {
      archive_entry_set_filetype(ae.get(), AE_IFREG);
      archive_entry_set_size(ae.get(), st.st_size);
      fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        return err(Errc::io,
                   fmt::format("cannot open {}: {}", full.string(), std::strerror(errno)));
      }
    } else if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(ae.get(), AE_IFDIR);
    } else if (S_ISLNK(st.st_mode)) {
      archive_entry_set_filetype(ae.get(), AE_IFLNK);
      char target[PATH_MAX];
      const ssize_t n = ::readlink(full.c_str(), target, sizeof target - 1);
      if (n < 0) {
        return err(Errc::io,
                   fmt::format("cannot read link {}: {}", full.string(), std::strerror(errno)));
      }
      target[n] = '\0';
      archive_entry_copy_symlink(ae.get(), target);
    } else {
      return err(
          Errc::invalid_argument,
          fmt::format("{} is not a regular file, directory or symbolic link", full.string()));
    }
    if (!lib_ok(archive_write_header(a, ae.get()))) {
      if (fd >= 0) ::close(fd);
      return write_failed(a, out, rel.string());
    }
    if (fd >= 0) {
      // Never more than the size announced in the header, even if the file grows meanwhile.
      uint64_t left = static_cast<uint64_t>(st.st_size);
      while (left > 0) {
        const ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(buf.size(), left));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // a file that shrank is padded by the writer
        if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) < 0) {
          ::close(fd);
          return write_failed(a, out, rel.string());
        }
        left -= static_cast<uint64_t>(n);
      }
      ::close(fd);
    }
    if (!lib_ok(archive_write_finish_entry(a))) return write_failed(a, out, rel.string());
  }
  return {};
}

template <class Fill>
Status write_archive(const fs::path& out, Fill&& fill) {
  auto a = open_writer(out);
  if (!a) return a.error();
  Status st = fill(a->get());
  if (st && archive_write_close(a->get()) != ARCHIVE_OK) {
    st = err(Errc::io, fmt::format("cannot finish {}: {}", out.string(), lib_error(a->get())));
  }
  a->reset();
  if (!st) ::unlink(out.c_str());
  return st;
}

}  // namespace

Status write_tar_gz(const fs::path& out, const std::vector<ArchiveEntry>& entries) {
  return write_archive(out, [&](struct archive* a) { return write_entries(a, out, entries); });
}

Status write_tar_gz_from_dir(const fs::path& out, const fs::path& dir) {
  return write_archive(out, [&](struct archive* a) { return write_dir_entries(a, out, dir); });
}

}  // namespace slipway::artifacts
