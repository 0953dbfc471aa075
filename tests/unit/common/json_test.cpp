// Strict JSON decoding (common/json.h): parse_json and JsonReader.
#include "common/json.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway {
namespace {

json::value parse(std::string_view text) {
  auto v = parse_json(text, "test input");
  EXPECT_TRUE(v) << text << ": " << (v ? "" : v.error().message);
  return v ? *v : json::value();
}

std::string parse_error(std::string_view text) {
  auto v = parse_json(text, "request body");
  EXPECT_FALSE(v) << text;
  if (v) return {};
  EXPECT_EQ(v.error().code, Errc::invalid_argument);
  EXPECT_NE(v.error().message.find("request body"), std::string::npos) << v.error().message;
  return v.error().message;
}

std::string nested(int depth) {
  return std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']');
}

TEST(ParseJson, ValidDocuments) {
  EXPECT_TRUE(parse("{}").is_object());
  EXPECT_TRUE(parse("[]").is_array());
  EXPECT_EQ(parse(R"({"a": [1, "x", true, null]})").at("a").as_array().size(), 4u);
  EXPECT_TRUE(parse("  {\"a\":1}\n").is_object());
  EXPECT_EQ(parse("\"caf\xc3\xa9\"").as_string(), "caf\xc3\xa9");
}

TEST(ParseJson, MalformedInput) {
  parse_error("");
  parse_error("   ");
  parse_error("{");
  parse_error("}");
  parse_error("{\"a\":}");
  parse_error("{\"a\" 1}");
  parse_error("{'a': 1}");
  parse_error("{\"a\": 1,}");
  parse_error("[1, 2");
  parse_error("nul");
  parse_error("{} {}");
  parse_error("{} x");
  parse_error("\"unterminated");
  parse_error("{\"a\": \"\\q\"}");
  parse_error(std::string_view("{\"a\": \"x\0y\"}", 12));
  parse_error("\"\xff\xfe\"");  // not UTF-8
  parse_error("{\"a\": 01}");
}

TEST(ParseJson, DepthLimit) {
  EXPECT_TRUE(parse_json(nested(32), "x"));
  const auto m = parse_error(nested(33));
  EXPECT_NE(m.find("not valid JSON"), std::string::npos);
  std::string objects;
  for (int i = 0; i < 40; ++i)
    objects += "{\"a\":";
  objects += "1" + std::string(40, '}');
  parse_error(objects);
  // Hostile depth is refused without exhausting the stack.
  parse_error(nested(1'000'000));
  parse_error(std::string(1'000'000, '['));
}

TEST(ParseJson, HugeStringsParse) {
  const std::string big(4 << 20, 'x');
  auto v = parse_json("{\"a\":\"" + big + "\"}", "x");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->at("a").as_string().size(), big.size());
}

TEST(JsonReader, ReadsEveryKindOfField) {
  auto v = parse(R"({"s": "text", "i": -42, "u": 9007199254740993, "b": true,
                    "l": ["a", "b"], "m": {"k": "v"}, "o": {"x": 1}, "arr": [1], "any": 3.5})");
  JsonReader r(v, "thing");
  EXPECT_EQ(r.str("s"), "text");
  EXPECT_EQ(r.i64("i"), -42);
  EXPECT_EQ(r.i64("u"), 9007199254740993LL);
  EXPECT_TRUE(r.boolean_or("b", false));
  EXPECT_EQ(r.str_list("l"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.str_map("m"), (std::map<std::string, std::string>{{"k", "v"}}));
  ASSERT_NE(r.opt_object("o"), nullptr);
  EXPECT_EQ(r.opt_object("o")->size(), 1u);
  ASSERT_NE(r.opt_array("arr"), nullptr);
  ASSERT_NE(r.opt_value("any"), nullptr);
  EXPECT_TRUE(r.opt_value("any")->is_double());
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.finish());
}

TEST(JsonReader, OptionalFieldsAndFallbacks) {
  auto v = parse(R"({"n": null})");
  JsonReader r(v, "thing");
  EXPECT_EQ(r.opt_str("missing"), std::nullopt);
  EXPECT_EQ(r.opt_str("n"), std::nullopt);  // null reads as absent
  EXPECT_EQ(r.str_or("missing", "dflt"), "dflt");
  EXPECT_EQ(r.opt_i64("missing"), std::nullopt);
  EXPECT_EQ(r.i64_or("missing", 7), 7);
  EXPECT_FALSE(r.boolean_or("missing", false));
  EXPECT_TRUE(r.boolean_or("missing", true));
  EXPECT_TRUE(r.str_list("missing").empty());
  EXPECT_TRUE(r.str_map("missing").empty());
  EXPECT_EQ(r.opt_object("missing"), nullptr);
  EXPECT_EQ(r.opt_array("missing"), nullptr);
  EXPECT_EQ(r.opt_value("missing"), nullptr);
  EXPECT_TRUE(r.finish());
}

TEST(JsonReader, MissingRequiredFieldsAreNamed) {
  auto v = parse(R"({"other": 1, "nul": null})");
  {
    JsonReader r(v, "deploy request");
    r.allow("other");
    EXPECT_EQ(r.str("app"), "");
    EXPECT_FALSE(r.ok());
    auto st = r.finish();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, Errc::invalid_argument);
    EXPECT_EQ(st.error().message, "deploy request: field 'app' is required");
  }
  {
    JsonReader r(v, "deploy request");
    r.allow("other");
    EXPECT_EQ(r.i64("limit"), 0);
    auto st = r.finish();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message, "deploy request: field 'limit' is required");
  }
  {
    JsonReader r(v, "deploy request");
    r.allow("other");
    r.str("nul");  // null does not satisfy a required field
    auto st = r.finish();
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("'nul' is required"), std::string::npos);
  }
}

TEST(JsonReader, WrongTypesAreNamed) {
  struct Case {
    const char* json;
    std::function<void(JsonReader&)> read;
    const char* expected;
  };
  const Case cases[] = {
      {R"({"f": 1})", [](JsonReader& r) { r.str("f"); }, "a string"},
      {R"({"f": 1})", [](JsonReader& r) { r.opt_str("f"); }, "a string"},
      {R"({"f": [1]})", [](JsonReader& r) { r.str_or("f", "x"); }, "a string"},
      {R"({"f": "1"})", [](JsonReader& r) { r.i64("f"); }, "an integer"},
      {R"({"f": 1.5})", [](JsonReader& r) { r.opt_i64("f"); }, "an integer"},
      {R"({"f": 18446744073709551615})", [](JsonReader& r) { r.i64_or("f", 0); }, "an integer"},
      {R"({"f": true})", [](JsonReader& r) { r.i64("f"); }, "an integer"},
      {R"({"f": "true"})", [](JsonReader& r) { r.boolean_or("f", false); }, "true or false"},
      {R"({"f": 1})", [](JsonReader& r) { r.boolean_or("f", false); }, "true or false"},
      {R"({"f": "a"})", [](JsonReader& r) { r.str_list("f"); }, "an array of strings"},
      {R"({"f": ["a", 1]})", [](JsonReader& r) { r.str_list("f"); }, "an array of strings"},
      {R"({"f": ["a"]})", [](JsonReader& r) { r.str_map("f"); }, "an object of strings"},
      {R"({"f": {"k": 1}})", [](JsonReader& r) { r.str_map("f"); }, "an object of strings"},
      {R"({"f": []})", [](JsonReader& r) { r.opt_object("f"); }, "an object"},
      {R"({"f": {}})", [](JsonReader& r) { r.opt_array("f"); }, "an array"},
  };
  for (const auto& c : cases) {
    auto v = parse(c.json);
    JsonReader r(v, "ctx");
    c.read(r);
    EXPECT_FALSE(r.ok()) << c.json;
    auto st = r.finish();
    ASSERT_FALSE(st) << c.json;
    EXPECT_EQ(st.error().code, Errc::invalid_argument);
    EXPECT_EQ(st.error().message, std::string("ctx: field 'f' must be ") + c.expected) << c.json;
  }
}

TEST(JsonReader, WrongTypesReturnDefaults) {
  auto v = parse(R"({"s": 1, "i": "x", "b": 0, "l": ["a", 2], "m": {"a": "b", "c": 3}})");
  JsonReader r(v, "ctx");
  EXPECT_EQ(r.str("s"), "");
  EXPECT_EQ(r.i64_or("i", 9), 9);
  EXPECT_TRUE(r.boolean_or("b", true));
  EXPECT_TRUE(r.str_list("l").empty());
  EXPECT_TRUE(r.str_map("m").empty());
}

TEST(JsonReader, TheFirstErrorWins) {
  auto v = parse(R"({"a": 1, "b": 2})");
  JsonReader r(v, "ctx");
  r.str("a");
  r.str("b");
  r.str("c");
  auto st = r.finish();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "ctx: field 'a' must be a string");
}

TEST(JsonReader, UnknownFields) {
  auto v = parse(R"({"app": "x", "sneaky": 1})");
  {
    JsonReader r(v, "push request");
    r.str("app");
    auto st = r.finish();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message, "push request: unknown field 'sneaky'");
  }
  {
    JsonReader r(v, "push request");
    r.str("app");
    EXPECT_TRUE(r.finish(/*allow_unknown=*/true));
  }
  {
    JsonReader r(v, "push request");
    r.str("app");
    r.allow("sneaky");
    EXPECT_TRUE(r.finish());
  }
  {
    // A field a getter asked for is known even when it was absent or null.
    auto w = parse(R"({"opt": null})");
    JsonReader r(w, "x");
    r.opt_str("opt");
    EXPECT_TRUE(r.finish());
  }
  {
    // A hostile key is cut in the message.
    auto w = parse("{\"" + std::string(10'000, 'k') + "\": 1}");
    JsonReader r(w, "x");
    auto st = r.finish();
    ASSERT_FALSE(st);
    EXPECT_LT(st.error().message.size(), 200u);
  }
}

TEST(JsonReader, NotAnObject) {
  for (const char* text : {"[]", "1", "\"s\"", "null", "true"}) {
    auto v = parse(text);
    JsonReader r(v, "agent message");
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.str_or("a", "d"), "d");
    EXPECT_EQ(r.opt_value("a"), nullptr);
    auto st = r.finish();
    ASSERT_FALSE(st) << text;
    EXPECT_EQ(st.error().message, "agent message must be a JSON object");
  }
}

TEST(JsonReader, NestedReadersNameTheirContext) {
  auto v = parse(R"({"nodes": [{"name": "web-1"}, {"name": 5}]})");
  JsonReader outer(v, "deploy");
  const auto* nodes = outer.opt_array("nodes");
  ASSERT_NE(nodes, nullptr);
  ASSERT_TRUE(outer.finish());
  std::optional<Error> first;
  for (size_t i = 0; i < nodes->size(); ++i) {
    JsonReader inner((*nodes)[i], "deploy.nodes[" + std::to_string(i) + "]");
    inner.str("name");
    if (auto st = inner.finish(); !st && !first) first = st.error();
  }
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message, "deploy.nodes[1]: field 'name' must be a string");
}

TEST(ToJson, KeepsInsertionOrderAndRoundTrips) {
  json::object o;
  o["z"] = 1;
  o["a"] = "x\"y\n";
  o["m"] = json::array{true, nullptr};
  const auto text = to_json(o);
  EXPECT_EQ(text, R"({"z":1,"a":"x\"y\n","m":[true,null]})");
  auto back = parse_json(text, "x");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, json::value(o));
}

}  // namespace
}  // namespace slipway
