#include "net/tls.h"

#include <algorithm>
#include <memory>
#include <set>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/strings.h"

namespace slipway::net {

namespace fs = std::filesystem;

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

constexpr int kCaDays = 3650;
constexpr int kServerDays = 730;
constexpr int kRenewDays = 30;  // a server certificate this close to its end is made again

Error ssl_error(std::string_view what) {
  return err(Errc::internal, fmt::format("{} failed (OpenSSL)", what));
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Result<Key> new_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) return ssl_error("generating an EC P-256 key");
  return k;
}

Result<std::string> key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return ssl_error("writing a key");
  return bio_string(b.get());
}

Result<std::string> cert_pem(X509* x) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), x) != 1) return ssl_error("writing a certificate");
  return bio_string(b.get());
}

Result<Cert> read_cert_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert x(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!x) return err(Errc::invalid_argument, "not a PEM certificate");
  return x;
}

Result<Cert> read_cert_file(const fs::path& file) {
  auto text = read_file(file, 1 << 20);
  if (!text) return text.error();
  auto x = read_cert_pem(*text);
  if (!x)
    return err(Errc::invalid_argument, fmt::format("{}: {}", file.string(), x.error().message));
  return x;
}

Result<Key> read_key_file(const fs::path& file) {
  auto text = read_file(file, 1 << 20);
  if (!text) return text.error();
  Bio b(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Key k(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!k)
    return err(Errc::invalid_argument, fmt::format("{}: not a PEM private key", file.string()));
  return k;
}

bool add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str()));
  return ext && X509_add_ext(x, ext.get(), -1) == 1;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// A certificate for `key`, signed by issuer_key (self-signed when issuer is null).
Result<Cert> make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                       int days, const std::vector<std::string>& sans) {
  Cert x(X509_new());
  if (!x) return ssl_error("X509_new");
  X509_set_version(x.get(), 2);
  std::unique_ptr<BIGNUM, Free> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get()))) {
    return ssl_error("making a serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Slipway"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(signer));
  bool ok = true;
  if (!issuer) {
    ok = add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash");
  } else {
    std::string alt;
    for (const auto& s : sans)
      alt += (alt.empty() ? "" : ",") + std::string(is_ip(s) ? "IP:" : "DNS:") + s;
    ok = add_ext(x.get(), issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         add_ext(x.get(), issuer, NID_ext_key_usage, "serverAuth") &&
         add_ext(x.get(), issuer, NID_subject_key_identifier, "hash") &&
         add_ext(x.get(), issuer, NID_authority_key_identifier, "keyid:always") &&
         (alt.empty() || add_ext(x.get(), issuer, NID_subject_alt_name, alt));
  }
  if (!ok) return ssl_error("adding certificate extensions");
  if (X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
    return ssl_error("signing a certificate");
  return x;
}

std::vector<std::string> sans_of(X509* x) {
  std::vector<std::string> out;
  std::unique_ptr<GENERAL_NAMES, Free> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const auto* s = g->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {0};
      const int len = ASN1_STRING_length(s);
      if (len == 4 || len == 16) {
        inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), buf, sizeof buf);
        out.emplace_back(buf);
      }
    }
  }
  return out;
}

Status write_pem(const fs::path& file, const std::string& pem, unsigned mode) {
  return write_file_atomic(file, pem, mode);
}

}  // namespace

std::string certificate_fingerprint(X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(x, EVP_sha256(), md, &len) != 1) return {};
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i)
    out += fmt::format("{:02x}", md[i]);
  return out;
}

Result<std::string> pem_fingerprint(std::string_view pem) {
  auto x = read_cert_pem(pem);
  if (!x) return x.error();
  auto f = certificate_fingerprint(x->get());
  if (f.empty()) return ssl_error("hashing a certificate");
  return f;
}

Result<std::string> pem_file_fingerprint(const fs::path& file) {
  auto text = read_file(file, 1 << 20);
  if (!text) return text.error();
  auto f = pem_fingerprint(*text);
  if (!f) return err(f.error().code, fmt::format("{}: {}", file.string(), f.error().message));
  return f;
}

Result<std::string> chain_anchor_fingerprint(const fs::path& file) {
  auto text = read_file(file, 1 << 20);
  if (!text) return text.error();
  Bio b(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  std::string last;
  while (b) {
    Cert x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!x) break;
    last = certificate_fingerprint(x.get());
  }
  if (last.empty()) {
    return err(Errc::invalid_argument, fmt::format("{}: no PEM certificate", file.string()));
  }
  return last;
}

Result<std::vector<std::string>> certificate_sans(const fs::path& file) {
  auto x = read_cert_file(file);
  if (!x) return x.error();
  return sans_of(x->get());
}

Result<ServerTlsFiles> ensure_server_certificate(const fs::path& dir,
                                                 const std::vector<std::string>& sans) {
  if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  ServerTlsFiles files;
  files.ca = dir / "ca.crt";
  files.chain = dir / "server.crt";
  files.key = dir / "server.key";
  const fs::path ca_key_file = dir / "ca.key";

  // The CA: reused when both files are there, made when neither is.
  Key ca_key;
  Cert ca;
  std::error_code ec;
  const bool have_key = fs::exists(ca_key_file, ec);
  const bool have_crt = fs::exists(files.ca, ec);
  if (have_key != have_crt) {
    return err(Errc::failed_precondition,
               fmt::format("{} holds only one of ca.key and ca.crt: restore the other, or remove "
                           "both to make a new CA (agents then need the new join token)",
                           dir.string()));
  }
  if (have_key) {
    auto k = read_key_file(ca_key_file);
    if (!k) return k.error();
    auto c = read_cert_file(files.ca);
    if (!c) return c.error();
    if (X509_check_private_key(c->get(), k->get()) != 1) {
      return err(Errc::failed_precondition,
                 fmt::format("{}: ca.key does not belong to ca.crt", dir.string()));
    }
    ca_key = std::move(*k);
    ca = std::move(*c);
  } else {
    auto k = new_key();
    if (!k) return k.error();
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    auto c =
        make_cert(k->get(), fmt::format("Slipway CA ({})", host), nullptr, nullptr, kCaDays, {});
    if (!c) return c.error();
    auto kp = key_pem(k->get());
    auto cp = cert_pem(c->get());
    if (!kp || !cp) return kp ? cp.error() : kp.error();
    if (auto st = write_pem(ca_key_file, *kp, 0600); !st) return st.error();
    if (auto st = write_pem(files.ca, *cp, 0644); !st) return st.error();
    ca_key = std::move(*k);
    ca = std::move(*c);
    files.created = true;
  }

  // The server certificate: reused while it is signed by this CA, covers every name and is not
  // near its end.
  bool reuse = false;
  if (fs::exists(files.chain, ec) && fs::exists(files.key, ec)) {
    auto c = read_cert_file(files.chain);
    auto k = read_key_file(files.key);
    if (c && k && X509_check_private_key(c->get(), k->get()) == 1 &&
        X509_verify(c->get(), X509_get0_pubkey(ca.get())) == 1) {
      const auto have = sans_of(c->get());
      const std::set<std::string> have_set(have.begin(), have.end());
      reuse = std::all_of(sans.begin(), sans.end(),
                          [&](const std::string& s) { return have_set.count(s) > 0; });
      time_t soon = time(nullptr) + static_cast<time_t>(kRenewDays) * 86400;
      if (X509_cmp_time(X509_get0_notAfter(c->get()), &soon) <= 0) reuse = false;
    }
  }
  if (!reuse) {
    auto k = new_key();
    if (!k) return k.error();
    const std::string cn = sans.empty() ? "slipway" : sans.front();
    auto c = make_cert(k->get(), cn, ca.get(), ca_key.get(), kServerDays, sans);
    if (!c) return c.error();
    auto kp = key_pem(k->get());
    auto cp = cert_pem(c->get());
    auto cap = cert_pem(ca.get());
    if (!kp || !cp || !cap) return ssl_error("writing the server certificate");
    if (auto st = write_pem(files.key, *kp, 0600); !st) return st.error();
    if (auto st = write_pem(files.chain, *cp + *cap, 0644); !st) return st.error();
    files.created = true;
  }
  return files;
}

Result<std::string> parse_fingerprint(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.size() != kPrefix.size() + 64 || text.substr(0, kPrefix.size()) != kPrefix) {
    return err(
        Errc::invalid_argument,
        fmt::format("'{}' is not a CA fingerprint (sha256: and 64 hex digits)", excerpt(text)));
  }
  std::string out(text);
  for (size_t i = kPrefix.size(); i < out.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return err(
          Errc::invalid_argument,
          fmt::format("'{}' is not a CA fingerprint (sha256: and 64 hex digits)", excerpt(text)));
    }
    out[i] = c;
  }
  return out;
}

Result<JoinToken> parse_join_token(std::string_view text) {
  JoinToken t;
  const auto colon = text.find(':');
  t.secret = std::string(text.substr(0, colon));
  if (t.secret.empty() || t.secret.size() > 256) {
    return err(Errc::invalid_argument, "the join token is malformed (see DATA_DIR/join.token)");
  }
  for (const char c : t.secret) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return err(Errc::invalid_argument, "the join token is malformed (see DATA_DIR/join.token)");
    }
  }
  if (colon != std::string_view::npos) {
    auto f = parse_fingerprint(text.substr(colon + 1));
    if (!f) {
      return err(
          Errc::invalid_argument,
          fmt::format("the join token's CA fingerprint is malformed: {}", f.error().message));
    }
    t.ca_pin = std::move(*f);
  }
  return t;
}

std::string format_join_token(const JoinToken& t) {
  return t.ca_pin.empty() ? t.secret : t.secret + ":" + t.ca_pin;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  const std::string h(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, h.c_str(), buf) == 1) return buf[0] == 127;
  if (inet_pton(AF_INET6, h.c_str(), buf) == 1) {
    static const unsigned char kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(buf, buf + 16, kLoop);
  }
  return false;
}

TlsDecision decide_tls(std::string_view host, int want_tls, bool insecure) {
  TlsDecision d;
  const bool loopback = is_loopback_host(host);
  if (want_tls == 1) {
    d.tls = true;
  } else if (insecure) {
    d.warn_insecure = true;
  } else if (!loopback) {
    if (want_tls == 0) {
      d.refused = true;
    } else {
      d.tls = true;
    }
  }
  return d;
}

}  // namespace slipway::net
