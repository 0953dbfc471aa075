// `slipway server`: the artifact repository, the inventory, the deploy engine and the HTTP and
// WebSocket API, in one asynchronous process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/duration.h"

namespace slipway::server {

struct ServerOptions {
  std::filesystem::path data_dir;
  std::string listen = "127.0.0.1:7700";
  Millis heartbeat{5'000};           // how often agents send heartbeats
  Millis lost_after{15'000};         // an agent silent this long is lost
  Millis node_timeout{15 * 60'000};  // a node with no result for a deploy step this long fails
  uint64_t max_artifact_bytes = 4ULL << 30;
  int keep_releases = 5;
  int worker_threads = 2;  // hashing and archive inspection
  // Transport (see net::decide_tls): --tls 1, --no-tls 0, neither -1.
  int want_tls = -1;
  bool insecure = false;              // plain HTTP off loopback, with a warning
  std::filesystem::path tls_cert;     // given certificate chain (PEM); else DATA_DIR/tls
  std::filesystem::path tls_key;      // its private key
  std::vector<std::string> tls_sans;  // more names for the self-made server certificate
  Millis tls_handshake_timeout{10'000};
  // Limits: the request header must arrive within header_timeout (a slow client cannot hold a
  // connection by trickling it); at most max_connections_per_address connections from one
  // remote address at once (0: no bound), the next answered 503 and closed.
  Millis header_timeout{10'000};
  int max_connections_per_address = 256;
  // The database queue's high-water mark (store/db_executor.h): from this many queued jobs on,
  // what can wait (db_call, agents' reports, requests that change something) waits until the
  // queue is down to half of it. At least 2.
  size_t db_queue_limit = 1024;
  // Test hook (--TEST-db-delay): the database thread sleeps this long before each job, as on a
  // slow disk. Zero in production.
  Millis test_db_delay{0};
  // Notifications: the first retry's wait (then doubled), and the SMTP relay e-mail goes through
  // (smtp://HOST:PORT or smtps://; "" = no e-mail) with the sender's address.
  Millis notify_retry_base{1'000};
  std::string smtp_relay;
  std::string smtp_from;
  // HOST:PORT:ADDRESS pins of the relay's address (--smtp-resolve), and the CA certificates its
  // certificate is checked with (--smtp-ca-cert; "" = the system's).
  std::vector<std::string> smtp_resolve;
  std::string smtp_ca_cert;
  // The web console's built files, served at / (empty: none; the CLI's default is
  // default_console_dir()).
  std::filesystem::path console_dir;
};

// Runs until SIGINT or SIGTERM; returns the process exit code.
int run_server(const ServerOptions& opts);

}  // namespace slipway::server
