#include "support/webhook_receiver.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace slipway::testing {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

std::string header(const std::map<std::string, std::string>& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? "" : it->second;
}

// Reads from fd until the headers and Content-Length bytes of body arrived (or 10 s passed).
bool read_request(int fd, ReceivedRequest& r) {
  std::string data;
  size_t header_end = std::string::npos;
  size_t want = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (header_end != std::string::npos && data.size() >= header_end + 4 + want) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[8192];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    data.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      size_t line_end = data.find("\r\n");
      const std::string first = data.substr(0, line_end);
      const auto sp1 = first.find(' ');
      const auto sp2 = first.find(' ', sp1 + 1);
      r.method = first.substr(0, sp1);
      r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t at = line_end + 2;
      while (at < header_end) {
        const size_t e = data.find("\r\n", at);
        const std::string line = data.substr(at, e - at);
        const auto colon = line.find(':');
        if (colon != std::string::npos) {
          std::string v = line.substr(colon + 1);
          while (!v.empty() && v.front() == ' ')
            v.erase(0, 1);
          r.headers[lower(line.substr(0, colon))] = v;
        }
        at = e + 2;
      }
      want = static_cast<size_t>(std::stoul(header(r.headers, "content-length").empty()
                                                ? std::string("0")
                                                : header(r.headers, "content-length")));
    }
  }
  r.body = data.substr(header_end + 4, want);
  return true;
}

}  // namespace

std::string verify_webhook(const std::string& secret,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body, long long now_s) {
  const std::string ts = header(headers, "x-slipway-timestamp");
  const std::string sig = header(headers, "x-slipway-signature");
  if (ts.empty() || sig.empty()) return "no X-Slipway-Timestamp or X-Slipway-Signature";
  if (ts.size() > 12 || !std::all_of(ts.begin(), ts.end(), ::isdigit)) return "bad timestamp";
  const long long t = std::stoll(ts);
  if (t < now_s - 300 || t > now_s + 300) return "timestamp outside the 5-minute window";
  if (sig.rfind("sha256=", 0) != 0) return "signature is not sha256=HEX";
  const std::string want = "sha256=" + hmac_hex(secret, ts + "." + body);
  if (want.size() != sig.size() || CRYPTO_memcmp(want.data(), sig.data(), want.size()) != 0)
    return "signature mismatch";
  return "";
}

WebhookReceiver::WebhookReceiver(std::string secret) : secret_(std::move(secret)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error(std::string("webhook receiver: cannot listen: ") +
                             std::strerror(errno));
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { loop(); });
}

WebhookReceiver::~WebhookReceiver() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
  for (int fd : held_)
    ::close(fd);
}

void WebhookReceiver::set_secret(const std::string& secret) {
  std::lock_guard lock(mu_);
  secret_ = secret;
}

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::fail_next(int n, int status) {
  std::lock_guard lock(mu_);
  fail_left_ = n;
  fail_status_ = status;
}

void WebhookReceiver::set_silent(bool silent) {
  std::lock_guard lock(mu_);
  silent_ = silent;
}

std::vector<ReceivedRequest> WebhookReceiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

bool WebhookReceiver::wait_for(const std::function<bool(const std::vector<ReceivedRequest>&)>& pred,
                               std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(requests_); });
}

void WebhookReceiver::loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
  }
}

void WebhookReceiver::handle(int fd) {
  ReceivedRequest r;
  if (!read_request(fd, r)) {
    ::close(fd);
    return;
  }
  int status = 200;
  bool silent = false;
  {
    std::lock_guard lock(mu_);
    if (!secret_.empty()) {
      r.signature_error = verify_webhook(secret_, r.headers, r.body,
                                         std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
      if (!r.signature_error.empty()) status = 401;
    }
    if (silent_) {
      silent = true;
    } else if (fail_left_ > 0) {
      --fail_left_;
      status = fail_status_;
    }
    r.answered = silent ? 0 : status;
    requests_.push_back(r);
  }
  cv_.notify_all();
  if (silent) {
    held_.push_back(fd);
    return;
  }
  const std::string body = status == 200 ? "ok" : "no";
  const std::string answer = "HTTP/1.1 " + std::to_string(status) +
                             " X\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             "Content-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  ::close(fd);
}

}  // namespace slipway::testing
