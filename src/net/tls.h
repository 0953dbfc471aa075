// TLS for Slipway's own transport, without Asio or Beast in the header: the server's self-made
// certificate authority and server certificate (OpenSSL's C API), CA fingerprints, the agent join
// token that carries one, the rule for when plain HTTP is allowed, and what a client trusts.
//
// Join token format (DATA_DIR/join.token, what agents are given with --token):
//   SECRET                          plain HTTP (a loopback server without TLS)
//   SECRET:sha256:HEX               TLS; HEX = 64 lower-case hex digits, the SHA-256 of the DER
//                                   encoding of the server CA's certificate
// SECRET itself never contains ':'. Only SECRET is sent to the server (Authorization: Bearer).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

struct x509_st;  // OpenSSL's X509

namespace slipway::net {

// What a TLS client trusts.
struct TlsClientConfig {
  std::string ca_file;  // PEM file of trusted CA certificates; empty: the system's store
  // "sha256:HEX": trust only a chain the server presents whose CA certificate has this
  // fingerprint (the agent's first connection, from the join token). Takes precedence over
  // ca_file and the system store.
  std::string ca_pin;
};

// The files of the server's TLS identity.
struct ServerTlsFiles {
  std::filesystem::path chain;  // PEM: the server certificate, then the CA certificate
  std::filesystem::path key;    // PEM private key of the server certificate
  std::filesystem::path ca;     // PEM: the CA certificate (empty when given --tls-cert)
  bool created = false;         // made on this start
};

// In `dir`: ca.key, ca.crt (a self-made CA, EC P-256, 10 years), server.key, server.crt (signed
// by it, 2 years, with `sans` as subject alternative names: DNS names or IP addresses). Made on
// first use, reused afterwards; a server certificate whose names no longer cover `sans` is made
// again with the same CA. Keys are written mode 0600.
Result<ServerTlsFiles> ensure_server_certificate(const std::filesystem::path& dir,
                                                 const std::vector<std::string>& sans);

// "sha256:HEX" of a certificate's DER ("" when OpenSSL cannot digest it).
std::string certificate_fingerprint(x509_st* cert);

// "sha256:HEX" of the first certificate in a PEM text / file.
Result<std::string> pem_fingerprint(std::string_view pem);
Result<std::string> pem_file_fingerprint(const std::filesystem::path& file);
// "sha256:HEX" of the last certificate of a chain file: the CA a join token pins.
Result<std::string> chain_anchor_fingerprint(const std::filesystem::path& file);

// The subject alternative names of the first certificate in a PEM file (for tests and logs).
Result<std::vector<std::string>> certificate_sans(const std::filesystem::path& file);

// "sha256:HEX" with 64 hex digits (either case; returned lower-case), or invalid_argument.
Result<std::string> parse_fingerprint(std::string_view text);

struct JoinToken {
  std::string secret;
  std::string ca_pin;  // "sha256:HEX" or empty
};
Result<JoinToken> parse_join_token(std::string_view text);
std::string format_join_token(const JoinToken& t);

// Whether HOST (a --listen host: an address or a name) is a loopback address: 127.0.0.0/8, ::1,
// or "localhost".
bool is_loopback_host(std::string_view host);

// The listener's transport, from the listen host and the flags: `want_tls` is --tls (1), --no-tls
// (0) or neither (-1).
//   --tls                      TLS
//   --insecure                 plain HTTP, with a warning at every start
//   neither, loopback host     plain HTTP
//   neither, other host        TLS
//   --no-tls, loopback host    plain HTTP
//   --no-tls, other host       refused (plain HTTP off loopback needs --insecure)
struct TlsDecision {
  bool tls = false;
  bool refused = false;        // the caller exits with a usage error
  bool warn_insecure = false;  // the caller warns that traffic is not encrypted
};
TlsDecision decide_tls(std::string_view host, int want_tls, bool insecure);

}  // namespace slipway::net
