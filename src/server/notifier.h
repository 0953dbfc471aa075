// Notifications: what happened (a deploy started, succeeded, failed or was rolled back, a node was
// lost or quarantined, a node drifted from its desired release), told to webhooks (signed JSON),
// Slack incoming webhooks and e-mail (SMTP through a relay), by worker threads of their own.
//
// Delivery never blocks or slows the caller (the server's I/O thread): publish() only matches the
// hooks and queues, into a bounded queue (a notification that does not fit is dropped and
// counted). Workers send with libcurl (blocking, with timeouts), and retry a failed attempt with
// exponential backoff and jitter (base, 2*base, 4*base, 8*base: five attempts in all by default).
// Every attempt is handed to the recorder (the delivery log). The transfer in flight is aborted
// when the notifier stops.
//
// Webhooks are signed as Stripe signs its webhooks: X-Slipway-Signature: sha256=HEX with
// HEX = HMAC-SHA256(secret, TIMESTAMP + "." + BODY) and TIMESTAMP the X-Slipway-Timestamp header
// (unix seconds); docs/notifications.md says how a receiver verifies it.
//
// Thread-safety: every public member may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"
#include "store/store.h"

struct curl_slist;

namespace slipway::server::notify {

enum class HookKind { webhook, slack, email };
std::string_view hook_kind_name(HookKind k);
std::optional<HookKind> hook_kind_from_name(std::string_view s);

// The events a hook may ask for.
inline constexpr std::array<std::string_view, 7> kEvents = {
    "deploy.started", "deploy.succeeded", "deploy.failed", "deploy.rolled_back",
    "node.lost",      "node.quarantined", "drift"};
bool is_event_name(std::string_view s);

// Checks a hook's target: an http:// or https:// URL with a host (webhook, slack; Boost.URL), or
// an e-mail address (email). invalid_argument naming what is wrong otherwise.
Status validate_target(HookKind kind, std::string_view target);
// The --smtp-relay URL: smtp:// or smtps:// with a host, a user perhaps but no password (that
// comes from $SLIPWAY_SMTP_PASSWORD).
Status validate_smtp_relay(std::string_view url);
// Whether the relay URL's host is written as a loopback one (localhost, 127.0.0.0/8, ::1): the
// only relay e-mail may reach without TLS. What a name resolves to does not count (a name pinned
// to 127.0.0.1 with --smtp-resolve still needs TLS): only the URL says where the password goes.
bool smtp_relay_is_loopback(std::string_view url);
// A --smtp-resolve entry, HOST:PORT:ADDRESS (curl's --resolve): the relay's host and port (as its
// URL names them; the port defaults to 25 for smtp://, 465 for smtps://) and the IPv4 or
// [IPv6] address to connect to instead of resolving the name.
Status validate_smtp_resolve(std::string_view entry, std::string_view relay_url);
// An e-mail address: LOCAL@DOMAIN, the local part of RFC 5322 atom characters and dots, the
// domain of DNS labels; at most 254 characters.
bool is_email_address(std::string_view s);
// What a listing shows of a URL: scheme://host[:port]/path without user info, query or
// fragment; with `path` false, scheme://host[:port] only (a Slack URL's path is its credential).
std::string redact_url(std::string_view url, bool path);

struct Hook {
  std::string name;
  HookKind kind = HookKind::webhook;
  std::string target;  // the URL (in clear) or the e-mail address
  std::set<std::string, std::less<>> events;
  std::string env;     // "" = every environment
  std::string app;     // "" = every app
  std::string secret;  // a webhook's signing secret, in clear (memory only)
};

// What happened, as every channel renders it.
struct Notification {
  std::string event;  // one of kEvents, or "test"
  TimeMs at = 0;
  std::string env;
  std::string app;                // "" when the event is about a node (see node_apps)
  std::vector<std::string> apps;  // the apps a node event concerns (for the --app filter)
  std::optional<json::object> deploy;
  std::optional<json::object> node;
  std::string text;  // one human line
};

// Whether the hook asked for this notification: its event (a test goes to every hook), its
// environment and its app.
bool wants(const Hook& h, const Notification& n);

// The JSON a webhook receives: {"event", "at", "env", "app", "deploy"?, "node"?, "text"}.
json::object payload_json(const Notification& n);
// A Slack incoming-webhook message: {"text", "blocks": [...]}.
json::object slack_json(const Notification& n);
// An RFC 5322 message (CRLF line ends) with Date, From, To, Subject, Message-ID.
std::string email_message(const Notification& n, std::string_view from, std::string_view to,
                          std::string_view message_id, TimeMs now);

// "sha256=" + lower-case hex HMAC-SHA256(secret, timestamp + "." + body).
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body);

// The wait after failed attempt `attempt` (1-based): base * 2^(attempt-1), plus a jitter of up to
// a quarter of it (jitter01 in [0, 1) picks how much).
Millis backoff(Millis base, int attempt, double jitter01);

struct Options {
  Millis retry_base{1'000};
  int max_attempts = 5;
  Millis timeout{10'000};  // one attempt, connection included
  size_t queue_capacity = 1'000;
  int threads = 2;
  // smtp://HOST:PORT or smtps://HOST:PORT ("" = no e-mail). Off loopback (smtp_relay_is_loopback)
  // every session is TLS: smtps://, or STARTTLS required before anything else is sent (a relay
  // that offers none, or a stripped offer, fails the delivery; the password never goes in clear).
  std::string smtp_relay;
  std::string smtp_from = "slipway@localhost";
  std::string smtp_password;              // with the user of smtp_relay's URL
  std::vector<std::string> smtp_resolve;  // HOST:PORT:ADDRESS pins (validate_smtp_resolve)
  std::string smtp_ca_file;  // PEM CA certificates the relay's is checked with; "" = the system's
  std::string user_agent = "slipway";
};

// What the listing of the queue says.
struct Counters {
  uint64_t queued = 0;     // waiting now (retries included)
  uint64_t delivered = 0;  // notifications delivered
  uint64_t failed = 0;     // notifications given up after the last attempt
  uint64_t dropped = 0;    // notifications dropped because the queue was full
};

class Notifier {
 public:
  using Recorder = std::function<void(const store::NotifyDeliveryRecord&)>;

  // `recorder` gets every attempt, on a worker thread.
  Notifier(Options o, Recorder recorder);
  ~Notifier();  // stops: queued deliveries are dropped, the transfer in flight is aborted
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  const Options& options() const { return opts_; }

  void set_hook(Hook h);
  void remove_hook(const std::string& name);

  // Queues the notification for every hook that wants it. Never blocks.
  void publish(const Notification& n);
  // One attempt (no retry) of `n` to hook `name`; `done` gets its record on a worker thread.
  // not_found for an unknown hook, unavailable when the queue is full.
  Status test(const std::string& name, const Notification& n, Recorder done);

  Counters counters() const;

 private:
  struct Job {
    Hook hook;
    std::string delivery;  // id
    std::string event;
    std::string body;  // JSON, or the e-mail message
    int attempt = 1;
    int max_attempts = 1;
    Recorder done;  // tests only
  };
  using Clock = std::chrono::steady_clock;

  bool enqueue(Job job, Clock::time_point due);  // false when full
  void work();
  store::NotifyDeliveryRecord attempt(const Job& job);

  Options opts_;
  // From opts_, fixed before the workers start (read-only afterwards).
  bool smtp_loopback_ = false;          // plain SMTP allowed (smtp_relay_is_loopback)
  curl_slist* smtp_resolve_ = nullptr;  // opts_.smtp_resolve for CURLOPT_RESOLVE
  Recorder recorder_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Hook> hooks_;
  std::multimap<Clock::time_point, Job> queue_;
  bool stopping_ = false;
  std::atomic<bool> abort_{false};
  Counters counters_;
  std::vector<std::thread> threads_;
};

}  // namespace slipway::server::notify
