// Safe extraction of release archives: the input bytes are written to a file and extracted into
// a fresh directory with small limits. Whatever the bytes, extraction either fails and leaves
// nothing, or succeeds and every entry is inside the release: no symbolic link resolves outside
// it, no device node, FIFO, socket or setuid/setgid file exists, and nothing next to the release
// has been created.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <unistd.h>

#include "artifacts/archive.h"

namespace fs = std::filesystem;
using namespace slipway::artifacts;

namespace {

// A scratch directory in memory when there is one (/dev/shm): extraction is file-system work, and
// on a busy disk it, not the code under test, would set the pace.
const fs::path& scratch() {
  static const fs::path dir = [] {
    std::error_code ec;
    const fs::path base = ::access("/dev/shm", W_OK) == 0 && fs::is_directory("/dev/shm", ec)
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    std::string tmpl = (base / "slipway-fuzz-archive-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl);
  }();
  static const bool cleanup = [] {
    // libFuzzer ends a timed run with exit(): leave no scratch directory behind.
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(dir, ec);
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

bool inside(const fs::path& root, const fs::path& p) {
  const auto rel = p.lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

void check_release(const fs::path& dest) {
  std::error_code ec;
  const fs::path root = fs::canonical(dest, ec);
  if (ec) std::abort();
  for (auto it = fs::recursive_directory_iterator(dest, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto st = it->symlink_status();
    if (fs::is_symlink(st)) {
      // A link must resolve inside the release (or dangle inside it).
      const fs::path resolved = fs::weakly_canonical(it->path(), ec);
      if (ec || !inside(root, resolved)) std::abort();
      continue;
    }
    if (!fs::is_regular_file(st) && !fs::is_directory(st)) std::abort();  // device, FIFO, socket
    const auto perms = st.permissions();
    if ((perms & (fs::perms::set_uid | fs::perms::set_gid)) != fs::perms::none) std::abort();
  }
  if (ec) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 20) return 0;
  const fs::path& dir = scratch();
  const fs::path archive = dir / "in.tar";
  const fs::path dest = dir / "release";
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) std::abort();
  }
  ExtractLimits limits;
  limits.max_total_bytes = 2 << 20;
  limits.max_entries = 256;
  limits.max_ratio = 100;
  limits.min_bytes_for_ratio = 256 << 10;
  limits.max_path_length = 256;
  auto r = extract_archive(archive, dest, limits);
  std::error_code ec;
  if (r) {
    check_release(dest);
  } else if (fs::exists(fs::symlink_status(dest, ec))) {
    std::abort();  // a refused archive leaves nothing behind
  }
  fs::remove_all(dest, ec);
  // Nothing but the archive (and the release, just removed) was ever in the scratch directory.
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path() != archive) std::abort();
  }
  return 0;
}
