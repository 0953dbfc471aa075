// Authenticated encryption of small secrets at rest (libsodium's XChaCha20-Poly1305 IETF AEAD),
// under one 32-byte key kept in a file of the server's data directory.
//
// Sealed text: "v1:" + hex(24-byte random nonce || ciphertext || 16-byte tag). The associated
// data (e.g. "ENV/APP/KEY") binds a value to its place: a sealed value copied to another key or
// app does not open.
#pragma once

#include <array>
#include <filesystem>
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
  static Result<SecretKey> load_or_create(const std::filesystem::path& path);
  static SecretKey from_bytes(const std::array<unsigned char, kSize>& bytes);
  static SecretKey random();

  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();

  // Never fails (libsodium is initialised on first use).
  std::string seal(std::string_view plain, std::string_view associated) const;
  // invalid_argument when `sealed` is malformed; internal when the tag does not verify (a wrong
  // key, other associated data, or tampering). The error never holds any of the plain text.
  Result<std::string> open(std::string_view sealed, std::string_view associated) const;

 private:
  SecretKey() = default;
  std::array<unsigned char, kSize> key_{};
};

}  // namespace slipway
