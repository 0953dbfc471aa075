#include "net/tls_context.h"

#include <arpa/inet.h>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace slipway::net {

namespace ssl = boost::asio::ssl;

namespace {

// Verification of a pinned CA: the chain the server sent must hold a certificate with the pinned
// fingerprint; that certificate becomes the only trust anchor, and the chain is verified against
// it (with the hostname check and every usual rule).
int verify_pinned(X509_STORE_CTX* sctx, void* arg) {
  auto* tls = static_cast<ClientTls*>(arg);
  STACK_OF(X509)* presented = X509_STORE_CTX_get0_untrusted(sctx);
  X509* anchor = nullptr;
  for (int i = 0; presented && i < sk_X509_num(presented); ++i) {
    X509* x = sk_X509_value(presented, i);
    if (certificate_fingerprint(x) == tls->pin) anchor = x;
  }
  if (!anchor) {
    tls->pin_mismatch = true;
    X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
  }
  STACK_OF(X509)* trusted = sk_X509_new_null();
  if (!trusted) return 0;
  sk_X509_push(trusted, anchor);
  X509_STORE_CTX_set0_trusted_stack(sctx, trusted);
  // The pinned certificate may be an intermediate (a --tls-cert chain): it is the anchor.
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(sctx), X509_V_FLAG_PARTIAL_CHAIN);
  const int ok = X509_verify_cert(sctx);
  X509_STORE_CTX_set0_trusted_stack(sctx, nullptr);
  sk_X509_free(trusted);
  if (ok == 1) {
    BIO* b = BIO_new(BIO_s_mem());
    if (b && PEM_write_bio_X509(b, anchor) == 1) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(b, &data);
      if (n > 0) tls->pinned_ca_pem.assign(data, static_cast<size_t>(n));
    }
    BIO_free(b);
  }
  return ok;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> make_server_tls_context(const ServerTlsFiles& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.chain.string(), ec);
  if (ec) {
    return err(Errc::invalid_argument, fmt::format("cannot use the certificate {}: {}",
                                                   files.chain.string(), ec.message()));
  }
  ctx->use_private_key_file(files.key.string(), ssl::context::pem, ec);
  if (ec) {
    return err(Errc::invalid_argument,
               fmt::format("cannot use the key {}: {}", files.key.string(), ec.message()));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return err(Errc::invalid_argument,
               fmt::format("the key {} does not belong to the certificate {}", files.key.string(),
                           files.chain.string()));
  }
  return ctx;
}

ClientTls::ClientTls(std::string p) : ctx(ssl::context::tls_client), pin(std::move(p)) {}

Result<std::shared_ptr<ClientTls>> make_client_tls(const TlsClientConfig& cfg) {
  auto tls = std::make_shared<ClientTls>(cfg.ca_pin);
  SSL_CTX_set_min_proto_version(tls->ctx.native_handle(), TLS1_2_VERSION);
  tls->ctx.set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (!cfg.ca_pin.empty()) {
    SSL_CTX_set_cert_verify_callback(tls->ctx.native_handle(), verify_pinned, tls.get());
  } else if (!cfg.ca_file.empty()) {
    tls->ctx.load_verify_file(cfg.ca_file, ec);
    if (ec) {
      return err(Errc::invalid_argument,
                 fmt::format("cannot read the CA certificate {}: {}", cfg.ca_file, ec.message()));
    }
  } else {
    tls->ctx.set_default_verify_paths(ec);
    if (ec) {
      return err(Errc::unavailable,
                 fmt::format("cannot load the system's CA certificates: {}", ec.message()));
    }
  }
  return tls;
}

template <class SslStream>
void prepare_client_stream(SslStream& s, const std::string& host) {
  unsigned char buf[16];
  const bool ip =
      inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (!ip) SSL_set_tlsext_host_name(s.native_handle(), host.c_str());
  s.set_verify_callback(ssl::host_name_verification(host));
}

template void prepare_client_stream(boost::beast::ssl_stream<boost::beast::tcp_stream>&,
                                    const std::string&);

std::string describe_tls_failure(const ClientTls& tls, const std::string& message) {
  if (tls.pin_mismatch) {
    return fmt::format(
        "the server's certificate is not signed by the CA of the join token's fingerprint "
        "({}): this is not the server the token was made for, or its CA changed ({})",
        tls.pin, message);
  }
  return fmt::format(
      "TLS handshake failed: {} (give the server's CA certificate with "
      "--ca-cert or SLIPWAY_CA_CERT: DATA_DIR/tls/ca.crt)",
      message);
}

}  // namespace slipway::net
