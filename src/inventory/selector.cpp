#include "inventory/selector.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/names.h"
#include "common/strings.h"

namespace slipway::inventory {

std::string_view node_state_name(NodeState s) {
  switch (s) {
    case NodeState::alive:
      return "alive";
    case NodeState::lost:
      return "lost";
    case NodeState::revoked:
      return "revoked";
  }
  return "lost";
}

bool Node::has_role(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == ':' || c == '@' || c == '+';
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<Selector> run() {
    Selector sel;
    skip_sep();
    while (pos_ < s_.size()) {
      auto t = term();
      if (!t) return t.error();
      sel.add(std::move(*t));
      const size_t before = pos_;
      skip_sep();
      if (pos_ == before && pos_ < s_.size()) return fail("expected a space or ',' between terms");
    }
    return sel;
  }

 private:
  Error fail(std::string_view why) const {
    return err(Errc::invalid_argument,
               fmt::format("selector '{}': {} at position {}", s_.substr(0, 200), why, pos_ + 1));
  }
  void skip_ws() {
    while (pos_ < s_.size() && s_[pos_] == ' ')
      ++pos_;
  }
  void skip_sep() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == ','))
      ++pos_;
  }
  std::string word() {
    const size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_]))
      ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }
  bool keyword(std::string_view kw) {
    if (s_.substr(pos_, kw.size()) != kw) return false;
    const size_t after = pos_ + kw.size();
    if (after < s_.size() && is_name_char(s_[after])) return false;
    pos_ = after;
    return true;
  }

  Result<Selector::Term> term() {
    Selector::Term t;
    bool negated = false;
    if (s_[pos_] == '!') {
      negated = true;
      ++pos_;
    }
    std::string key = word();
    if (key.empty()) return fail("expected a key (env, role, zone, name or a tag)");
    if (key.rfind("tag:", 0) == 0) {
      key = key.substr(4);
      t.is_tag = true;
    } else {
      t.is_tag = key != "env" && key != "role" && key != "zone" && key != "name";
    }
    if (auto st = validate_name(NameKind::tag_key, key); !st) return fail(st.error().message);
    t.key = key;
    if (negated) {
      t.op = Selector::Op::not_exists;
      if (!t.is_tag) return fail("'!' applies to tags only");
      return t;
    }
    const size_t after_key = pos_;
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] == ',') {
      t.op = Selector::Op::exists;
      if (!t.is_tag) return fail(fmt::format("'{}' needs a value", key));
      return t;
    }
    if (s_.substr(pos_, 2) == "!=") {
      t.op = Selector::Op::ne;
      pos_ += 2;
    } else if (s_.substr(pos_, 2) == "==") {
      t.op = Selector::Op::eq;
      pos_ += 2;
    } else if (s_[pos_] == '=') {
      t.op = Selector::Op::eq;
      ++pos_;
    } else if (keyword("notin")) {
      t.op = Selector::Op::notin;
    } else if (keyword("in")) {
      t.op = Selector::Op::in;
    } else {
      // A bare tag key followed by another term: leave the space for the caller, which
      // requires a separator between terms.
      if (t.is_tag && pos_ > after_key) {
        t.op = Selector::Op::exists;
        pos_ = after_key;
        return t;
      }
      return fail("expected '=', '!=', 'in' or 'notin'");
    }
    if (t.op == Selector::Op::in || t.op == Selector::Op::notin) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '(') return fail("expected '('");
      ++pos_;
      for (;;) {
        skip_ws();
        std::string v = word();
        if (v.empty()) return fail("expected a value");
        t.values.push_back(std::move(v));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ')') {
          ++pos_;
          break;
        }
        return fail("expected ',' or ')'");
      }
    } else {
      skip_ws();
      std::string v = word();
      if (v.empty()) return fail("expected a value");
      t.values.push_back(std::move(v));
    }
    for (const auto& v : t.values) {
      if (auto st = validate_name(NameKind::tag_value, v); !st) return fail(st.error().message);
    }
    return t;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool contains(const std::vector<std::string>& vs, std::string_view v) {
  return std::find(vs.begin(), vs.end(), v) != vs.end();
}

}  // namespace

Result<Selector> Selector::parse(std::string_view text) {
  constexpr size_t kMaxLength = 1024;
  if (text.size() > kMaxLength) {
    return err(Errc::invalid_argument, "selector is too long (over 1024)");
  }
  auto s = Parser(trim(text)).run();
  // The canonical text is what gets stored and parsed again (desired state, load-balancer hooks),
  // so it must fit as well: "a notin(b)" is one byte longer as "a notin (b)". Found by
  // fuzz/fuzz_selector (corpus/selector/regression-canonical-too-long).
  if (s && s->to_string().size() > kMaxLength) {
    return err(Errc::invalid_argument, "selector is too long (over 1024 in its canonical form)");
  }
  return s;
}

Selector& Selector::add(Term t) {
  terms_.push_back(std::move(t));
  return *this;
}

Selector::Term eq_term(std::string key, std::string value) {
  Selector::Term t;
  t.is_tag = key != "env" && key != "role" && key != "zone" && key != "name";
  t.key = std::move(key);
  t.op = Selector::Op::eq;
  t.values.push_back(std::move(value));
  return t;
}

bool Selector::matches(const Node& n) const {
  for (const auto& t : terms_) {
    // The values this node has for the key (roles may be several).
    std::vector<std::string> have;
    bool present = true;
    if (t.is_tag) {
      auto it = n.tags.find(t.key);
      present = it != n.tags.end();
      if (present) have.push_back(it->second);
    } else if (t.key == "env") {
      have.push_back(n.env);
    } else if (t.key == "zone") {
      have.push_back(n.zone);
    } else if (t.key == "name") {
      have.push_back(n.name);
    } else {
      have = n.roles;
    }
    auto any_in = [&](const std::vector<std::string>& values) {
      return std::any_of(have.begin(), have.end(),
                         [&](const auto& h) { return contains(values, h); });
    };
    bool ok = true;
    switch (t.op) {
      case Op::eq:
      case Op::in:
        ok = present && any_in(t.values);
        break;
      case Op::ne:
      case Op::notin:
        ok = !any_in(t.values);
        break;
      case Op::exists:
        ok = present;
        break;
      case Op::not_exists:
        ok = !present;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

std::string Selector::to_string() const {
  std::vector<std::string> parts;
  for (const auto& t : terms_) {
    const bool builtin = t.key == "env" || t.key == "role" || t.key == "zone" || t.key == "name";
    // A tag named like an operator keyword would read as one after a bare tag ("canary in").
    const bool keyword = t.key == "in" || t.key == "notin";
    const std::string key = (t.is_tag && (builtin || keyword) ? "tag:" : "") + t.key;
    switch (t.op) {
      case Op::eq:
        parts.push_back(key + "=" + t.values.at(0));
        break;
      case Op::ne:
        parts.push_back(key + "!=" + t.values.at(0));
        break;
      case Op::in:
        parts.push_back(key + " in (" + join(t.values, ",") + ")");
        break;
      case Op::notin:
        parts.push_back(key + " notin (" + join(t.values, ",") + ")");
        break;
      case Op::exists:
        parts.push_back(key);
        break;
      case Op::not_exists:
        parts.push_back("!" + key);
        break;
    }
  }
  return join(parts, " ");
}

}  // namespace slipway::inventory
