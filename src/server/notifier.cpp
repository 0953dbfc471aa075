#include "server/notifier.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <random>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/strings.h"
#include "net/tls.h"

namespace slipway::server::notify {

std::string_view hook_kind_name(HookKind k) {
  switch (k) {
    case HookKind::webhook:
      return "webhook";
    case HookKind::slack:
      return "slack";
    case HookKind::email:
      return "email";
  }
  return "webhook";
}

std::optional<HookKind> hook_kind_from_name(std::string_view s) {
  if (s == "webhook") return HookKind::webhook;
  if (s == "slack") return HookKind::slack;
  if (s == "email") return HookKind::email;
  return std::nullopt;
}

bool is_event_name(std::string_view s) {
  return std::find(kEvents.begin(), kEvents.end(), s) != kEvents.end();
}

bool is_email_address(std::string_view s) {
  if (s.empty() || s.size() > 254) return false;
  const auto at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  const std::string_view local = s.substr(0, at);
  const std::string_view domain = s.substr(at + 1);
  static constexpr std::string_view kAtext = "!#$%&'*+/=?^_`{|}~-";
  for (size_t i = 0; i < local.size(); ++i) {
    const char c = local[i];
    if (c == '.') {
      if (i == 0 || i + 1 == local.size() || local[i - 1] == '.') return false;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && kAtext.find(c) == std::string_view::npos)
      return false;
  }
  const auto labels = split(domain, '.', false);
  if (labels.empty() || domain.size() > 253) return false;
  for (const auto& l : labels) {
    if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
    for (const char c : l) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

Status validate_target(HookKind kind, std::string_view target) {
  if (target.size() > 2048) {
    return err(Errc::invalid_argument, "the target is longer than 2048 characters");
  }
  if (kind == HookKind::email) {
    if (!is_email_address(target)) {
      return err(Errc::invalid_argument,
                 fmt::format("'{}' is not an e-mail address (name@example.com)", excerpt(target)));
    }
    return {};
  }
  auto u = boost::urls::parse_absolute_uri(target);
  if (!u) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not a URL: {}", excerpt(target), u.error().message()));
  }
  const std::string scheme = to_lower(u->scheme());
  if (scheme != "http" && scheme != "https") {
    return err(Errc::invalid_argument,
               fmt::format("the URL of a {} hook must be http:// or https://, not {}://",
                           hook_kind_name(kind), excerpt(scheme)));
  }
  if (!u->has_authority() || u->encoded_host().empty()) {
    return err(Errc::invalid_argument, fmt::format("the URL '{}' has no host", excerpt(target)));
  }
  if (u->has_fragment()) {
    return err(Errc::invalid_argument, "the URL must have no #fragment");
  }
  for (const char c : target) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
      return err(Errc::invalid_argument, "the URL must have no spaces or control characters");
    }
  }
  return {};
}

Status validate_smtp_relay(std::string_view url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return err(Errc::invalid_argument, fmt::format("'{}' is not a URL", excerpt(url)));
  const std::string scheme = to_lower(u->scheme());
  if (scheme != "smtp" && scheme != "smtps") {
    return err(Errc::invalid_argument, "the relay must be smtp://HOST:PORT or smtps://HOST:PORT");
  }
  if (!u->has_authority() || u->encoded_host().empty()) {
    return err(Errc::invalid_argument, "the relay URL has no host");
  }
  // What follows the authority is a path ("/EHLO-DOMAIN") or nothing: anything else means the
  // host was not what it seemed ("smtp://127.0.0.1.example.com" parses as 127.0.0.1 and a path).
  if (!u->encoded_path().empty() && !u->encoded_path().starts_with("/")) {
    return err(Errc::invalid_argument, "the relay URL's host is not a valid host name or address");
  }
  if (u->has_password()) {
    return err(Errc::invalid_argument,
               "put no password in the relay URL: set $SLIPWAY_SMTP_PASSWORD instead");
  }
  if (u->has_query() || u->has_fragment()) {
    return err(Errc::invalid_argument, "the relay URL must have no ?query or #fragment");
  }
  return {};
}

namespace {

// The host (without brackets) and port ("" when none) of a URL's authority, read from the text as
// curl reads it: Boost.URL 1.81 takes "smtp://127.0.0.1.example.com" for host 127.0.0.1 and path
// ".example.com", which must not pass for a loopback relay.
std::pair<std::string, std::string> authority_host_port(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  std::string_view auth = url.substr(scheme_end + 3);
  auth = auth.substr(0, auth.find_first_of("/?#"));
  if (const auto at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);
  if (auth.starts_with('[')) {
    const auto close = auth.find(']');
    if (close == std::string_view::npos) return {};
    const std::string_view rest = auth.substr(close + 1);
    return {std::string(auth.substr(1, close - 1)),
            rest.starts_with(':') ? std::string(rest.substr(1)) : std::string()};
  }
  const auto colon = auth.rfind(':');
  if (colon == std::string_view::npos) return {std::string(auth), ""};
  return {std::string(auth.substr(0, colon)), std::string(auth.substr(colon + 1))};
}

}  // namespace

bool smtp_relay_is_loopback(std::string_view url) {
  if (!validate_smtp_relay(url)) return false;
  return net::is_loopback_host(to_lower(authority_host_port(url).first));
}

Status validate_smtp_resolve(std::string_view entry, std::string_view relay_url) {
  const auto bad = [&](std::string_view why) {
    return err(Errc::invalid_argument,
               fmt::format("'{}' is not HOST:PORT:ADDRESS ({})", excerpt(entry), why));
  };
  const auto first = entry.find(':');
  const auto second = first == std::string_view::npos ? first : entry.find(':', first + 1);
  if (second == std::string_view::npos) return bad("two colons are needed");
  const std::string host = to_lower(entry.substr(0, first));
  const std::string_view port = entry.substr(first + 1, second - first - 1);
  std::string address(entry.substr(second + 1));
  if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(address, ec);
  if (ec) return bad("the address must be an IPv4 or [IPv6] address");
  if (!validate_smtp_relay(relay_url)) return bad("the relay URL is not valid");
  auto [relay_host, relay_port] = authority_host_port(relay_url);
  relay_host = to_lower(relay_host);
  if (relay_port.empty()) relay_port = to_lower(relay_url.substr(0, 6)) == "smtps:" ? "465" : "25";
  if (host != relay_host || port != relay_port) {
    return bad(
        fmt::format("it must name the relay's host and port, {}:{}", relay_host, relay_port));
  }
  return {};
}

std::string redact_url(std::string_view url, bool path) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return "";
  std::string out = fmt::format("{}://{}", std::string_view(u->scheme()),
                                std::string_view(u->encoded_host_and_port()));
  if (path) {
    out += std::string_view(u->encoded_path());
  } else if (!u->encoded_path().empty() && u->encoded_path() != "/") {
    out += "/…";
  }
  return out;
}

bool wants(const Hook& h, const Notification& n) {
  if (n.event != "test" && !h.events.contains(n.event)) return false;
  if (n.event == "test") return true;
  if (!h.env.empty() && h.env != n.env) return false;
  if (!h.app.empty()) {
    if (!n.app.empty()) return n.app == h.app;
    return std::find(n.apps.begin(), n.apps.end(), h.app) != n.apps.end();
  }
  return true;
}

json::object payload_json(const Notification& n) {
  json::object o{{"event", n.event}, {"at", format_time(n.at)}, {"env", n.env}, {"app", n.app}};
  if (n.deploy) o["deploy"] = *n.deploy;
  if (n.node) o["node"] = *n.node;
  o["text"] = n.text;
  return o;
}

namespace {

// Slack's mrkdwn escapes: &, < and > (what it would read as markup or links).
std::string slack_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

std::string emoji_for(std::string_view event) {
  if (event == "deploy.succeeded") return ":white_check_mark:";
  if (event == "deploy.failed") return ":x:";
  if (event == "deploy.rolled_back") return ":leftwards_arrow_with_hook:";
  if (event == "deploy.started") return ":rocket:";
  if (event == "node.lost" || event == "node.quarantined") return ":warning:";
  if (event == "drift") return ":twisted_rightwards_arrows:";
  return ":bell:";
}

// A header field's value on one line: no CR, LF or other control characters, at most 900 bytes.
std::string header_value(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (out.size() >= 900) break;
    out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  }
  return out;
}

// Text as body lines: CRLF ends, no bare CR, lines cut at 900 bytes (RFC 5322 allows 998).
void append_body_lines(std::string& out, std::string_view text) {
  for (const auto& line : split(text, '\n', false)) {
    std::string l;
    for (const char c : line) {
      if (c == '\r') continue;
      l += c;
      if (l.size() >= 900) {
        out += l + "\r\n";
        l.clear();
      }
    }
    out += l + "\r\n";
  }
}

std::string rfc5322_date(TimeMs now) {
  const std::time_t t = static_cast<std::time_t>(now / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace

json::object slack_json(const Notification& n) {
  const std::string text = emoji_for(n.event) + " " + slack_escape(n.text);
  json::array context{json::object{
      {"type", "mrkdwn"},
      {"text", slack_escape(fmt::format("{} · {}{}{} · {}", n.event, n.env.empty() ? "-" : n.env,
                                        n.app.empty() ? "" : " · ", n.app, format_time(n.at)))}}};
  json::array blocks{
      json::object{{"type", "section"}, {"text", json::object{{"type", "mrkdwn"}, {"text", text}}}},
      json::object{{"type", "context"}, {"elements", std::move(context)}}};
  return json::object{{"text", text}, {"blocks", std::move(blocks)}};
}

std::string email_message(const Notification& n, std::string_view from, std::string_view to,
                          std::string_view message_id, TimeMs now) {
  std::string m;
  m += "Date: " + rfc5322_date(now) + "\r\n";
  m += "From: " + header_value(from) + "\r\n";
  m += "To: " + header_value(to) + "\r\n";
  m += "Subject: " + header_value("[slipway] " + n.text) + "\r\n";
  m += "Message-ID: <" + header_value(message_id) + ">\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "X-Slipway-Event: " + header_value(n.event) + "\r\n";
  m += "\r\n";
  append_body_lines(m, valid_utf8(n.text));
  m += "\r\n";
  append_body_lines(m, fmt::format("event: {}\nat: {}", n.event, format_time(n.at)));
  if (!n.env.empty()) append_body_lines(m, "environment: " + n.env);
  if (!n.app.empty()) append_body_lines(m, "app: " + n.app);
  if (n.deploy) append_body_lines(m, "deploy: " + valid_utf8(to_json(*n.deploy)));
  if (n.node) append_body_lines(m, "node: " + valid_utf8(to_json(*n.node)));
  return m;
}

std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

Millis backoff(Millis base, int attempt, double jitter01) {
  const int shift = std::clamp(attempt - 1, 0, 20);
  const double d = static_cast<double>(base.count()) * static_cast<double>(1LL << shift);
  const double jitter = d * 0.25 * std::clamp(jitter01, 0.0, 1.0);
  return Millis(static_cast<int64_t>(std::min(d + jitter, 3'600'000.0)));
}

// ---- the notifier ----

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

struct Upload {
  std::string_view data;
  size_t at = 0;
};

size_t read_upload(char* buf, size_t size, size_t n, void* p) {
  auto* u = static_cast<Upload*>(p);
  const size_t len = std::min(size * n, u->data.size() - u->at);
  std::copy_n(u->data.data() + u->at, len, buf);
  u->at += len;
  return len;
}

int abort_check(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(p)->load() ? 1 : 0;
}

double jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

Notifier::Notifier(Options o, Recorder recorder)
    : opts_(std::move(o)), recorder_(std::move(recorder)) {
  static CurlGlobal global;
  smtp_loopback_ = smtp_relay_is_loopback(opts_.smtp_relay);
  for (const auto& r : opts_.smtp_resolve)
    smtp_resolve_ = curl_slist_append(smtp_resolve_, r.c_str());
  const int n = std::max(1, opts_.threads);
  for (int i = 0; i < n; ++i)
    threads_.emplace_back([this] { work(); });
}

Notifier::~Notifier() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    abort_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
  curl_slist_free_all(smtp_resolve_);
}

void Notifier::set_hook(Hook h) {
  std::lock_guard lock(mu_);
  hooks_[h.name] = std::move(h);
}

void Notifier::remove_hook(const std::string& name) {
  std::lock_guard lock(mu_);
  hooks_.erase(name);
}

Counters Notifier::counters() const {
  std::lock_guard lock(mu_);
  Counters c = counters_;
  c.queued = queue_.size();
  return c;
}

namespace {

std::string render(const Options& o, const Hook& h, const Notification& n,
                   const std::string& delivery) {
  switch (h.kind) {
    case HookKind::webhook:
      return to_json(payload_json(n));
    case HookKind::slack:
      return to_json(slack_json(n));
    case HookKind::email: {
      const auto at = o.smtp_from.rfind('@');
      const std::string domain = at == std::string::npos ? "slipway" : o.smtp_from.substr(at + 1);
      return email_message(n, o.smtp_from, h.target, delivery + "@" + domain, now_ms());
    }
  }
  return {};
}

}  // namespace

void Notifier::publish(const Notification& n) {
  std::vector<Hook> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, h] : hooks_) {
      if (n.event != "test" && wants(h, n)) targets.push_back(h);
    }
  }
  for (auto& h : targets) {
    Job job;
    job.delivery = random_hex(12);
    job.event = n.event;
    job.body = render(opts_, h, n, job.delivery);
    job.max_attempts = std::max(1, opts_.max_attempts);
    job.hook = std::move(h);
    if (!enqueue(std::move(job), Clock::now())) {
      // Said once per hundred, not once per notification (a flood must not flood the log too).
      if (const auto dropped = counters().dropped; dropped % 100 == 1) {
        spdlog::warn("notification {} dropped: the queue is full ({} waiting; {} dropped so far)",
                     n.event, opts_.queue_capacity, dropped);
      }
    }
  }
}

Status Notifier::test(const std::string& name, const Notification& n, Recorder done) {
  Job job;
  {
    std::lock_guard lock(mu_);
    auto it = hooks_.find(name);
    if (it == hooks_.end()) {
      return err(Errc::not_found, fmt::format("there is no notification hook named '{}'", name));
    }
    job.hook = it->second;
  }
  job.delivery = random_hex(12);
  job.event = n.event;
  job.body = render(opts_, job.hook, n, job.delivery);
  job.max_attempts = 1;
  job.done = std::move(done);
  if (!enqueue(std::move(job), Clock::now())) {
    return err(Errc::unavailable, "the notification queue is full; try again later");
  }
  return {};
}

bool Notifier::enqueue(Job job, Clock::time_point due) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    if (job.attempt == 1 && queue_.size() >= opts_.queue_capacity) {
      ++counters_.dropped;
      return false;
    }
    queue_.emplace(due, std::move(job));
  }
  cv_.notify_one();
  return true;
}

void Notifier::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return;
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto due = queue_.begin()->first;
    if (due > Clock::now()) {
      cv_.wait_until(lock, due);
      continue;
    }
    Job job = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    lock.unlock();
    const auto rec = attempt(job);
    if (recorder_) recorder_(rec);
    if (job.done) job.done(rec);
    lock.lock();
    if (rec.ok) {
      ++counters_.delivered;
    } else if (job.attempt >= job.max_attempts) {
      ++counters_.failed;
      spdlog::warn("notification {} to hook '{}' failed after {} attempt(s): {}", job.event,
                   job.hook.name, job.attempt,
                   rec.error.empty() ? fmt::format("status {}", rec.status_code) : rec.error);
    } else if (!stopping_) {
      const auto wait = backoff(opts_.retry_base, job.attempt, jitter());
      ++job.attempt;
      queue_.emplace(Clock::now() + wait, std::move(job));
      cv_.notify_one();
    }
  }
}

store::NotifyDeliveryRecord Notifier::attempt(const Job& job) {
  store::NotifyDeliveryRecord rec;
  rec.hook = job.hook.name;
  rec.delivery = job.delivery;
  rec.event = job.event;
  rec.attempt = job.attempt;
  rec.at = now_ms();
  if (job.hook.kind == HookKind::email && opts_.smtp_relay.empty()) {
    rec.error = "no SMTP relay is configured (slipway server --smtp-relay)";
    return rec;
  }
  CURL* curl = curl_easy_init();
  if (!curl) {
    rec.error = "cannot start a transfer (curl_easy_init)";
    return rec;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  Upload upload{job.body, 0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_check);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abort_);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  std::string timestamp;
  if (job.hook.kind == HookKind::email) {
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_URL, opts_.smtp_relay.c_str());
    if (!opts_.smtp_password.empty()) {
      curl_easy_setopt(curl, CURLOPT_PASSWORD, opts_.smtp_password.c_str());
    }
    const std::string from = "<" + opts_.smtp_from + ">";
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
    headers = curl_slist_append(headers, ("<" + job.hook.target + ">").c_str());
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, headers);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(job.body.size()));
    // TLS off loopback: smtps:// from the start, else STARTTLS before anything else (curl
    // fails the session when the relay offers none, before AUTH). A loopback relay may speak
    // plain SMTP (STARTTLS still when it offers it).
    curl_easy_setopt(curl, CURLOPT_USE_SSL,
                     static_cast<long>(smtp_loopback_ ? CURLUSESSL_TRY : CURLUSESSL_ALL));
    if (smtp_resolve_) curl_easy_setopt(curl, CURLOPT_RESOLVE, smtp_resolve_);
    if (!opts_.smtp_ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, opts_.smtp_ca_file.c_str());
    }
  } else {
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_URL, job.hook.target.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, job.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(job.body.size()));
    curl_easy_setopt(curl, CURLOPT_USERAGENT, opts_.user_agent.c_str());
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (job.hook.kind == HookKind::webhook) {
      timestamp = std::to_string(now_ms() / 1000);
      headers = curl_slist_append(headers, ("X-Slipway-Event: " + job.event).c_str());
      headers = curl_slist_append(headers, ("X-Slipway-Delivery: " + job.delivery).c_str());
      headers = curl_slist_append(headers, ("X-Slipway-Timestamp: " + timestamp).c_str());
      headers = curl_slist_append(
          headers,
          ("X-Slipway-Signature: " + signature(job.hook.secret, timestamp, job.body)).c_str());
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  }
  const auto started = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(curl);
  rec.duration_ms =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count();
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  rec.status_code = static_cast<int>(code);
  if (rc == CURLE_USE_SSL_FAILED && job.hook.kind == HookKind::email) {
    rec.error = fmt::format(
        "relay {} offers no STARTTLS: e-mail goes over TLS only off loopback (smtps://, or a "
        "relay with STARTTLS); nothing was sent",
        redact_url(opts_.smtp_relay, false));
  } else if (rc != CURLE_OK) {
    rec.error = excerpt(errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc)), 200);
  } else if (job.hook.kind == HookKind::email) {
    rec.ok = true;
  } else {
    rec.ok = code >= 200 && code < 300;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return rec;
}

}  // namespace slipway::server::notify
