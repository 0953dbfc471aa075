// Notifications end to end, with real receivers on loopback: a webhook receiver that checks every
// request's HMAC signature and timestamp gets deploy.started, deploy.succeeded, deploy.rolled_back
// and deploy.failed from real deploys, node.lost when an agent is killed and drift when it comes
// back behind, node.quarantined when it cannot converge, through failures and retries that
// `notify log` shows; the hook survives a restart
// (its secret sealed in the store); a receiver that never answers does not hold a deploy up; Slack
// hooks get Slack's format, e-mail reaches a real SMTP server (aiosmtpd); every route and flag
// refuses malformed and hostile input.
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "e2e/harness.h"
#include "net/tls.h"
#include "support/child_process.h"
#include "support/webhook_receiver.h"

namespace slipway::e2e {
namespace {

using testing::ReceivedRequest;
using testing::WebhookReceiver;

constexpr auto kWait = std::chrono::milliseconds(60'000);
const char* const kAllEvents =
    "deploy.started,deploy.succeeded,deploy.failed,deploy.rolled_back,node.lost,node.quarantined,"
    "drift";

json::value body_of(const ReceivedRequest& r) {
  return parse(r.body, "webhook body");
}

// Whether a request answered 200 carries `event` (for deploy `id`, when > 0).
bool has_event(const std::vector<ReceivedRequest>& rs, const std::string& event, int64_t id = 0) {
  for (const auto& r : rs) {
    if (r.answered != 200) continue;
    auto it = r.headers.find("x-slipway-event");
    if (it == r.headers.end() || it->second != event) continue;
    if (id == 0) return true;
    const auto b = body_of(r);
    const auto* d = obj(b).if_contains("deploy");
    if (d && i64(*d, "id") == id) return true;
  }
  return false;
}

const ReceivedRequest* find_event(const std::vector<ReceivedRequest>& rs,
                                  const std::string& event) {
  for (const auto& r : rs) {
    auto it = r.headers.find("x-slipway-event");
    if (r.answered == 200 && it != r.headers.end() && it->second == event) return &r;
  }
  return nullptr;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether an SMTP server on HOST:2525 greets (raw_exchange throws while nothing listens).
bool smtp_greets(const std::string& host) {
  try {
    return raw_exchange(host, "2525", "QUIT\r\n", Millis(2'000)).find("220") == 0;
  } catch (const std::exception&) {
    return false;
  }
}

// An SMTP relay for the TLS tests (aiosmtpd): it logs every command it receives (aiosmtpd's own
// log, "PEER >> b'EHLO x'", AUTH data masked) and stores each message it accepts in MAILDIR. With
// a certificate (CHAIN KEY) it offers STARTTLS, requires it and offers AUTH only after it; without
// one it offers AUTH in clear, as a relay looks whose STARTTLS offer a man in the middle removed.
// Usage: relay.py HOST PORT LOG MAILDIR [CHAIN KEY]
constexpr const char* kRelayScript = R"PY(
import logging, os, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

host, port, log_path, mail_dir = sys.argv[1:5]
tls = None
if len(sys.argv) > 6:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[5], sys.argv[6])
logging.basicConfig(filename=log_path, level=logging.INFO, format="%(message)s")
os.makedirs(mail_dir, exist_ok=True)

class Store:
    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(mail_dir, "%d.eml" % len(os.listdir(mail_dir)))
        with open(name + ".part", "wb") as f:
            f.write(envelope.original_content)
        os.rename(name + ".part", name)
        return "250 OK"

def accept(server, session, envelope, mechanism, auth_data):
    logging.getLogger("mail.log").info(
        "authenticated %s over %s", auth_data.login.decode(), "TLS" if session.ssl else "plain text")
    return AuthResult(success=True)

Controller(Store(), hostname=host, port=int(port), tls_context=tls,
           require_starttls=tls is not None, auth_require_tls=tls is not None,
           authenticator=accept).start()
print("ready", flush=True)
threading.Event().wait()
)PY";

class NotifyTest : public E2eTest {
 protected:
  // Starts the relay of kRelayScript on HOST:2525 (a certificate chain and key: with STARTTLS);
  // returns once it greets.
  void start_relay(testing::ChildProcess& relay, const std::string& host,
                   const std::vector<std::string>& tls = {}) {
    const fs::path script = dir() / "relay.py";
    std::ofstream(script) << kRelayScript;
    testing::ChildOptions o;
    o.argv = {"/usr/bin/python3",
              script.string(),
              host,
              "2525",
              (dir() / "relay.log").string(),
              (dir() / "relay-mail").string()};
    o.argv.insert(o.argv.end(), tls.begin(), tls.end());
    o.stdout_path = dir() / "relay.out";
    o.stderr_path = dir() / "relay.err";
    relay.start(o);
    if (!wait_until([&] { return smtp_greets(host); }, Millis(30'000))) {
      throw std::runtime_error("the relay did not start: " + read_all(dir() / "relay.err"));
    }
  }
  // A lab (no node) whose server sends e-mail as user ci with `password` to smtp://relay.test:2525,
  // pinned to `relay_host` (with `more` flags), and an e-mail hook "mail". Throws when it fails.
  void start_lab_with_relay(const std::string& relay_host, const std::string& password,
                            const std::vector<std::string>& more) {
    server_args_ = {"--smtp-relay",   "smtp://ci@relay.test:2525",
                    "--smtp-resolve", "relay.test:2525:" + relay_host,
                    "--smtp-from",    "slipway@example.com"};
    server_args_.insert(server_args_.end(), more.begin(), more.end());
    // The server reads the password from its environment, inherited from this process.
    ::setenv("SLIPWAY_SMTP_PASSWORD", password.c_str(), 1);
    try {
      start_lab(0);
    } catch (...) {
      ::unsetenv("SLIPWAY_SMTP_PASSWORD");
      throw;
    }
    ::unsetenv("SLIPWAY_SMTP_PASSWORD");
    auto added = cli({"notify", "add", "--name", "mail", "email", "ops@example.com", "--events",
                      "deploy.failed"});
    if (added.exit_code != 0) throw std::runtime_error("notify add: " + added.describe());
  }
  // The messages the relay stored.
  std::vector<std::string> relayed() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir() / "relay-mail", ec)) {
      if (e.path().extension() == ".eml") out.push_back(read_all(e.path()));
    }
    return out;
  }
  // Adds a webhook to `url` for every event; returns the signing secret it printed.
  std::string add_webhook(const std::string& name, const std::string& url) {
    auto added =
        cli_json({"notify", "add", "--name", name, "webhook", url, "--events", kAllEvents});
    std::string secret = str(added, "secret");
    if (secret.size() < 16) throw std::runtime_error("no secret: " + to_json(added));
    return secret;
  }
};

TEST_F(NotifyTest, WebhookGetsSignedDeployAndNodeEventsWithRetries) {
  WebhookReceiver receiver;
  server_args_ = {"--notify-retry-base", "100ms"};
  ASSERT_NO_THROW(start_lab(2));
  const std::string secret = add_webhook("ops", receiver.url());
  receiver.set_secret(secret);

  // The listing never shows the secret.
  auto list = cli({"notify", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.describe();
  EXPECT_NE(list.out.find("ops"), std::string::npos) << list.describe();
  EXPECT_EQ(list.out.find(secret), std::string::npos) << list.describe();
  auto list_json = cli_json({"notify", "list"});
  EXPECT_EQ(to_json(list_json).find(secret), std::string::npos);
  ASSERT_EQ(arr(list_json, "hooks").size(), 1u);
  EXPECT_FALSE(obj(arr(list_json, "hooks")[0]).contains("secret"));

  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(
      push(release("1.1.0", {.healthy = false, .health_timeout = Millis(2'000)}), "web", "1.1.0")
          .exit_code,
      0);

  // The first two attempts fail (500): retried with backoff until delivered.
  receiver.fail_next(2);
  auto r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const int64_t ok_id = i64(latest_deploy(), "id");
  ASSERT_TRUE(receiver.wait_for(
      [&](const auto& rs) {
        return has_event(rs, "deploy.started", ok_id) && has_event(rs, "deploy.succeeded", ok_id);
      },
      kWait));

  // A failing deploy is rolled back; with room for every failure, it fails without a rollback.
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  const int64_t rolled_id = i64(latest_deploy(), "id");
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "2", "--max-failures", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  const auto failed = latest_deploy();
  EXPECT_EQ(str(failed, "state"), "failed") << to_json(failed);
  ASSERT_TRUE(receiver.wait_for(
      [&](const auto& rs) {
        return has_event(rs, "deploy.rolled_back", rolled_id) &&
               has_event(rs, "deploy.failed", i64(failed, "id"));
      },
      kWait));

  // An agent killed: node.lost.
  ASSERT_TRUE(lab_.stop_node("node-2", SIGKILL));
  ASSERT_TRUE(receiver.wait_for([](const auto& rs) { return has_event(rs, "node.lost"); }, kWait));
  // A deploy while it is down; back, it runs the old release: drift (and it converges).
  ASSERT_EQ(push(release("1.2.0"), "web", "1.2.0").exit_code, 0);
  r = cli({"deploy", "web", "1.2.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(lab_.start_node("node-2"));
  ASSERT_TRUE(receiver.wait_for([](const auto& rs) { return has_event(rs, "drift"); }, kWait));

  const auto all = receiver.requests();
  for (const auto& q : all) {
    EXPECT_EQ(q.signature_error, "") << q.body;
    EXPECT_EQ(q.method, "POST");
    EXPECT_EQ(q.headers.at("content-type"), "application/json");
    EXPECT_FALSE(q.headers.at("x-slipway-delivery").empty());
    EXPECT_EQ(str(body_of(q), "event"), q.headers.at("x-slipway-event"));
  }
  // The payloads carry what the contract says.
  const auto* succeeded = find_event(all, "deploy.succeeded");
  ASSERT_NE(succeeded, nullptr);
  const auto sb = body_of(*succeeded);
  EXPECT_EQ(str(sb, "env"), "staging");
  EXPECT_EQ(str(sb, "app"), "web");
  EXPECT_FALSE(str(sb, "at").empty());
  EXPECT_NE(str(sb, "text").find("succeeded"), std::string::npos) << succeeded->body;
  const auto& d = obj(sb).at("deploy");
  EXPECT_EQ(str(d, "version"), "1.0.0");
  EXPECT_EQ(str(d, "state"), "succeeded");
  EXPECT_EQ(i64(d, "node_count"), 2);
  EXPECT_EQ(i64(d, "healthy_count"), 2);
  EXPECT_EQ(i64(d, "failed_count"), 0);
  EXPECT_FALSE(str(d, "actor").empty());
  EXPECT_EQ(str(d, "url"), info().server_url + "/#/deploys/" + std::to_string(ok_id));
  EXPECT_EQ(str(d, "api_url"), info().server_url + "/api/v1/deploys/" + std::to_string(ok_id));
  const auto* rolled = find_event(all, "deploy.rolled_back");
  ASSERT_NE(rolled, nullptr);
  EXPECT_FALSE(str(obj(body_of(*rolled)).at("deploy"), "reason").empty()) << rolled->body;
  const auto* lost = find_event(all, "node.lost");
  ASSERT_NE(lost, nullptr);
  EXPECT_EQ(str(obj(body_of(*lost)).at("node"), "name"), "node-2") << lost->body;
  const auto* drift = find_event(all, "drift");
  ASSERT_NE(drift, nullptr);
  const auto drift_body = body_of(*drift);
  const auto& dn = obj(drift_body).at("node");
  EXPECT_EQ(str(dn, "name"), "node-2") << drift->body;
  EXPECT_EQ(str(dn, "running"), "1.0.0") << drift->body;
  EXPECT_EQ(str(dn, "desired"), "1.2.0") << drift->body;

  // The delivery log shows the failed attempts and the retries that got through.
  auto log = cli_json({"notify", "log", "ops", "--limit", "200"});
  bool failed_attempt = false;
  bool retried_ok = false;
  for (const auto& e : arr(log, "deliveries")) {
    EXPECT_EQ(str(e, "hook"), "ops");
    if (!boolean(e, "ok") && i64(e, "status_code") == 500) failed_attempt = true;
    if (boolean(e, "ok") && i64(e, "attempt") >= 2) retried_ok = true;
  }
  EXPECT_TRUE(failed_attempt) << to_json(log);
  EXPECT_TRUE(retried_ok) << to_json(log);
  auto table = cli({"notify", "log"});
  EXPECT_EQ(table.exit_code, 0) << table.describe();
  EXPECT_NE(table.out.find("deploy.succeeded"), std::string::npos) << table.describe();

  // The secret is sealed in the store, and opens again after a restart.
  EXPECT_EQ(read_all(info().dir / "server" / "slipway.db").find(secret), std::string::npos);
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  const size_t before = receiver.requests().size();
  auto t = cli({"notify", "test", "ops"});
  EXPECT_EQ(t.exit_code, 0) << t.describe();
  const auto after = receiver.requests();
  ASSERT_GT(after.size(), before);
  EXPECT_EQ(after.back().headers.at("x-slipway-event"), "test");
  EXPECT_EQ(after.back().signature_error, "");

  // Removed: nothing more is sent to it.
  EXPECT_EQ(cli({"notify", "remove", "ops"}).exit_code, 0);
  EXPECT_TRUE(arr(cli_json({"notify", "list"}), "hooks").empty());
  EXPECT_EQ(cli({"notify", "test", "ops"}).exit_code, 2);
}

TEST_F(NotifyTest, AReceiverThatNeverAnswersDoesNotHoldDeploysUp) {
  WebhookReceiver silent;
  silent.set_silent(true);
  server_args_ = {"--notify-retry-base", "100ms"};
  ASSERT_NO_THROW(start_lab(1));
  add_webhook("blackhole", silent.url());
  for (const std::string v : {"1.0.0", "1.0.1", "1.0.2"})
    ASSERT_EQ(push(release(v), "web", v).exit_code, 0);
  for (const std::string v : {"1.0.0", "1.0.1", "1.0.2"}) {
    auto r = cli({"deploy", "web", v, "--env", "staging"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
  }
  EXPECT_EQ(str(latest_deploy(), "state"), "succeeded");
  // It was sent to (and it held the connection without answering).
  EXPECT_TRUE(silent.wait_for([](const auto& rs) { return !rs.empty(); }, kWait));
  // The server answers while its notifier waits.
  EXPECT_EQ(http("GET", "/api/v1/notify/hooks").status, 200);
}

// A node that cannot converge to its desired release is quarantined: node.quarantined, with the
// node and why. The hook is scoped to the app (--app web) and the environment.
TEST_F(NotifyTest, AQuarantinedNodeIsReported) {
  WebhookReceiver receiver;
  server_args_ = {"--notify-retry-base", "100ms"};
  ASSERT_NO_THROW(start_lab(2));
  auto added = cli_json({"notify", "add", "--name", "quarantine", "webhook", receiver.url(),
                         "--events", "node.quarantined", "--env", "staging", "--app", "web"});
  receiver.set_secret(str(added, "secret"));
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  // 1.1.0 fails its after_install hook on a node whose root holds a file named `broken`.
  ASSERT_EQ(push(release("1.1.0",
                         {.after_install = "test -x ./bin/server && test ! -e ../../../../broken"}),
                 "web", "1.1.0")
                .exit_code,
            0);
  ASSERT_EQ(cli({"deploy", "web", "1.0.0", "--env", "staging"}).exit_code, 0);
  ASSERT_TRUE(lab_.stop_node("node-2"));
  ASSERT_TRUE(
      wait_until([&] { return str(status_by_node()["node-2"], "state") == "lost"; }, kWait));
  ASSERT_EQ(cli({"deploy", "web", "1.1.0", "--env", "staging"}).exit_code, 0);
  std::ofstream(node_root("node-2") / "broken") << "a bad disk\n";
  ASSERT_TRUE(lab_.start_node("node-2"));

  ASSERT_TRUE(
      receiver.wait_for([](const auto& rs) { return has_event(rs, "node.quarantined"); }, kWait));
  const auto requests = receiver.requests();
  const auto* q = find_event(requests, "node.quarantined");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->signature_error, "");
  const auto body = body_of(*q);
  EXPECT_EQ(str(obj(body).at("node"), "name"), "node-2") << q->body;
  EXPECT_EQ(str(body, "env"), "staging") << q->body;
  EXPECT_NE(str(body, "text").find("node-2"), std::string::npos) << q->body;
  // Only what the hook asked for reached it.
  for (const auto& r : requests) {
    auto it = r.headers.find("x-slipway-event");
    ASSERT_NE(it, r.headers.end());
    EXPECT_EQ(it->second, "node.quarantined") << r.body;
  }
}

TEST_F(NotifyTest, SlackFormatAndEmailThroughARealSmtpServer) {
  const std::string smtp_host = unique_first_address(1);
  const fs::path maildir = dir() / "maildir";
  testing::ChildProcess smtpd;
  testing::ChildOptions so;
  so.argv = {"/usr/bin/python3",
             "-m",
             "aiosmtpd",
             "-n",
             "-l",
             smtp_host + ":2525",
             "-c",
             "aiosmtpd.handlers.Mailbox",
             maildir.string()};
  so.stdout_path = dir() / "smtpd.out";
  so.stderr_path = dir() / "smtpd.err";
  smtpd.start(so);
  ASSERT_TRUE(wait_until([&] { return smtp_greets(smtp_host); }, Millis(30'000)))
      << read_all(dir() / "smtpd.err");

  WebhookReceiver slack;
  server_args_ = {"--notify-retry-base",           "100ms",       "--smtp-relay",
                  "smtp://" + smtp_host + ":2525", "--smtp-from", "slipway@example.com"};
  ASSERT_NO_THROW(start_lab(1));
  auto s = cli_json({"notify", "add", "--name", "chat", "slack", slack.url("/services/T0/B0/XYZ"),
                     "--events", "deploy.succeeded", "--env", "staging", "--app", "web"});
  EXPECT_FALSE(obj(s).contains("secret"));
  // A Slack URL is a credential: listings show its host only.
  EXPECT_EQ(to_json(cli_json({"notify", "list"})).find("XYZ"), std::string::npos);
  auto m = cli({"notify", "add", "--name", "mail", "email", "ops@example.com", "--events",
                "deploy.succeeded,deploy.failed"});
  ASSERT_EQ(m.exit_code, 0) << m.describe();
  // Filtered out: another environment.
  ASSERT_EQ(cli({"notify", "add", "--name", "prod-only", "webhook", slack.url("/prod"), "--events",
                 kAllEvents, "--env", "production"})
                .exit_code,
            0);

  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  auto r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  ASSERT_TRUE(slack.wait_for([](const auto& rs) { return !rs.empty(); }, kWait));
  const auto req = slack.requests().front();
  EXPECT_EQ(req.target, "/services/T0/B0/XYZ");
  EXPECT_EQ(req.headers.count("x-slipway-signature"), 0u);
  const auto b = parse(req.body, "slack body");
  EXPECT_NE(str(b, "text").find("succeeded"), std::string::npos) << req.body;
  ASSERT_FALSE(arr(b, "blocks").empty()) << req.body;
  EXPECT_EQ(str(arr(b, "blocks")[0], "type"), "section");

  // The e-mail, as the SMTP server stored it.
  std::string mail;
  ASSERT_TRUE(wait_until(
      [&] {
        if (!fs::exists(maildir / "new")) return false;
        for (const auto& e : fs::directory_iterator(maildir / "new")) {
          mail = read_all(e.path());
          if (!mail.empty()) return true;
        }
        return false;
      },
      Millis(60'000)))
      << read_all(dir() / "smtpd.err");
  for (const char* want :
       {"From: slipway@example.com", "To: ops@example.com", "Subject: [slipway] web 1.0.0",
        "Message-ID: <", "Date: ", "X-MailFrom: slipway@example.com", "X-RcptTo: ops@example.com",
        "deploy #"}) {
    EXPECT_NE(mail.find(want), std::string::npos) << want << " in:\n" << mail;
  }
  auto t = cli({"notify", "test", "mail"});
  EXPECT_EQ(t.exit_code, 0) << t.describe();
  // The production-only hook got nothing but what went to the Slack receiver's other path.
  for (const auto& q : slack.requests())
    EXPECT_NE(q.target, "/prod");
}

// E-mail off loopback goes over TLS only. The relay's URL names relay.test, pinned to a loopback
// address with --smtp-resolve (the only traffic a test may send): the name is not a loopback
// literal, so STARTTLS is required. A relay that offers none (or whose offer was stripped) gets
// no AUTH, no password and no message, and the delivery fails saying why.
TEST_F(NotifyTest, ARelayWithoutStartTlsGetsNoPasswordAndNoMail) {
  const std::string relay_host = unique_first_address(1);
  testing::ChildProcess relay;
  ASSERT_NO_THROW(start_relay(relay, relay_host));
  constexpr const char* kPassword = "smtp-password-never-in-clear";
  ASSERT_NO_THROW(start_lab_with_relay(relay_host, kPassword, {}));
  auto t = cli({"notify", "test", "mail"});
  EXPECT_EQ(t.exit_code, 1) << t.describe();
  EXPECT_NE(t.all().find("offers no STARTTLS"), std::string::npos) << t.describe();
  auto log = cli({"notify", "log", "mail"});
  ASSERT_EQ(log.exit_code, 0) << log.describe();
  EXPECT_NE(log.out.find("relay smtp://relay.test:2525 offers no STARTTLS: e-mail goes over TLS "
                         "only off loopback"),
            std::string::npos)
      << log.out;

  // What the relay received (it offers AUTH in clear): EHLO, then the client went away.
  const std::string commands = read_all(dir() / "relay.log");
  EXPECT_NE(commands.find("Available AUTH mechanisms: LOGIN"), std::string::npos) << commands;
  EXPECT_NE(commands.find(">> b'EHLO"), std::string::npos) << commands;
  for (const char* never :
       {">> b'AUTH", "authenticated ", ">> b'MAIL", ">> b'RCPT", ">> b'DATA", kPassword}) {
    EXPECT_EQ(commands.find(never), std::string::npos) << never << " in:\n" << commands;
  }
  EXPECT_TRUE(relayed().empty());
}

// The same relay name with STARTTLS and a certificate from a CA of its own, given to the server
// with --smtp-ca-cert: TLS first, then AUTH, then the message.
TEST_F(NotifyTest, StartTlsWithTheRelaysOwnCaDeliversAfterTls) {
  const std::string relay_host = unique_first_address(1);
  auto certs = net::ensure_server_certificate(dir() / "relay-tls", {"relay.test"});
  ASSERT_TRUE(certs) << certs.error().message;
  testing::ChildProcess relay;
  ASSERT_NO_THROW(start_relay(relay, relay_host, {certs->chain.string(), certs->key.string()}));
  ASSERT_NO_THROW(start_lab_with_relay(relay_host, "smtp-password-over-tls",
                                       {"--smtp-ca-cert", certs->ca.string()}));
  auto t = cli({"notify", "test", "mail"});
  EXPECT_EQ(t.exit_code, 0) << t.describe() << read_all(dir() / "relay.log");
  std::vector<std::string> mail;
  ASSERT_TRUE(wait_until([&] { return !(mail = relayed()).empty(); }, Millis(30'000)))
      << read_all(dir() / "relay.log");
  EXPECT_NE(mail.front().find("To: ops@example.com"), std::string::npos) << mail.front();
  const std::string commands = read_all(dir() / "relay.log");
  const auto starttls = commands.find(">> b'STARTTLS'");
  const auto auth = commands.find(">> b'AUTH");
  ASSERT_NE(starttls, std::string::npos) << commands;
  ASSERT_NE(auth, std::string::npos) << commands;
  EXPECT_LT(starttls, auth) << commands;
  EXPECT_NE(commands.find("authenticated ci over TLS"), std::string::npos) << commands;
  EXPECT_EQ(commands.find("smtp-password-over-tls"), std::string::npos) << commands;
}

// --smtp-resolve is checked before the server starts.
TEST_F(NotifyTest, SmtpResolveFlagsAreChecked) {
  for (const std::string bad :
       {"relay.test:2525", "relay.test:2525:not-an-address", "other.test:2525:127.0.0.1",
        "relay.test:25:127.0.0.1", "relay.test:2525:127.0.0.1\nx", "::::"}) {
    auto r = run_process(
        {SLIPWAY_BIN, "server", "--data", (dir() / "data").string(), "--listen", "127.0.0.1:0",
         "--smtp-relay", "smtp://relay.test:2525", "--smtp-resolve", bad},
        {}, Millis(30'000));
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.describe();
    EXPECT_NE(r.err.find("--smtp-resolve"), std::string::npos) << bad << ": " << r.describe();
  }
  EXPECT_FALSE(fs::exists(dir() / "data" / "slipway.db"));
}

TEST_F(NotifyTest, MalformedAndHostileInputIsRefused) {
  WebhookReceiver receiver;
  ASSERT_NO_THROW(start_lab(1));
  const std::string url = receiver.url();
  const std::vector<std::pair<std::string, int>> bodies = {
      {"", 400},
      {"not json", 400},
      {"[]", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":["drift"],"extra":1})", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":"drift"})", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":[]})", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":["deploy.exploded"]})", 400},
      {R"({"name":"a","kind":"pager","target":"URL","events":["drift"]})", 400},
      {R"({"name":"../x","kind":"webhook","target":"URL","events":["drift"]})", 400},
      {R"({"name":")" + std::string(200, 'a') +
           R"(","kind":"webhook","target":"URL","events":["drift"]})",
       400},
      {R"({"name":"a","kind":"webhook","target":"file:///etc/passwd","events":["drift"]})", 400},
      {R"({"name":"a","kind":"webhook","target":"ftp://127.0.0.1/","events":["drift"]})", 400},
      {R"({"name":"a","kind":"webhook","target":"http://","events":["drift"]})", 400},
      {R"({"name":"a","kind":"webhook","target":"http://x/a\r\nHost: evil","events":["drift"]})",
       400},
      {R"({"name":"a","kind":"slack","target":"gopher://x/","events":["drift"]})", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":["drift"],"secret":"short"})", 400},
      {R"({"name":"a","kind":"slack","target":"URL","events":["drift"],"secret":"0123456789abcdefg"})",
       400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":["drift"],"env":"../etc"})", 400},
      {R"({"name":"a","kind":"webhook","target":"URL","events":["drift"],"app":"a/b"})", 400},
      {R"({"name":"a","kind":"email","target":"not-an-address","events":["drift"]})", 400},
      {R"({"name":"a","kind":"email","target":"ops@example.com\r\nBcc: x@y","events":["drift"]})",
       400},
      // No SMTP relay on this server.
      {R"({"name":"a","kind":"email","target":"ops@example.com","events":["drift"]})", 412},
  };
  for (const auto& [raw, want] : bodies) {
    std::string b = raw;
    for (size_t at = b.find("URL"); at != std::string::npos; at = b.find("URL"))
      b.replace(at, 3, url);
    auto res = http("POST", "/api/v1/notify/hooks", b);
    EXPECT_EQ(res.status, want) << b << " -> " << res.body;
  }
  const std::string good =
      fmt::format(R"({{"name":"good","kind":"webhook","target":"{}","events":["drift"],)"
                  R"("secret":"0123456789abcdef0123"}})",
                  url);
  auto created = http("POST", "/api/v1/notify/hooks", good);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.body.find("0123456789abcdef0123"), std::string::npos) << created.body;
  EXPECT_EQ(http("POST", "/api/v1/notify/hooks", good).status, 409);

  for (const auto& [target, want] : std::vector<std::pair<std::string, int>>{
           {"/api/v1/notify/deliveries?limit=0", 400},
           {"/api/v1/notify/deliveries?limit=abc", 400},
           {"/api/v1/notify/deliveries?limit=100000", 400},
           {"/api/v1/notify/deliveries?hook=..%2Fx", 400},
           {"/api/v1/notify/deliveries?hook=good&limit=5", 200}}) {
    EXPECT_EQ(http("GET", target).status, want) << target;
  }
  EXPECT_EQ(http("DELETE", "/api/v1/notify/hooks/nope").status, 404);
  EXPECT_EQ(http("DELETE", "/api/v1/notify/hooks/" + std::string(100, 'x')).status, 400);
  EXPECT_EQ(http("POST", "/api/v1/notify/hooks/nope/test").status, 404);
  EXPECT_EQ(http("POST", "/api/v1/notify/hooks/good/test", R"({"x":1})").status, 400);

  // A viewer lists, never adds, tests or removes.
  auto v = http("POST", "/api/v1/tokens", R"({"role":"viewer","name":"watcher"})");
  ASSERT_EQ(v.status, 201);
  const std::string viewer = str(parse(v.body, "token"), "token");
  EXPECT_EQ(http("GET", "/api/v1/notify/hooks", "", {}, viewer).status, 200);
  EXPECT_EQ(http("GET", "/api/v1/notify/deliveries", "", {}, viewer).status, 200);
  EXPECT_EQ(http("POST", "/api/v1/notify/hooks", good, {}, viewer).status, 403);
  EXPECT_EQ(http("POST", "/api/v1/notify/hooks/good/test", "", {}, viewer).status, 403);
  EXPECT_EQ(http("DELETE", "/api/v1/notify/hooks/good", "", {}, viewer).status, 403);

  // The CLI refuses bad flags before asking the server (usage: exit 2).
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"notify", "add", "--name", "x", "pager", url, "--events", "drift"},
           {"notify", "add", "--name", "x", "webhook", url},
           {"notify", "add", "--name", "../x", "webhook", url, "--events", "drift"},
           {"notify", "add", "--name", "x", "webhook", "ftp://x/", "--events", "drift"},
           {"notify", "add", "--name", "x", "webhook", url, "--events", "drift,bogus"},
           {"notify", "add", "--name", "x", "webhook", url, "--events", "drift", "--env", "a/b"},
           {"notify", "add", "--name", "x", "webhook", url, "--events", "drift", "--secret-stdin"},
           {"notify", "add", "--name", "x", "slack", url, "--events", "drift", "--secret-stdin"},
           {"notify", "log", "--limit", "0"},
           {"notify", "log", "../x"},
           {"notify", "test", "nope"},
           {"notify", "remove", "nope"},
           {"notify", "list", "-o", "yaml"}}) {
    auto res = cli(args);
    EXPECT_EQ(res.exit_code, 2) << res.describe();
  }
  // A test to a receiver that is up succeeds; to a port nobody listens on, it fails (exit 1).
  receiver.set_secret("0123456789abcdef0123");
  auto t = cli({"notify", "test", "good"});
  EXPECT_EQ(t.exit_code, 0) << t.describe();
  ASSERT_EQ(cli({"notify", "add", "--name", "nowhere", "webhook", "http://127.0.0.1:1/x",
                 "--events", "drift"})
                .exit_code,
            0);
  auto t2 = cli({"notify", "test", "nowhere"});
  EXPECT_EQ(t2.exit_code, 1) << t2.describe();
  EXPECT_EQ(http("GET", "/api/v1/stats").status, 200);
}

}  // namespace
}  // namespace slipway::e2e
