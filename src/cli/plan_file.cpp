#include "cli/plan_file.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/duration.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/strategy.h"
#include "inventory/selector.h"

namespace slipway::cli {

namespace {

// How each key's value is read and checked.
enum class Kind {
  name,
  version,
  text,
  selector,
  strategy,
  canary,
  size,
  duration,
  flag,
  count,
  list
};

struct Key {
  std::string_view key;
  Kind kind;
  NameKind name_kind = NameKind::app;
};

constexpr Key kTopKeys[] = {{"app", Kind::name, NameKind::app},
                            {"version", Kind::version},
                            {"env", Kind::name, NameKind::env},
                            {"force", Kind::flag},
                            {"stages", Kind::list}};

constexpr Key kStageKeys[] = {{"name", Kind::name, NameKind::stage},
                              {"app", Kind::name, NameKind::app},
                              {"version", Kind::version},
                              {"role", Kind::name, NameKind::role},
                              {"zone", Kind::name, NameKind::zone},
                              {"selector", Kind::selector},
                              {"strategy", Kind::strategy},
                              {"canary", Kind::canary},
                              {"pause", Kind::flag},
                              {"canary_wait", Kind::duration},
                              {"zones", Kind::list, NameKind::zone},
                              {"batch", Kind::size},
                              {"max_failures", Kind::count},
                              {"max_unavailable", Kind::size},
                              {"healthy_deadline", Kind::duration},
                              {"progress_deadline", Kind::duration},
                              {"wait", Kind::duration},
                              {"approve", Kind::flag},
                              {"force", Kind::flag}};

template <size_t N>
const Key* find_key(std::string_view key, const Key (&keys)[N]) {
  for (const auto& k : keys) {
    if (k.key == key) return &k;
  }
  return nullptr;
}

template <size_t N>
std::string list_of(const Key (&keys)[N]) {
  std::string out;
  for (const auto& k : keys)
    out += (out.empty() ? "" : ", ") + std::string(k.key);
  return out;
}

struct FileError {
  int line;
  std::string reason;
};

int line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() || m.line < 0 ? 1 : m.line + 1;
}

[[noreturn]] void fail(const YAML::Node& at, std::string reason) {
  throw FileError{line_of(at), std::move(reason)};
}

std::string scalar(const YAML::Node& key, const YAML::Node& value, const std::string& what) {
  if (!value.IsDefined() || value.IsNull()) fail(key, fmt::format("{}: has no value", what));
  if (!value.IsScalar()) {
    fail(key, fmt::format("{}: must be a single value, not a {}", what,
                          value.IsMap() ? "mapping" : "list"));
  }
  return std::string(trim(value.Scalar()));
}

// One key's value as JSON, checked.
json::value value_of(const Key& k, const YAML::Node& key, const YAML::Node& value,
                     const std::string& what) {
  auto check = [&](const Status& st) {
    if (!st) fail(key, fmt::format("{}: {}", what, st.error().message));
  };
  switch (k.kind) {
    case Kind::list: {
      // zones: [a, b] or zones: a,b
      if (value.IsScalar()) {
        json::array out;
        for (const auto& z : split(scalar(key, value, what), ',')) {
          check(validate_name(k.name_kind, trim(z)));
          out.emplace_back(std::string(trim(z)));
        }
        return out;
      }
      if (!value.IsSequence()) fail(key, fmt::format("{}: must be a list", what));
      json::array out;
      for (const auto& item : value) {
        const std::string z = scalar(key, item, what);
        check(validate_name(k.name_kind, z));
        out.emplace_back(z);
      }
      return out;
    }
    case Kind::flag: {
      const std::string text = scalar(key, value, what);
      if (text == "true") return true;
      if (text == "false") return false;
      fail(key, fmt::format("{}: must be true or false, not '{}'", what, excerpt(text)));
    }
    case Kind::count: {
      const std::string text = scalar(key, value, what);
      int64_t n = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n < 0 ||
          n > 1'000'000) {
        fail(key,
             fmt::format("{}: '{}' is not a number of nodes (0 or more)", what, excerpt(text)));
      }
      return n;
    }
    default:
      break;
  }
  const std::string text = scalar(key, value, what);
  switch (k.kind) {
    case Kind::name:
      check(validate_name(k.name_kind, text));
      break;
    case Kind::version:
      check(validate_name(NameKind::version, text));
      break;
    case Kind::selector:
      if (auto sel = inventory::Selector::parse(text); !sel) check(sel.error());
      break;
    case Kind::strategy:
      if (auto s = engine::parse_strategy(text); !s) check(s.error());
      break;
    case Kind::canary:
      if (auto c = engine::CanarySpec::parse(text); !c) check(c.error());
      break;
    case Kind::size:
      if (auto b = engine::BatchSize::parse(text); !b) {
        fail(key, fmt::format("{}: '{}' is not valid: give a number of nodes (2) or a percentage "
                              "of them (25%)",
                              what, excerpt(text)));
      }
      break;
    case Kind::duration: {
      auto d = parse_duration(text);
      if (!d) check(d.error());
      if (d->count() <= 0) fail(key, fmt::format("{}: must be longer than zero", what));
      break;
    }
    default:
      break;
  }
  return json::value(text);
}

// A mapping's keys, each known and given once, as JSON; `keys` says what each holds.
template <size_t N>
json::object mapping(const YAML::Node& node, const Key (&keys)[N], const std::string& where) {
  json::object out;
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) fail(kv.first, fmt::format("{}keys must be plain words", where));
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second)
      fail(kv.first, fmt::format("{}'{}' appears twice", where, excerpt(key)));
    const Key* k = find_key(key, keys);
    if (!k) {
      fail(kv.first,
           fmt::format("{}unknown key '{}' (known keys: {})", where, excerpt(key), list_of(keys)));
    }
    if (key == "stages") continue;  // read by the caller
    out[key] = value_of(*k, kv.first, kv.second, where + key);
  }
  return out;
}

json::object build(const YAML::Node& root) {
  if (!root.IsMap()) {
    fail(root, "the top level must be a mapping of keys (app:, version:, env:, stages:)");
  }
  json::object plan = mapping(root, kTopKeys, "");
  const YAML::Node stages = root["stages"];
  if (!stages.IsDefined() || stages.IsNull()) {
    fail(root, "names no stages: give stages: with a list of at least one");
  }
  if (!stages.IsSequence() || stages.size() == 0) {
    fail(stages, "stages: must be a list of at least one stage (- name: ...)");
  }
  if (stages.size() > kMaxPlanStages) {
    fail(stages, fmt::format("stages: at most {} ({} given)", kMaxPlanStages, stages.size()));
  }
  const bool default_app = plan.contains("app");
  json::array out;
  std::set<std::string> names;
  for (size_t i = 0; i < stages.size(); ++i) {
    const YAML::Node s = stages[i];
    const std::string where = fmt::format("stage {}: ", i + 1);
    if (!s.IsMap()) fail(s, where + "must be a mapping (name:, role:, strategy:, ...)");
    json::object stage = mapping(s, kStageKeys, where);
    const auto* name = stage.if_contains("name");
    if (!name) fail(s, where + "has no name: give each stage one (name: api)");
    const std::string n(name->as_string());
    if (!names.insert(n).second) {
      fail(s["name"], fmt::format("{}the name {} is taken by an earlier stage", where, n));
    }
    const std::string named = fmt::format("stage {} ({}): ", i + 1, n);
    if (!default_app && !stage.contains("app")) {
      fail(s, named + "names no app: give app: for the stage or for the whole plan");
    }
    const bool approve = stage.contains("approve") && stage.at("approve").as_bool();
    if (approve && stage.contains("wait")) {
      fail(s["wait"], named +
                          "give either wait (hold for a while) or approve (hold until `slipway "
                          "promote`), not both");
    }
    if (i + 1 == stages.size() && (approve || stage.contains("wait"))) {
      fail(approve ? s["approve"] : s["wait"],
           named +
               "is the last stage: wait and approve hold the plan before the next stage, "
               "and none follows");
    }
    out.push_back(std::move(stage));
  }
  plan["stages"] = std::move(out);
  return plan;
}

}  // namespace

Result<json::object> parse_plan_file(std::string_view yaml_text, std::string_view name) {
  const auto error = [&](int line, const std::string& reason) {
    return err(Errc::invalid_argument, fmt::format("{} line {}: {}", name, line, reason));
  };
  // yaml-cpp reports problems by throwing; nothing of that leaves this function.
  try {
    const std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml_text));
    if (docs.empty()) return error(1, "is empty; it must name env: and stages:");
    if (docs.size() > 1) return error(line_of(docs[1]), "holds more than one YAML document");
    return build(docs[0]);
  } catch (const FileError& e) {
    return error(e.line, e.reason);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() || e.mark.line < 0 ? 1 : e.mark.line + 1;
    return error(line, fmt::format("not valid YAML: {}", e.msg));
  } catch (const std::exception& e) {
    return error(1, fmt::format("cannot be read: {}", e.what()));
  }
}

Result<json::object> load_plan_file(const std::filesystem::path& file) {
  auto text = read_file(file, 1 << 20);
  if (!text) return text.error();
  return parse_plan_file(*text, file.filename().string());
}

}  // namespace slipway::cli
