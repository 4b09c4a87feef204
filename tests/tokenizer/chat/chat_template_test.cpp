// The chat template interpreter on its own: clear errors that name the construct and line, the limits that
// keep a hostile template from exhausting the machine, the Python semantics kept where the JavaScript
// reference differs, named templates in tokenizer_config.json, and concurrent rendering.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "mlxd/tokenizer/chat_template.h"

namespace mlxd {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(std::string_view source, const ojson& context = ojson::object()) {
  return chat_template(source).render(context);
}

// The message of the chat_template_error that rendering `source` throws ("" if none).
std::string error_of(std::string_view source, const ojson& context = ojson::object()) {
  try {
    render(source, context);
  } catch (const chat_template_error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, SyntaxErrorsNameTheLineAndTheConstruct) {
  EXPECT_NE(error_of("a\nb\n{% include 'other.jinja' %}").find("line 3"), std::string::npos);
  EXPECT_NE(error_of("{% include 'other.jinja' %}").find("{% include %} is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("{% extends 'base' %}").find("extends"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 + }}").find("expected an expression"), std::string::npos);
  EXPECT_NE(error_of("{% if x %}never closed").find("not closed: missing {% endif %}"), std::string::npos);
  EXPECT_NE(
      error_of("{% for x in y %}\n{% if x %}{% endif %}").find("line 1 is not closed: missing {% endfor %}"),
      std::string::npos);
  EXPECT_NE(error_of("{{ 'unterminated }}").find("string literal is not closed"), std::string::npos);
  EXPECT_NE(error_of("{# open comment").find("comment"), std::string::npos);
  EXPECT_NE(error_of("{{ x ; y }}").find("unexpected character ';'"), std::string::npos);
  EXPECT_NE(error_of("{{ '\\q' }}").find("unknown escape"), std::string::npos);
  EXPECT_NE(error_of("{{ 99999999999999999999 }}").find("too large"), std::string::npos);
}

TEST(ChatTemplate, RenderErrorsNameTheFilterTestOrOperation) {
  EXPECT_NE(error_of("\n{{ 'x' | frobnicate }}").find("line 2: the filter 'frobnicate' is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 1 is frobnicated }}").find("test 'frobnicated'"), std::string::npos);
  EXPECT_NE(error_of("{{ nothing - 1 }}").find("cannot apply '-' to undefined and integer"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 1 // 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc'.nomethod() }}").find("no method 'nomethod'"), std::string::npos);
  EXPECT_NE(error_of("{% set d = {} %}{% set d.x = 1 %}").find("only a namespace()"), std::string::npos);
  EXPECT_NE(error_of("{% for x in 5 %}{% endfor %}").find("not a integer"), std::string::npos);
  EXPECT_NE(error_of("{{ raise_exception('custom message') }}").find("custom message"), std::string::npos);
  EXPECT_NE(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").find("at most 1"), std::string::npos);
  EXPECT_NE(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}").find("no parameter 'b'"),
            std::string::npos);
}

TEST(ChatTemplate, HostileTemplatesHitLimitsInsteadOfExhaustingTheMachine) {
  // Deep nesting would overflow the parser's stack.
  EXPECT_NE(
      error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nests deeper"),
      std::string::npos);
  std::string nested_ifs;
  for (int i = 0; i < 400; ++i) nested_ifs += "{% if true %}";
  EXPECT_NE(error_of(nested_ifs).find("nests deeper"), std::string::npos);
  EXPECT_NE(error_of("{{ range(100000000) | length }}").find("more than a million"), std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("deeper than 128"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(1000000) %}{{ big }}{% endfor %}", {{"big", std::string(200, 'x')}})
                .find("exceeds 64 MiB"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}")
                .find("a million loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(2 << 20, 'x')).find("bytes, more than"), std::string::npos);
}

TEST(ChatTemplate, KeepsPythonSemanticsWhereTheJavaScriptReferenceDiffers) {
  // str.strip(chars) strips those characters (the reference ignores the argument); Qwen3 strips '\n' only.
  EXPECT_EQ(render("[{{ ' \\n x \\n '.strip('\\n') }}]"), "[ \n x \n ]");
  EXPECT_EQ(render("{{ 'xxhixx'.lstrip('x') }}"), "hixx");
  EXPECT_EQ(render("{{ 'ab' * 3 }}"), "ababab");
  EXPECT_EQ(render("{{ -7 // 2 }} {{ -7 % 3 }}"), "-4 2");  // floor division and modulo as Python
  EXPECT_EQ(render("{{ 'b' > 'a' }}"), "true");
  EXPECT_EQ(render("{{ ['x', 'y'] | reject('equalto', 'x') | join }}"), "y");
  EXPECT_EQ(render("{{ [1, 0, 2] | select | join(',') }}"), "1,2");
  EXPECT_EQ(render("{{ ['a', 'b'] | map('upper') | join }}"), "AB");
}

TEST(ChatTemplate, NumbersPrintAsTheReferencePrintsThem) {
  EXPECT_EQ(render("{{ 1.0 }} {{ 2.5 }} {{ 10 / 4 }} {{ 1 / 3 }} {{ 3 * 1.0 }}"),
            "1.0 2.5 2.5 0.3333333333333333 3.0");
  EXPECT_EQ(render("{{ x }} {{ y }} {{ x | tojson }}", {{"x", 1e-7}, {"y", 1.5e21}}), "1e-7 1.5e+21 1e-7");
  EXPECT_EQ(render("{{ 'n' + 2.0 }}"), "n2");
}

TEST(ChatTemplate, ContextMustBeAnObjectAndKeepsKeyOrder) {
  EXPECT_THROW(render("x", ojson::array()), chat_template_error);
  const ojson context = ojson::parse(R"({"tool": {"zeta": 1, "alpha": {"b": 2, "a": 3}}})");
  EXPECT_EQ(render("{{ tool | tojson }}", context), R"({"zeta": 1, "alpha": {"b": 2, "a": 3}})");
}

const char* minimal_tokenizer_json() {
  return R"({"model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2}, "merges": []},
             "added_tokens": [{"id": 0, "content": "<s>", "special": true},
                              {"id": 1, "content": "</s>", "special": true}]})";
}

TEST(ChatTemplate, TokenizerConfigTemplatesAndSpecialTokens) {
  const tokenizer plain = tokenizer::from_json(minimal_tokenizer_json(), R"({"bos_token": "<s>"})");
  EXPECT_TRUE(plain.chat_template().empty());
  chat_request request;
  request.messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_NE(std::string([&] {
              try {
                apply_chat_template(plain, request);
              } catch (const chat_template_error& e) {
                return std::string(e.what());
              }
              return std::string();
            }())
                .find("no chat template"),
            std::string::npos);

  // A list of named templates: "default" is the one apply_chat_template uses.
  const tokenizer named = tokenizer::from_json(minimal_tokenizer_json(), R"({
      "bos_token": "<s>", "eos_token": {"content": "</s>"},
      "chat_template": [{"name": "tool_use", "template": "TOOLS"},
                        {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}{{ extra_var }}"}]})");
  request.add_generation_prompt = true;
  request.extra = {{"extra_var", "!"}};
  EXPECT_EQ(apply_chat_template(named, request), "<s>user:hi</s>assistant:!");
  // An explicit template (the --chat-template override) wins over the tokenizer's.
  const chat_template override_template("{{ messages | length }}");
  EXPECT_EQ(apply_chat_template(named, request, &override_template), "1");
}

TEST(ChatTemplate, OneParsedTemplateRendersOnManyThreads) {
  const chat_template templ(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m.content | length %}"
      "{{ m.role }}{% endfor %}={{ ns.n }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      ojson messages = ojson::array();
      for (size_t i = 0; i <= t; ++i) messages.push_back({{"role", "u"}, {"content", std::string(i, 'x')}});
      for (int rep = 0; rep < 200; ++rep) results[t] = templ.render({{"messages", messages}});
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < results.size(); ++t) {
    EXPECT_EQ(results[t], std::string(t + 1, 'u') + "=" + std::to_string(t * (t + 1) / 2));
  }
}

}  // namespace
}  // namespace mlxd
