#include "artifacts/version.h"

#include <algorithm>
#include <optional>

namespace slipway::artifacts {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char c) {
  return is_digit(c) || is_alpha(c);
}
char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

int sign(int v) {
  return (v > 0) - (v < 0);
}

// Compares two runs of decimal digits by value, whatever their length (versions may carry
// numbers that overflow 64 bits, e.g. dates with times). An empty run counts as zero.
int compare_numbers(std::string_view a, std::string_view b) {
  while (!a.empty() && a.front() == '0')
    a.remove_prefix(1);
  while (!b.empty() && b.front() == '0')
    b.remove_prefix(1);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return sign(a.compare(b));
}

std::vector<std::string_view> split_dots(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// SemVer 2.0.0

struct SemVer {
  std::string_view major, minor, patch;
  std::vector<std::string_view> pre;  // empty: a release
};

bool semver_numeric(std::string_view s) {
  return all_digits(s) && (s.size() == 1 || s.front() != '0');
}

bool semver_ident(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-'; });
}

std::optional<SemVer> parse_semver(std::string_view v) {
  SemVer out;
  std::string_view rest = v;
  const size_t plus = rest.find('+');
  if (plus != std::string_view::npos) {
    // Build metadata: identifiers of [0-9A-Za-z-], leading zeros allowed; ignored for precedence.
    for (auto id : split_dots(rest.substr(plus + 1))) {
      if (!semver_ident(id)) return std::nullopt;
    }
    rest = rest.substr(0, plus);
  }
  const size_t dash = rest.find('-');
  if (dash != std::string_view::npos) {
    for (auto id : split_dots(rest.substr(dash + 1))) {
      if (!semver_ident(id)) return std::nullopt;
      if (all_digits(id) && !semver_numeric(id)) return std::nullopt;  // no leading zeros
      out.pre.push_back(id);
    }
    rest = rest.substr(0, dash);
  }
  const auto core = split_dots(rest);
  if (core.size() != 3) return std::nullopt;
  for (auto n : core) {
    if (!semver_numeric(n)) return std::nullopt;
  }
  out.major = core[0];
  out.minor = core[1];
  out.patch = core[2];
  return out;
}

int compare_semver(const SemVer& a, const SemVer& b) {
  if (int c = compare_numbers(a.major, b.major)) return c;
  if (int c = compare_numbers(a.minor, b.minor)) return c;
  if (int c = compare_numbers(a.patch, b.patch)) return c;
  // A pre-release has lower precedence than the release itself.
  if (a.pre.empty() || b.pre.empty()) {
    return a.pre.empty() == b.pre.empty() ? 0 : (a.pre.empty() ? 1 : -1);
  }
  const size_t n = std::min(a.pre.size(), b.pre.size());
  for (size_t i = 0; i < n; ++i) {
    const bool na = all_digits(a.pre[i]);
    const bool nb = all_digits(b.pre[i]);
    int c = 0;
    if (na && nb) {
      c = compare_numbers(a.pre[i], b.pre[i]);
    } else if (na != nb) {
      c = na ? -1 : 1;  // numeric identifiers have lower precedence than alphanumeric ones
    } else {
      c = sign(a.pre[i].compare(b.pre[i]));  // ASCII order
    }
    if (c) return c;
  }
  return a.pre.size() == b.pre.size() ? 0 : (a.pre.size() < b.pre.size() ? -1 : 1);
}

// ---------------------------------------------------------------------------------------------
// PEP 440
//
// A hand-written equivalent of the regular expression in PEP 440's appendix (and in `packaging`),
// applied to the lower-cased text:
//   v? (N!)? N(.N)* ([-_.]? (a|b|c|rc|alpha|beta|pre|preview) [-_.]? N?)?
//   (-N | [-_.]? (post|rev|r) [-_.]? N?)? ([-_.]? dev [-_.]? N?)? (+ [a-z0-9]+([-_.][a-z0-9]+)*)?
// Each optional part is tried greedily: a trailing separator taken by one part never prevents a
// match that the next part could have made, because every later part accepts an optional
// separator of its own.

struct Pep440 {
  std::string epoch;  // digits; empty means 0
  std::vector<std::string> release;
  int pre_kind = -1;  // -1 none, 0 a, 1 b, 2 rc
  std::string pre_num;
  bool has_post = false;
  std::string post_num;
  bool has_dev = false;
  std::string dev_num;
  std::vector<std::string> local;  // lower-cased segments
};

class Pep440Parser {
 public:
  explicit Pep440Parser(std::string text) : s_(std::move(text)) {}

  std::optional<Pep440> parse() {
    Pep440 out;
    if (peek() == 'v') ++i_;
    std::string first = digits();
    if (first.empty()) return std::nullopt;
    if (peek() == '!') {
      ++i_;
      out.epoch = std::move(first);
      first = digits();
      if (first.empty()) return std::nullopt;
    }
    out.release.push_back(std::move(first));
    while (peek() == '.' && is_digit(peek(1))) {
      ++i_;
      out.release.push_back(digits());
    }
    pre(out);
    post(out);
    dev(out);
    if (peek() == '+') {
      ++i_;
      if (!local(out)) return std::nullopt;
    }
    if (i_ != s_.size()) return std::nullopt;
    return out;
  }

 private:
  char peek(size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }
  static bool is_sep(char c) { return c == '-' || c == '_' || c == '.'; }
  void skip_sep() {
    if (is_sep(peek())) ++i_;
  }
  std::string digits() {
    const size_t start = i_;
    while (is_digit(peek()))
      ++i_;
    return s_.substr(start, i_ - start);
  }
  // Consumes `word` at the cursor when it is there.
  bool word(std::string_view w) {
    if (std::string_view(s_).substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  void pre(Pep440& out) {
    const size_t save = i_;
    skip_sep();
    // Longer spellings first, so that "preview" is not read as "pre" followed by junk.
    static constexpr std::pair<std::string_view, int> kLabels[] = {
        {"preview", 2}, {"alpha", 0}, {"beta", 1}, {"pre", 2},
        {"rc", 2},      {"a", 0},     {"b", 1},    {"c", 2}};
    for (const auto& [label, kind] : kLabels) {
      if (word(label)) {
        out.pre_kind = kind;
        skip_sep();
        out.pre_num = digits();  // implicit 0 when absent
        return;
      }
    }
    i_ = save;
  }

  void post(Pep440& out) {
    const size_t save = i_;
    if (peek() == '-' && is_digit(peek(1))) {  // the implicit form: 1.0-1 == 1.0.post1
      ++i_;
      out.has_post = true;
      out.post_num = digits();
      return;
    }
    skip_sep();
    if (word("post") || word("rev") || word("r")) {
      out.has_post = true;
      skip_sep();
      out.post_num = digits();
      return;
    }
    i_ = save;
  }

  void dev(Pep440& out) {
    const size_t save = i_;
    skip_sep();
    if (word("dev")) {
      out.has_dev = true;
      skip_sep();
      out.dev_num = digits();
      return;
    }
    i_ = save;
  }

  bool local(Pep440& out) {
    for (;;) {
      const size_t start = i_;
      while (is_alnum(peek()))
        ++i_;
      if (i_ == start) return false;
      out.local.push_back(s_.substr(start, i_ - start));
      if (!is_sep(peek())) return true;
      ++i_;
    }
  }

  std::string s_;
  size_t i_ = 0;
};

std::optional<Pep440> parse_pep440(std::string_view v) {
  std::string text(v);
  for (char& c : text)
    c = lower(c);
  return Pep440Parser(std::move(text)).parse();
}

int compare_pep440(const Pep440& a, const Pep440& b) {
  if (int c = compare_numbers(a.epoch, b.epoch)) return c;
  // Release: missing components count as zero, so trailing zeros do not matter (1.0 == 1.0.0).
  const size_t n = std::max(a.release.size(), b.release.size());
  for (size_t i = 0; i < n; ++i) {
    const std::string_view x = i < a.release.size() ? std::string_view(a.release[i]) : "";
    const std::string_view y = i < b.release.size() ? std::string_view(b.release[i]) : "";
    if (int c = compare_numbers(x, y)) return c;
  }
  // Pre-release phase: a bare dev release (1.0.dev1) sorts before every pre-release of the same
  // release; a version without a pre-release sorts after them all.
  auto pre_rank = [](const Pep440& v) {
    if (v.pre_kind < 0 && !v.has_post && v.has_dev) return 0;
    if (v.pre_kind < 0) return 2;
    return 1;
  };
  if (int c = pre_rank(a) - pre_rank(b)) return sign(c);
  if (a.pre_kind >= 0) {
    if (int c = a.pre_kind - b.pre_kind) return sign(c);
    if (int c = compare_numbers(a.pre_num, b.pre_num)) return c;
  }
  // Post-release: none sorts first.
  if (a.has_post != b.has_post) return a.has_post ? 1 : -1;
  if (a.has_post) {
    if (int c = compare_numbers(a.post_num, b.post_num)) return c;
  }
  // Dev release: none sorts last.
  if (a.has_dev != b.has_dev) return a.has_dev ? -1 : 1;
  if (a.has_dev) {
    if (int c = compare_numbers(a.dev_num, b.dev_num)) return c;
  }
  // Local version: none sorts first; segments compare one by one, numeric segments above
  // alphanumeric ones; when one is a prefix of the other, the longer one is greater.
  const size_t m = std::min(a.local.size(), b.local.size());
  for (size_t i = 0; i < m; ++i) {
    const bool na = all_digits(a.local[i]);
    const bool nb = all_digits(b.local[i]);
    int c = 0;
    if (na && nb) {
      c = compare_numbers(a.local[i], b.local[i]);
    } else if (na != nb) {
      c = na ? 1 : -1;
    } else {
      c = sign(a.local[i].compare(b.local[i]));
    }
    if (c) return c;
  }
  return a.local.size() == b.local.size() ? 0 : (a.local.size() < b.local.size() ? -1 : 1);
}

// ---------------------------------------------------------------------------------------------
// Natural order, for everything else: the text is cut into runs of digits and runs of other
// characters; digit runs compare by value and sort before other runs; other runs compare
// bytewise; a sequence that is a prefix of another sorts first. This is a total preorder.

int compare_natural(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = is_digit(a[i]);
    const bool db = is_digit(b[j]);
    size_t ie = i, je = j;
    while (ie < a.size() && is_digit(a[ie]) == da)
      ++ie;
    while (je < b.size() && is_digit(b[je]) == db)
      ++je;
    const auto ta = a.substr(i, ie - i);
    const auto tb = b.substr(j, je - j);
    int c = 0;
    if (da && db) {
      c = compare_numbers(ta, tb);
    } else if (da != db) {
      c = da ? -1 : 1;
    } else {
      c = sign(ta.compare(tb));
    }
    if (c) return c;
    i = ie;
    j = je;
  }
  const bool a_done = i >= a.size();
  const bool b_done = j >= b.size();
  return a_done == b_done ? 0 : (a_done ? -1 : 1);
}

}  // namespace

bool is_semver(std::string_view v) {
  return parse_semver(v).has_value();
}

bool is_pep440(std::string_view v) {
  return parse_pep440(v).has_value();
}

int compare_versions(std::string_view a, std::string_view b) {
  const auto sa = parse_semver(a);
  const auto sb = parse_semver(b);
  if (sa && sb) return compare_semver(*sa, *sb);
  const auto pa = parse_pep440(a);
  const auto pb = parse_pep440(b);
  if (pa && pb) return compare_pep440(*pa, *pb);
  return compare_natural(a, b);
}

std::vector<size_t> version_order(const std::vector<std::string>& versions) {
  // compare_versions() picks its scheme per pair, which is not transitive over a set that mixes
  // schemes (SemVer says 1.0.0-1 < 1.0.0, PEP 440 says 1.0.0-1 == 1.0.0.post1 > 1.0 == 1.0.0),
  // and std::sort needs a strict weak order. So the whole set is sorted under one scheme: SemVer
  // when every element is SemVer, else PEP 440 when every element is PEP 440, else natural order.
  // For a set in one scheme this is exactly compare_versions(). Ties fall back to the text.
  enum class Scheme { semver, pep440, natural };
  Scheme scheme = Scheme::semver;
  if (!std::all_of(versions.begin(), versions.end(), [](const auto& v) { return is_semver(v); })) {
    scheme =
        std::all_of(versions.begin(), versions.end(), [](const auto& v) { return is_pep440(v); })
            ? Scheme::pep440
            : Scheme::natural;
  }
  // Parsed once; the SemVer views point into `versions`.
  std::vector<std::optional<SemVer>> semver(versions.size());
  std::vector<std::optional<Pep440>> pep(versions.size());
  for (size_t i = 0; i < versions.size(); ++i) {
    if (scheme == Scheme::semver) semver[i] = parse_semver(versions[i]);
    if (scheme == Scheme::pep440) pep[i] = parse_pep440(versions[i]);
  }
  std::vector<size_t> order(versions.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    int c = 0;
    switch (scheme) {
      case Scheme::semver:
        c = compare_semver(*semver[x], *semver[y]);
        break;
      case Scheme::pep440:
        c = compare_pep440(*pep[x], *pep[y]);
        break;
      case Scheme::natural:
        c = compare_natural(versions[x], versions[y]);
        break;
    }
    if (c) return c < 0;
    return versions[x] < versions[y];
  });
  return order;
}

void sort_versions(std::vector<std::string>& versions) {
  const std::vector<size_t> order = version_order(versions);
  std::vector<std::string> sorted;
  sorted.reserve(versions.size());
  for (size_t i : order)
    sorted.push_back(std::move(versions[i]));
  versions = std::move(sorted);
}

}  // namespace slipway::artifacts
