#include "common/crypto.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

// OpenSSL's low-level SHA-256 (deprecated in OpenSSL 3, still supported, and the same assembly,
// SHA extensions included, as the EVP interface): EVP's first use loads the provider machinery,
// which keeps about 2 MB of libcrypto resident in every agent for good.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace slipway {

struct Sha256::Impl {
  SHA256_CTX ctx;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (SHA256_Init(&impl_->ctx) != 1) throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  SHA256_Update(&impl_->ctx, data, size);
}

std::string Sha256::hex_digest() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  const unsigned len = SHA256_DIGEST_LENGTH;
  SHA256_Final(md, &impl_->ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex_digest();
}

Result<std::string> sha256_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return err(Errc::io, fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  Sha256 h;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return err(Errc::io, fmt::format("cannot read {}: {}", path.string(), std::strerror(e)));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.hex_digest();
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string random_hex(size_t bytes) {
  // The kernel's CSPRNG (getrandom(2)), which is what OpenSSL's RAND_bytes seeds from, without
  // OpenSSL's DRBG and provider state in every process.
  std::vector<unsigned char> buf(bytes);
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::getrandom(buf.data() + got, buf.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("no randomness available: {}", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  std::string out;
  for (auto b : buf)
    out += fmt::format("{:02x}", b);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace slipway
