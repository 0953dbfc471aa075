// A real HTTP receiver of webhooks for end-to-end tests, on 127.0.0.1 and an ephemeral port (plain
// sockets, one thread). It checks every request's signature the way docs/notifications.md tells a
// receiver to (HMAC-SHA256 of TIMESTAMP "." BODY, a timestamp within five minutes), records it,
// and answers 200 — or, as told, fails the next requests (500) or never answers at all.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace slipway::testing {

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string signature_error;  // "" when the signature and the timestamp verified
  int answered = 0;             // the status answered (0: none)
};

// What a receiver does to check a request: "" when the headers carry a valid signature of `body`
// under `secret` made within 300 seconds of `now_s`, else why not.
std::string verify_webhook(const std::string& secret,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body, long long now_s);

class WebhookReceiver {
 public:
  // `secret` "" = no signature check (a Slack hook's receiver).
  explicit WebhookReceiver(std::string secret = "");
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  void set_secret(const std::string& secret);
  std::string url(const std::string& path = "/hook") const;
  // Answers the next `n` requests with `status`.
  void fail_next(int n, int status = 500);
  // Reads requests but never answers them (their connections stay open until the receiver goes).
  void set_silent(bool silent);

  std::vector<ReceivedRequest> requests() const;
  // Waits until `pred` holds for the requests so far (checked on each new one) or `timeout`.
  bool wait_for(const std::function<bool(const std::vector<ReceivedRequest>&)>& pred,
                std::chrono::milliseconds timeout);

 private:
  void loop();
  void handle(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string secret_;
  int fail_left_ = 0;
  int fail_status_ = 500;
  bool silent_ = false;
  std::vector<ReceivedRequest> requests_;
  std::vector<int> held_;  // connections of silent answers
  std::thread thread_;
};

}  // namespace slipway::testing
