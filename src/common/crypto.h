// Hashing and randomness (OpenSSL).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

// Incremental SHA-256. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex_digest();  // lower-case hex; finishes the stream

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);
// Hashes a file by streaming it (constant memory).
Result<std::string> sha256_file(const std::filesystem::path& path);
bool is_sha256_hex(std::string_view s);

// `bytes` random bytes from the OS's CSPRNG, as lower-case hex.
std::string random_hex(size_t bytes);

// Compares in time independent of where the first difference is.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace slipway
