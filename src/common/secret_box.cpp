#include "common/secret_box.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fcntl.h>
#include <fmt/format.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

namespace slipway {

namespace {

constexpr std::string_view kPrefix = "v1:";
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(SecretKey::kSize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // no usable randomness: nothing safe can be done
  });
}

std::string to_hex(const unsigned char* p, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), p, n);
  out.pop_back();
  return out;
}

Error key_file_error(const std::filesystem::path& path, std::string_view what,
                     std::string_view problem) {
  return err(Errc::failed_precondition,
             fmt::format("the {} {} {}; it must be a regular file of exactly {} bytes, "
                         "readable by its owner only (chmod 600), or absent (a new key is made)",
                         what, path.string(), problem, SecretKey::kSize));
}

}  // namespace

SecretKey::~SecretKey() {
  sodium_memzero(key_.data(), key_.size());
}

SecretKey SecretKey::from_bytes(const std::array<unsigned char, kSize>& bytes) {
  SecretKey k;
  k.key_ = bytes;
  return k;
}

SecretKey SecretKey::random() {
  init_sodium();
  SecretKey k;
  crypto_aead_xchacha20poly1305_ietf_keygen(k.key_.data());
  return k;
}

Result<SecretKey> SecretKey::load_or_create(const std::filesystem::path& path,
                                            std::string_view what) {
  auto existing = load(path, what);
  if (!existing) return existing.error();
  if (*existing) return std::move(**existing);
  SecretKey k = random();
  if (auto st = k.write_file(path, what); !st) return st.error();
  return k;
}

Result<std::optional<SecretKey>> SecretKey::load(const std::filesystem::path& path,
                                                 std::string_view what) {
  init_sodium();
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return std::optional<SecretKey>();
  if (fd < 0) {
    if (errno == ELOOP) return key_file_error(path, what, "is a symbolic link");
    return err(Errc::io, fmt::format("cannot open the {} {}: {}", what, p, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return err(Errc::io, fmt::format("cannot stat the {} {}", what, p));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return key_file_error(path, what, "is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return key_file_error(path, what,
                          fmt::format("has mode {:o}, open to others", st.st_mode & 0777));
  }
  if (st.st_size != static_cast<off_t>(kSize)) {
    ::close(fd);
    return key_file_error(path, what, fmt::format("holds {} bytes", st.st_size));
  }
  SecretKey k;
  const ssize_t n = ::read(fd, k.key_.data(), k.key_.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(kSize))
    return key_file_error(path, what, "could not be read whole");
  return std::optional<SecretKey>(std::move(k));
}

Status SecretKey::write_file(const std::filesystem::path& path, std::string_view what) const {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return err(Errc::io, fmt::format("cannot create the {} {}: {}", what, p, std::strerror(errno)));
  }
  const ssize_t n = ::write(fd, key_.data(), key_.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(key_.size()) || !synced) {
    ::unlink(p.c_str());
    return err(Errc::io, fmt::format("cannot write the {} {}", what, p));
  }
  return {};
}

std::string SecretKey::mac_hex(std::string_view data) const {
  init_sodium();
  static_assert(kSize == crypto_auth_hmacsha256_KEYBYTES);
  std::array<unsigned char, crypto_auth_hmacsha256_BYTES> mac{};
  crypto_auth_hmacsha256(mac.data(), reinterpret_cast<const unsigned char*>(data.data()),
                         data.size(), key_.data());
  return to_hex(mac.data(), mac.size());
}

bool SecretKey::verify_mac(std::string_view data, std::string_view mac) const {
  const std::string expected = mac_hex(data);
  return mac.size() == expected.size() &&
         sodium_memcmp(expected.data(), mac.data(), expected.size()) == 0;
}

Status sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return err(Errc::io, fmt::format("cannot open {}: {}", dir.string(), std::strerror(errno)));
  }
  const bool ok = ::fsync(fd) == 0;
  const int e = errno;
  ::close(fd);
  if (!ok) return err(Errc::io, fmt::format("cannot sync {}: {}", dir.string(), std::strerror(e)));
  return {};
}

std::string SecretKey::seal(std::string_view plain, std::string_view associated) const {
  init_sodium();
  std::string buf(kNonce + plain.size() + kTag, '\0');
  auto* out = reinterpret_cast<unsigned char*>(buf.data());
  randombytes_buf(out, kNonce);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      out + kNonce, &len, reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
      reinterpret_cast<const unsigned char*>(associated.data()), associated.size(), nullptr, out,
      key_.data());
  std::string sealed = std::string(kPrefix) + to_hex(out, kNonce + len);
  sodium_memzero(buf.data(), buf.size());
  return sealed;
}

Result<std::string> SecretKey::open(std::string_view sealed, std::string_view associated) const {
  init_sodium();
  if (sealed.substr(0, kPrefix.size()) != kPrefix) {
    return err(Errc::invalid_argument, "a sealed secret must start with v1:");
  }
  const std::string_view hex = sealed.substr(kPrefix.size());
  std::string bin(hex.size() / 2, '\0');
  size_t bin_len = 0;
  if (hex.size() % 2 != 0 ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(bin.data()), bin.size(), hex.data(),
                     hex.size(), nullptr, &bin_len, nullptr) != 0 ||
      bin_len != bin.size() || bin_len < kNonce + kTag) {
    return err(Errc::invalid_argument,
               "a sealed secret is not well-formed hex of its minimum size");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(bin.data());
  std::string plain(bin_len - kNonce - kTag, '\0');
  unsigned long long len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plain.data()), &len, nullptr, in + kNonce,
          bin_len - kNonce, reinterpret_cast<const unsigned char*>(associated.data()),
          associated.size(), in, key_.data()) != 0) {
    return err(Errc::internal,
               "a sealed secret does not verify: another key (secrets.key replaced?), moved or "
               "tampered with");
  }
  plain.resize(len);
  return plain;
}

}  // namespace slipway
