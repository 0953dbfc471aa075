// Authenticated encryption of small secrets at rest (libsodium's XChaCha20-Poly1305 IETF AEAD),
// under one 32-byte key kept in a file of the server's data directory.
//
// Sealed text: "v1:" + hex(24-byte random nonce || ciphertext || 16-byte tag). The associated
// data (e.g. "ENV/APP/KEY") binds a value to its place: a sealed value copied to another key or
// app does not open.
//
// The same kind of key file also keys the audit log's HMAC chain (DATA/audit.key): one key per
// purpose, each created and checked the same way.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

class SecretKey {
 public:
  static constexpr size_t kSize = 32;

  // The key in `path`: created (random, mode 0600, exclusively) when the file does not exist.
  // Refused (failed_precondition, naming the file and the fix) when the file exists and is not a
  // regular file, is readable or writable by anyone but its owner, or is not exactly kSize bytes.
  // `what` names the key in errors ("secrets key", "audit key").
  static Result<SecretKey> load_or_create(const std::filesystem::path& path,
                                          std::string_view what = "secrets key");
  // The key in `path` with the same checks, std::nullopt when the file does not exist.
  static Result<std::optional<SecretKey>> load(const std::filesystem::path& path,
                                               std::string_view what);
  static SecretKey from_bytes(const std::array<unsigned char, kSize>& bytes);
  static SecretKey random();

  // Writes the key to a new file `path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, fsynced; removed
  // again when it cannot be written whole). An existing file or link there is an error. The
  // directory entry is not synced: see sync_dir.
  Status write_file(const std::filesystem::path& path, std::string_view what) const;

  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();

  // Never fails (libsodium is initialised on first use).
  std::string seal(std::string_view plain, std::string_view associated) const;
  // invalid_argument when `sealed` is malformed; internal when the tag does not verify (a wrong
  // key, other associated data, or tampering). The error never holds any of the plain text.
  Result<std::string> open(std::string_view sealed, std::string_view associated) const;

  // HMAC-SHA256 of `data` under this key, lower-case hex (64 characters).
  std::string mac_hex(std::string_view data) const;
  // Whether `mac` is mac_hex(data), compared in constant time.
  bool verify_mac(std::string_view data, std::string_view mac) const;

 private:
  SecretKey() = default;
  std::array<unsigned char, kSize> key_{};
};

// fsync of a directory, so that a file created, renamed or linked in it survives a power loss.
Status sync_dir(const std::filesystem::path& dir);

}  // namespace slipway
