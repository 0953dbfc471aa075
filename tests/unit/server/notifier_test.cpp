// The notifier's pure parts (signature, payloads, Slack and e-mail rendering, backoff, target
// checks, hook matching) and its queue against loopback peers: retries with backoff until the last
// attempt, and a full queue that drops (and counts) rather than block the caller.
#include "server/notifier.h"

#include <condition_variable>
#include <mutex>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace slipway::server::notify {
namespace {

Notification deploy_note(const std::string& event) {
  Notification n;
  n.event = event;
  n.at = 1'700'000'000'000;
  n.env = "staging";
  n.app = "web";
  n.deploy = json::object{{"id", 7}, {"version", "1.2.0"}, {"state", "succeeded"}};
  n.text = "web 1.2.0 to staging: deploy #7 succeeded <now> & done";
  return n;
}

TEST(NotifySignature, IsHmacSha256OfTimestampDotBody) {
  // python3: hmac.new(b"whsec_test", b'1700000000.{"event":"test"}', hashlib.sha256).hexdigest()
  EXPECT_EQ(signature("whsec_test", "1700000000", R"({"event":"test"})"),
            "sha256=21d2d3606ebbdbf9307ee15e83085df2b83c83dd87cc2e6d2ea6b1cb61afdc3c");
  EXPECT_NE(signature("whsec_test", "1700000001", R"({"event":"test"})"),
            signature("whsec_test", "1700000000", R"({"event":"test"})"));
  EXPECT_NE(signature("whsec_tesT", "1700000000", R"({"event":"test"})"),
            signature("whsec_test", "1700000000", R"({"event":"test"})"));
}

TEST(NotifyPayload, HasTheContractFields) {
  const auto o = payload_json(deploy_note("deploy.succeeded"));
  EXPECT_EQ(o.at("event").as_string(), "deploy.succeeded");
  EXPECT_EQ(o.at("at").as_string(), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(o.at("env").as_string(), "staging");
  EXPECT_EQ(o.at("app").as_string(), "web");
  EXPECT_EQ(o.at("deploy").as_object().at("id").as_int64(), 7);
  EXPECT_FALSE(o.contains("node"));
  EXPECT_FALSE(o.at("text").as_string().empty());
}

TEST(NotifySlack, IsAnIncomingWebhookMessageWithEscapedText) {
  const auto o = slack_json(deploy_note("deploy.succeeded"));
  const std::string text(o.at("text").as_string());
  EXPECT_NE(text.find("&lt;now&gt; &amp; done"), std::string::npos) << text;
  EXPECT_EQ(text.find('<'), std::string::npos) << text;
  const auto& blocks = o.at("blocks").as_array();
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].as_object().at("type").as_string(), "section");
  EXPECT_EQ(blocks[0].as_object().at("text").as_object().at("type").as_string(), "mrkdwn");
  EXPECT_EQ(blocks[1].as_object().at("type").as_string(), "context");
}

TEST(NotifyEmail, IsAnRfc5322MessageWithNoHeaderInjection) {
  Notification n = deploy_note("deploy.failed");
  n.text = "web failed\r\nBcc: victim@example.com";
  const std::string m =
      email_message(n, "slipway@example.com", "ops@example.com", "abc@example.com", 0);
  EXPECT_EQ(m.rfind("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n", 0), 0u) << m;
  EXPECT_NE(m.find("\r\nFrom: slipway@example.com\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\nTo: ops@example.com\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\nMessage-ID: <abc@example.com>\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\nSubject: [slipway] web failed  Bcc: victim@example.com\r\n"),
            std::string::npos)
      << m;
  const auto headers_end = m.find("\r\n\r\n");
  ASSERT_NE(headers_end, std::string::npos);
  // No header of its own (the text stays in the Subject, and in the body).
  EXPECT_EQ(m.substr(0, headers_end).find("\r\nBcc:"), std::string::npos) << m;
  // Every line ends with CRLF, and none is longer than RFC 5322 allows.
  size_t start = 0;
  for (size_t at = m.find('\n'); at != std::string::npos; at = m.find('\n', start)) {
    EXPECT_GT(at, 0u);
    EXPECT_EQ(m[at - 1], '\r');
    EXPECT_LE(at - start, 998u);
    start = at + 1;
  }
}

TEST(NotifyBackoff, DoublesWithAtMostAQuarterOfJitter) {
  EXPECT_EQ(backoff(Millis(1000), 1, 0.0), Millis(1000));
  EXPECT_EQ(backoff(Millis(1000), 2, 0.0), Millis(2000));
  EXPECT_EQ(backoff(Millis(1000), 3, 0.0), Millis(4000));
  EXPECT_EQ(backoff(Millis(1000), 4, 0.0), Millis(8000));
  EXPECT_EQ(backoff(Millis(1000), 4, 0.999), Millis(9998));
  EXPECT_EQ(backoff(Millis(1000), 60, 0.0), Millis(3'600'000));  // capped
}

TEST(NotifyTargets, UrlsAndAddressesAreChecked) {
  EXPECT_TRUE(validate_target(HookKind::webhook, "http://127.0.0.1:9000/hook"));
  EXPECT_TRUE(validate_target(HookKind::slack, "https://hooks.slack.com/services/T/B/X"));
  for (const char* bad :
       {"", "ftp://x/y", "file:///etc/passwd", "http://", "not a url", "http://h/a b", "gopher://x",
        "http://x/#frag", "javascript:alert(1)", "//x/y", "http://x/\n"}) {
    EXPECT_FALSE(validate_target(HookKind::webhook, bad)) << bad;
  }
  EXPECT_FALSE(validate_target(HookKind::webhook, "http://x/" + std::string(3000, 'a')));
  EXPECT_TRUE(validate_target(HookKind::email, "ops+deploys@example.com"));
  for (const char* bad : {"", "ops", "@example.com", "ops@", "o ps@example.com", "ops@exa mple",
                          "ops@-x.com", "a..b@x.com", "ops@example.com\r\nBcc: x@y"}) {
    EXPECT_FALSE(validate_target(HookKind::email, bad)) << bad;
  }
  EXPECT_TRUE(validate_smtp_relay("smtp://127.0.0.1:2525"));
  EXPECT_TRUE(validate_smtp_relay("smtps://relay@mail.example.com"));
  EXPECT_FALSE(validate_smtp_relay("smtp://user:pw@mail.example.com"));
  EXPECT_FALSE(validate_smtp_relay("http://mail.example.com"));
  // Boost.URL takes this for host 127.0.0.1 and path ".example.com": refused, never loopback.
  EXPECT_FALSE(validate_smtp_relay("smtp://127.0.0.1.example.com"));
  EXPECT_FALSE(validate_smtp_relay("smtp://u@127.0.0.1.example.com:25"));
  for (const char* loopback : {"smtp://127.0.0.1:2525", "smtp://127.64.3.2", "smtp://localhost:25",
                               "smtp://LOCALHOST", "smtp://u@[::1]:2525", "smtps://127.0.0.1"}) {
    EXPECT_TRUE(smtp_relay_is_loopback(loopback)) << loopback;
  }
  for (const char* remote : {"smtp://mail.example.com", "smtp://relay.test:2525", "smtp://10.0.0.1",
                             "smtp://[::2]", "smtp://128.0.0.1", "smtp://localhost.example.com",
                             "smtp://127.0.0.1.example.com", "not a url", ""}) {
    EXPECT_FALSE(smtp_relay_is_loopback(remote)) << remote;
  }
  EXPECT_TRUE(validate_smtp_resolve("relay.test:2525:127.0.0.1", "smtp://relay.test:2525"));
  EXPECT_TRUE(validate_smtp_resolve("Relay.Test:25:[::1]", "smtp://u@relay.test"));
  EXPECT_TRUE(validate_smtp_resolve("relay.test:465:10.1.2.3", "smtps://relay.test"));
  for (const char* bad :
       {"", "relay.test", "relay.test:2525", "relay.test:2525:", "relay.test:2525:name.example",
        "relay.test:2525:127.0.0.1:1", "other.test:2525:127.0.0.1", "relay.test:25:127.0.0.1",
        "relay.test:2525:[127.0.0.1"}) {
    EXPECT_FALSE(validate_smtp_resolve(bad, "smtp://relay.test:2525")) << bad;
  }
  EXPECT_EQ(redact_url("https://u:p@hooks.slack.com/services/T/B/X?x=1", false),
            "https://hooks.slack.com/…");
  EXPECT_EQ(redact_url("https://u:p@h.example:8443/hook?token=1", true),
            "https://h.example:8443/hook");
}

TEST(NotifyMatching, EventsEnvAndApp) {
  Hook h;
  h.events = {"deploy.failed", "node.lost"};
  EXPECT_TRUE(wants(h, deploy_note("deploy.failed")));
  EXPECT_FALSE(wants(h, deploy_note("deploy.succeeded")));
  h.env = "production";
  EXPECT_FALSE(wants(h, deploy_note("deploy.failed")));
  h.env = "staging";
  h.app = "api";
  EXPECT_FALSE(wants(h, deploy_note("deploy.failed")));
  Notification lost;
  lost.event = "node.lost";
  lost.env = "staging";
  lost.apps = {"api", "web"};
  EXPECT_TRUE(wants(h, lost));
  lost.apps = {"web"};
  EXPECT_FALSE(wants(h, lost));
}

// A TCP port on 127.0.0.1 that is listening but never accepts (connections wait in the backlog,
// no answer ever comes), or that nobody listens on (closed).
class Port {
 public:
  explicit Port(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (listen) {
      ::listen(fd_, 64);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Port() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Records {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<store::NotifyDeliveryRecord> all;
  void add(const store::NotifyDeliveryRecord& r) {
    std::lock_guard lock(mu);
    all.push_back(r);
    cv.notify_all();
  }
  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return all.size() >= n; });
  }
};

TEST(NotifierQueue, RetriesWithBackoffUntilTheLastAttempt) {
  Port closed(false);
  Records rec;
  Options o;
  o.retry_base = Millis(10);
  o.max_attempts = 3;
  o.threads = 1;
  Notifier n(o, [&rec](const store::NotifyDeliveryRecord& r) { rec.add(r); });
  Hook h;
  h.name = "down";
  h.target = closed.url();
  h.events = {"deploy.failed"};
  h.secret = "whsec_0123456789abcdef";
  n.set_hook(h);
  n.publish(deploy_note("deploy.failed"));
  ASSERT_TRUE(rec.wait_for(3));
  std::lock_guard lock(rec.mu);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rec.all[i].attempt, i + 1);
    EXPECT_FALSE(rec.all[i].ok);
    EXPECT_FALSE(rec.all[i].error.empty());
    EXPECT_EQ(rec.all[i].delivery, rec.all[0].delivery);  // one delivery, three attempts
    EXPECT_EQ(rec.all[i].hook, "down");
  }
  EXPECT_TRUE([&] {
    for (int i = 0; i < 600; ++i) {
      if (n.counters().failed == 1) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }());
}

TEST(NotifierQueue, AFullQueueDropsAndCountsInsteadOfBlocking) {
  Port silent(true);
  Options o;
  o.queue_capacity = 2;
  o.threads = 1;
  o.timeout = Millis(30'000);
  Notifier n(o, nullptr);
  Hook h;
  h.name = "silent";
  h.target = silent.url();
  h.events = {"deploy.started"};
  n.set_hook(h);
  for (int i = 0; i < 20; ++i)
    n.publish(deploy_note("deploy.started"));
  // One in flight (never answered) and two waiting at most: the rest were dropped.
  const auto c = n.counters();
  EXPECT_GE(c.dropped, 17u);
  EXPECT_LE(c.queued, 2u);
  // ~Notifier aborts the transfer in flight rather than wait for its timeout.
}

TEST(NotifierQueue, TestOfAnUnknownHookIsNotFound) {
  Notifier n(Options{}, nullptr);
  auto st = n.test("nope", deploy_note("test"), nullptr);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::not_found);
}

}  // namespace
}  // namespace slipway::server::notify
