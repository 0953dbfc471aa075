// Selectors (inventory/selector.h): the grammar in the header comment, matching, errors with
// positions, and the canonical text.
#include "inventory/selector.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway::inventory {
namespace {

Node node(std::string name, std::string env, std::vector<std::string> roles, std::string zone,
          std::map<std::string, std::string> tags = {}) {
  Node n;
  n.name = std::move(name);
  n.env = std::move(env);
  n.roles = std::move(roles);
  n.zone = std::move(zone);
  n.tags = std::move(tags);
  n.state = NodeState::alive;
  return n;
}

const Node kApi1 = node("api-1", "production", {"api"}, "eu-1a", {{"canary", "true"}});
const Node kApi2 = node("api-2", "production", {"api", "worker"}, "eu-1b", {{"team", "payments"}});
const Node kWorker = node("worker-1", "production", {"worker"}, "eu-1b");
const Node kStaging = node("stage-1", "staging", {"api"}, "a", {{"env", "weird"}});

Selector parse(std::string_view text) {
  auto s = Selector::parse(text);
  EXPECT_TRUE(s) << text << ": " << (s ? "" : s.error().message);
  return s ? *s : Selector();
}

std::string parse_error(std::string_view text) {
  auto s = Selector::parse(text);
  EXPECT_FALSE(s) << text << " parsed as '" << (s ? s->to_string() : "") << "'";
  if (s) return {};
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  return s.error().message;
}

// Names of the nodes (out of the four above) that `text` picks.
std::vector<std::string> picks(std::string_view text) {
  const auto sel = parse(text);
  std::vector<std::string> out;
  for (const Node* n : {&kApi1, &kApi2, &kWorker, &kStaging}) {
    if (sel.matches(*n)) out.push_back(n->name);
  }
  return out;
}

using Names = std::vector<std::string>;

TEST(Selector, EmptySelectsEverything) {
  EXPECT_TRUE(parse("").empty());
  EXPECT_TRUE(parse("   ").empty());
  EXPECT_TRUE(parse(" , ,").empty());
  EXPECT_EQ(picks(""), (Names{"api-1", "api-2", "worker-1", "stage-1"}));
}

TEST(Selector, Equality) {
  EXPECT_EQ(picks("env=production"), (Names{"api-1", "api-2", "worker-1"}));
  EXPECT_EQ(picks("env==production"), (Names{"api-1", "api-2", "worker-1"}));
  EXPECT_EQ(picks("zone=eu-1b"), (Names{"api-2", "worker-1"}));
  EXPECT_EQ(picks("name=api-1"), (Names{"api-1"}));
  EXPECT_EQ(picks("env=nowhere"), Names{});
  EXPECT_EQ(picks("env = production"), (Names{"api-1", "api-2", "worker-1"}));
}

TEST(Selector, RoleMatchesAnyOfTheNodesRoles) {
  EXPECT_EQ(picks("role=api"), (Names{"api-1", "api-2", "stage-1"}));
  EXPECT_EQ(picks("role=worker"), (Names{"api-2", "worker-1"}));
  // != holds when no role equals.
  EXPECT_EQ(picks("role!=worker"), (Names{"api-1", "stage-1"}));
  EXPECT_EQ(picks("role in (worker, db)"), (Names{"api-2", "worker-1"}));
  EXPECT_EQ(picks("role notin (worker)"), (Names{"api-1", "stage-1"}));
}

TEST(Selector, AllTermsMustHold) {
  EXPECT_EQ(picks("env=production role=api zone=eu-1a"), Names{"api-1"});
  EXPECT_EQ(picks("env=production,role=api"), (Names{"api-1", "api-2"}));
  EXPECT_EQ(picks("env=production, role=api ,zone=eu-1b"), Names{"api-2"});
  EXPECT_EQ(picks("  env=production   role=worker  "), (Names{"api-2", "worker-1"}));
  EXPECT_EQ(picks("env=production env=staging"), Names{});
}

TEST(Selector, NotEqual) {
  EXPECT_EQ(picks("env!=production"), Names{"stage-1"});
  EXPECT_EQ(picks("zone!=eu-1b"), (Names{"api-1", "stage-1"}));
  // A tag that is absent is not equal to anything.
  EXPECT_EQ(picks("team!=payments"), (Names{"api-1", "worker-1", "stage-1"}));
}

TEST(Selector, SetMembership) {
  EXPECT_EQ(picks("zone in (eu-1a, a)"), (Names{"api-1", "stage-1"}));
  EXPECT_EQ(picks("zone in (eu-1a,a)"), (Names{"api-1", "stage-1"}));
  EXPECT_EQ(picks("zone in(eu-1a)"), Names{"api-1"});
  EXPECT_EQ(picks("zone in ( eu-1a )"), Names{"api-1"});
  EXPECT_EQ(picks("zone notin (eu-1b)"), (Names{"api-1", "stage-1"}));
  EXPECT_EQ(picks("name in (api-1, worker-1) env=production"), (Names{"api-1", "worker-1"}));
  EXPECT_EQ(picks("team in (payments)"), Names{"api-2"});
  EXPECT_EQ(picks("team notin (payments)"), (Names{"api-1", "worker-1", "stage-1"}));
}

TEST(Selector, TagsExistOrNot) {
  EXPECT_EQ(picks("canary"), Names{"api-1"});
  EXPECT_EQ(picks("!canary"), (Names{"api-2", "worker-1", "stage-1"}));
  EXPECT_EQ(picks("canary=true"), Names{"api-1"});
  EXPECT_EQ(picks("canary=false"), Names{});
  EXPECT_EQ(picks("canary role=api"), Names{"api-1"});
  EXPECT_EQ(picks("role=api canary"), Names{"api-1"});
  EXPECT_EQ(picks("canary,role=api"), Names{"api-1"});
  EXPECT_EQ(picks("!canary role=api"), (Names{"api-2", "stage-1"}));
  EXPECT_EQ(picks("team canary"), Names{});
}

TEST(Selector, ExplicitTagPrefix) {
  // "tag:env" is the tag called env, not the environment.
  EXPECT_EQ(picks("tag:env=weird"), Names{"stage-1"});
  EXPECT_EQ(picks("tag:env"), Names{"stage-1"});
  EXPECT_EQ(picks("!tag:env"), (Names{"api-1", "api-2", "worker-1"}));
  EXPECT_EQ(picks("tag:team=payments"), Names{"api-2"});
  EXPECT_EQ(picks("tag:canary"), Names{"api-1"});
  const auto sel = parse("tag:env=weird team=payments env=staging");
  ASSERT_EQ(sel.terms().size(), 3u);
  EXPECT_TRUE(sel.terms()[0].is_tag);
  EXPECT_EQ(sel.terms()[0].key, "env");
  EXPECT_TRUE(sel.terms()[1].is_tag);
  EXPECT_FALSE(sel.terms()[2].is_tag);
}

TEST(Selector, TermsAreParsedIntoTheirParts) {
  const auto sel = parse("zone notin (a, b,c)");
  ASSERT_EQ(sel.terms().size(), 1u);
  const auto& t = sel.terms()[0];
  EXPECT_EQ(t.key, "zone");
  EXPECT_EQ(t.op, Selector::Op::notin);
  EXPECT_EQ(t.values, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(parse("x!=1").terms()[0].op, Selector::Op::ne);
  EXPECT_EQ(parse("x==1").terms()[0].op, Selector::Op::eq);
  EXPECT_EQ(parse("x").terms()[0].op, Selector::Op::exists);
  EXPECT_EQ(parse("!x").terms()[0].op, Selector::Op::not_exists);
  // Keywords are whole words: a tag named "inside" is not "in".
  const auto w = parse("inside=1 notinteresting");
  ASSERT_EQ(w.terms().size(), 2u);
  EXPECT_EQ(w.terms()[0].key, "inside");
  EXPECT_EQ(w.terms()[1].key, "notinteresting");
  EXPECT_EQ(w.terms()[1].op, Selector::Op::exists);
}

TEST(Selector, ErrorsSayWhatAndWhere) {
  EXPECT_NE(parse_error("env").find("'env' needs a value"), std::string::npos);
  EXPECT_NE(parse_error("role").find("needs a value"), std::string::npos);
  EXPECT_NE(parse_error("!env").find("'!' applies to tags only"), std::string::npos);
  auto m = parse_error("env=");
  EXPECT_NE(m.find("expected a value"), std::string::npos) << m;
  EXPECT_NE(m.find("position 5"), std::string::npos) << m;
  m = parse_error("env=production role=api zone=eu-1a &x");
  EXPECT_NE(m.find("position 36"), std::string::npos) << m;
  EXPECT_NE(m.find("selector 'env=production role=api zone=eu-1a &x'"), std::string::npos) << m;
  m = parse_error("zone in a, b");
  EXPECT_NE(m.find("expected '('"), std::string::npos) << m;
  EXPECT_NE(m.find("position 9"), std::string::npos) << m;
  m = parse_error("zone in (a b)");
  EXPECT_NE(m.find("expected ',' or ')'"), std::string::npos) << m;
  EXPECT_NE(m.find("position 12"), std::string::npos) << m;
  EXPECT_NE(parse_error("zone in (a,").find("expected a value"), std::string::npos);
  EXPECT_NE(parse_error("zone in ()").find("expected a value"), std::string::npos);
  EXPECT_NE(parse_error("zone in (a").find("expected ',' or ')'"), std::string::npos);
  EXPECT_NE(parse_error("env=prod)").find("between terms"), std::string::npos);
  EXPECT_NE(parse_error("=x").find("expected a key"), std::string::npos);
  EXPECT_NE(parse_error("!").find("expected a key"), std::string::npos);
  EXPECT_NE(parse_error("env<x").find("expected '=', '!=', 'in' or 'notin'"), std::string::npos);
  parse_error("env=a=b");
  parse_error("env=prod\tzone=a");
  parse_error("env=caf\xc3\xa9");
  parse_error("env=a/b");
  parse_error(std::string_view("env=a\0b", 7));
}

TEST(Selector, InvalidNamesAreRefused) {
  EXPECT_NE(parse_error("tag:").find("tag key"), std::string::npos);
  EXPECT_NE(parse_error("tag:=x").find("tag key"), std::string::npos);
  parse_error("-x=1");   // a key must start with a letter or digit
  parse_error("a:b=1");  // ':' is not allowed in a key
  parse_error("tag:a:b=1");
  parse_error(std::string(64, 'k') + "=1");
  parse_error("k=" + std::string(129, 'v'));
  parse_error("env=..");
  parse_error("zone in (a, ..)");
}

TEST(Selector, OverlongInputIsRefused) {
  std::string big;
  while (big.size() <= 1024)
    big += "env=production ";
  const auto m = parse_error(big);
  EXPECT_NE(m.find("too long"), std::string::npos);
}

// Found by fuzz/fuzz_selector (corpus/selector/regression-canonical-too-long): a selector that
// fits the limit as typed but not in its canonical form ("notin(x)" -> "notin (x)") was accepted,
// and its stored canonical text could not be parsed again. Every accepted selector's canonical
// text parses.
TEST(Selector, AcceptedSelectorsHaveACanonicalTextThatFits) {
  std::string packed;
  while (packed.size() + 12 <= 1024)
    packed += "k notin(v) ";
  ASSERT_LE(packed.size(), 1024u);
  const auto m = parse_error(packed);
  EXPECT_NE(m.find("canonical form"), std::string::npos) << m;
  std::string fits;
  for (int i = 0; i < 40; ++i)
    fits += "k notin(v) ";
  const auto sel = parse(fits);
  EXPECT_LE(sel.to_string().size(), 1024u);
  EXPECT_EQ(parse(sel.to_string()).to_string(), sel.to_string());
}

TEST(Selector, ToStringIsCanonicalAndParsesBackToTheSameSelector) {
  for (const char* text :
       {"env=production", "env==production", "role!=worker", "zone in (a, b)", "zone notin(c)",
        "canary", "!canary", "tag:team=payments", "tag:env=weird", "!tag:role", "tag:zone",
        "team!=x,zone in (a),env=production canary", "name in (api-1,worker-1)", "canary in (a)",
        "a b c", "in", "notin", "in in (x)",
        // Tags named like the keywords must not read as operators after a bare tag.
        "canary,in", "!canary,notin", "canary,in=1", "canary,tag:notin in (x)"}) {
    const auto sel = parse(text);
    const auto canonical = sel.to_string();
    const auto again = parse(canonical);
    EXPECT_EQ(again.to_string(), canonical) << text;
    ASSERT_EQ(again.terms().size(), sel.terms().size()) << text << " -> " << canonical;
    for (size_t i = 0; i < sel.terms().size(); ++i) {
      EXPECT_EQ(again.terms()[i].key, sel.terms()[i].key) << text;
      EXPECT_EQ(again.terms()[i].is_tag, sel.terms()[i].is_tag) << text;
      EXPECT_EQ(again.terms()[i].op, sel.terms()[i].op) << text;
      EXPECT_EQ(again.terms()[i].values, sel.terms()[i].values) << text;
    }
    for (const Node* n : {&kApi1, &kApi2, &kWorker, &kStaging}) {
      EXPECT_EQ(sel.matches(*n), again.matches(*n)) << text << " on " << n->name;
    }
  }
  EXPECT_EQ(parse("env==production  role=api").to_string(), "env=production role=api");
  EXPECT_EQ(parse("zone in (a,b)").to_string(), "zone in (a,b)");
  EXPECT_EQ(parse("tag:team=x").to_string(), "team=x");
  EXPECT_EQ(parse("tag:env=x").to_string(), "tag:env=x");
}

TEST(Selector, BuiltByHand) {
  Selector sel;
  sel.add(eq_term("env", "production")).add(eq_term("canary", "true"));
  EXPECT_FALSE(sel.empty());
  EXPECT_FALSE(sel.terms()[0].is_tag);
  EXPECT_TRUE(sel.terms()[1].is_tag);
  EXPECT_EQ(sel.to_string(), "env=production canary=true");
  EXPECT_TRUE(sel.matches(kApi1));
  EXPECT_FALSE(sel.matches(kApi2));
}

TEST(NodeState, Names) {
  EXPECT_EQ(node_state_name(NodeState::alive), "alive");
  EXPECT_EQ(node_state_name(NodeState::lost), "lost");
  EXPECT_TRUE(kApi2.has_role("worker"));
  EXPECT_FALSE(kApi2.has_role("db"));
}

}  // namespace
}  // namespace slipway::inventory
