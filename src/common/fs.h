// File helpers that report errors as values and write atomically.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

namespace fs = std::filesystem;

Result<std::string> read_file(const fs::path& path, size_t max_bytes = 64 << 20);

// Writes to a temporary file next to `path`, fsyncs, sets `mode`, then renames it into place:
// readers see either the old or the new content, never a mix.
Status write_file_atomic(const fs::path& path, std::string_view content, unsigned mode = 0644);

Status ensure_dir(const fs::path& path, unsigned mode = 0755);

// Replaces (or creates) the symbolic link `link` so that it points to `target`, atomically
// (a new link under a temporary name, then rename(2) over the old one).
Status replace_symlink(const fs::path& link, const fs::path& target);

// Removes a tree; a missing tree is not an error.
Status remove_tree(const fs::path& path);

}  // namespace slipway
