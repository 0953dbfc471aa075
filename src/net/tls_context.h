// Asio TLS contexts for Slipway's server and clients. Include it only from the .cpp files that
// open TLS streams (it brings in Asio's SSL headers).
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include "common/error.h"
#include "net/tls.h"

namespace slipway::net {

// The server's context: TLS 1.2 or later, the chain and key of `files`.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const ServerTlsFiles& files);

// A client's context, with what it learned of the last handshake.
struct ClientTls {
  explicit ClientTls(std::string pin);
  boost::asio::ssl::context ctx;
  std::string pin;  // "sha256:HEX" or empty
  // Set by a handshake that found the pinned CA in the server's chain: its certificate (PEM),
  // for the agent to keep.
  std::string pinned_ca_pem;
  // Set when the server's chain held no certificate with the pinned fingerprint.
  bool pin_mismatch = false;
};
Result<std::shared_ptr<ClientTls>> make_client_tls(const TlsClientConfig& cfg);

// Before a client handshake: SNI (for names) and the check that the certificate is for `host`.
template <class SslStream>
void prepare_client_stream(SslStream& s, const std::string& host);

// A readable reason for a failed client handshake.
std::string describe_tls_failure(const ClientTls& tls, const std::string& message);

}  // namespace slipway::net
