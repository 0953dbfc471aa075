// Content-addressed storage of artifact bytes: each distinct content is stored once, under its
// SHA-256, at ROOT/sha256/<2 hex>/<64 hex>. Uploads land in ROOT/tmp first and are moved into
// place only once hashed, so a reader never sees a partial blob.
//
// Thread-safety: all methods may be called from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/error.h"

namespace slipway::artifacts {

namespace fs = std::filesystem;

class BlobStore {
 public:
  explicit BlobStore(fs::path root);

  // Creates ROOT/sha256 and ROOT/tmp, and removes temporary files left by a crash.
  Status open();

  // A fresh, unique path under ROOT/tmp for an upload in progress (the file is not created).
  fs::path temp_path();

  // Hashes `temp_file` (streaming) and moves it to its content address; when a blob with the same
  // content exists, the temporary file is removed instead. When `expected_sha256` is given and
  // differs, the temporary file is removed and an invalid_argument error is returned.
  // Returns the SHA-256 (lower-case hex).
  Result<std::string> commit(const fs::path& temp_file,
                             const std::optional<std::string>& expected_sha256 = std::nullopt);

  // An empty path when `sha256` is not 64 lower-case hex digits (so that no caller can be led
  // outside ROOT by a crafted digest).
  fs::path path_of(const std::string& sha256) const;
  bool contains(const std::string& sha256) const;
  Result<uint64_t> size_of(const std::string& sha256) const;
  // Re-hashes the stored blob; an io error when it no longer matches its address.
  Status verify(const std::string& sha256) const;
  // Removing a blob that is not there is not an error.
  Status remove(const std::string& sha256);

  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
};

}  // namespace slipway::artifacts
