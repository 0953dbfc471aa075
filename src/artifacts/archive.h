// Artifacts on disk: safe extraction of a .tar.gz release, reading one file out of an archive, and
// writing archives (for the demo, the lab and the tests).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::artifacts {

namespace fs = std::filesystem;

struct ExtractLimits {
  uint64_t max_total_bytes = 4ULL << 30;  // sum of the sizes of all files
  uint64_t max_entries = 100'000;
  // Expanded size over archive size; checked only once more than min_bytes_for_ratio are out.
  uint64_t max_ratio = 1000;
  uint64_t min_bytes_for_ratio = 64ULL << 20;
  size_t max_path_length = 1024;
};

struct ExtractStats {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;
  uint64_t bytes = 0;
};

// Extracts `archive` (tar, optionally gzip/xz/zstd/bzip2-compressed; format detected) into
// `dest`, which must not exist yet (its parent must). Refuses, with an invalid_argument error that
// names the entry: absolute paths, ".." components, entries through a symbolic link, symbolic
// links whose target (followed through any chain of links) leaves `dest`, hard links to anything
// but a regular file extracted earlier from the same archive, device nodes, FIFOs and sockets,
// duplicate entries, over-long paths, and archives over the limits (too_large). setuid, setgid
// and sticky bits are dropped; owners are not restored. On any error `dest` is removed, so nothing
// half-extracted is left behind, and nothing outside `dest` has been touched.
Result<ExtractStats> extract_archive(const fs::path& archive, const fs::path& dest,
                                     const ExtractLimits& limits = {});

// The content of the regular file `name` ("slipway.yaml" also matches "./slipway.yaml") in the
// archive; not_found when absent, too_large over max_bytes, invalid_argument when the archive is
// not readable.
Result<std::string> read_archive_file(const fs::path& archive, std::string_view name,
                                      size_t max_bytes = 1 << 20);

enum class EntryType { file, directory, symlink, hardlink, fifo, char_device, block_device };

// One entry of an archive as listed: its path (normalized: "./a//b" is "a/b"), type, size, the
// SHA-256 of a regular file's content, the target of a link, and its permission bits.
struct ListedEntry {
  std::string path;
  EntryType type = EntryType::file;
  uint64_t size = 0;
  std::string sha256;       // file
  std::string link_target;  // symlink, hardlink
  unsigned mode = 0;
};

// Every entry of `archive`, in archive order, under the same limits as extraction (entries,
// bytes, ratio; too_large beyond them); invalid_argument for an unreadable archive or an entry
// whose path is unsafe (absolute, ".."). Reads the whole archive: call it off the I/O thread.
Result<std::vector<ListedEntry>> list_archive(const fs::path& archive,
                                              const ExtractLimits& limits = {});

// What changed between two releases' listings: paths only in `to` (added), only in `from`
// (removed), and in both with another type, content, link target or mode (changed); directories
// count only when added or removed. Each list sorted by path.
struct ReleaseDiff {
  std::vector<ListedEntry> added;
  std::vector<ListedEntry> removed;
  std::vector<std::pair<ListedEntry, ListedEntry>> changed;  // (from, to)
  uint64_t unchanged = 0;
};
ReleaseDiff diff_listings(const std::vector<ListedEntry>& from, const std::vector<ListedEntry>& to);

// One entry of an archive to write. Paths are written exactly as given (so that tests can write
// hostile ones: "../x", "/etc/x", ...).
struct ArchiveEntry {
  std::string path;
  EntryType type = EntryType::file;
  std::string content;      // file
  std::string link_target;  // symlink, hardlink
  unsigned mode = 0644;     // permission bits, may include 04000/02000
  // file: size in the header; -1 means content.size(). The tar writer stores exactly this many
  // bytes: longer content is cut, shorter content padded with zero bytes (so a large
  // declared_size with empty content makes a large, highly compressible file cheaply).
  int64_t declared_size = -1;
};

// Writes a gzip-compressed POSIX (pax) tar archive. Entries get a fixed modification time and the
// gzip header no time stamp, so the same entries always give the same bytes.
Status write_tar_gz(const fs::path& out, const std::vector<ArchiveEntry>& entries);

// Writes a .tar.gz of the contents of `dir` (entries relative to it, sorted, regular files,
// directories and symlinks, modes kept).
Status write_tar_gz_from_dir(const fs::path& out, const fs::path& dir);

}  // namespace slipway::artifacts
