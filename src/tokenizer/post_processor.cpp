#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {
namespace {

class template_processing final : public post_processor {
 public:
  explicit template_processing(const nlohmann::json& config) {
    const auto& special =
        config.contains("special_tokens") ? config["special_tokens"] : nlohmann::json::object();
    for (const auto& item : config.at("single")) {
      if (item.contains("Sequence")) {
        pieces_.push_back({true, {}});
        continue;
      }
      if (!item.contains("SpecialToken")) throw tokenizer_error("TemplateProcessing item " + item.dump());
      const std::string name = item["SpecialToken"].at("id").get<std::string>();
      if (!special.contains(name)) throw tokenizer_error("TemplateProcessing names undeclared token " + name);
      pieces_.push_back({false, special[name].at("ids").get<std::vector<int32_t>>()});
    }
  }
  std::vector<int32_t> process(std::vector<int32_t> ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return ids;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const auto& item : pieces_) {
      const auto& source = item.is_sequence ? ids : item.ids;
      out.insert(out.end(), source.begin(), source.end());
    }
    return out;
  }

 private:
  struct template_item {
    bool is_sequence;          // the encoded text itself
    std::vector<int32_t> ids;  // otherwise: the ids of a special token
  };
  std::vector<template_item> pieces_;
};

class pass_through final : public post_processor {
 public:
  std::vector<int32_t> process(std::vector<int32_t> ids, bool) const override { return ids; }
};

class sequence final : public post_processor {
 public:
  explicit sequence(std::vector<std::unique_ptr<post_processor>> steps) : steps_(std::move(steps)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) ids = step->process(std::move(ids), add_special_tokens);
    return ids;
  }

 private:
  std::vector<std::unique_ptr<post_processor>> steps_;
};

}  // namespace

std::unique_ptr<post_processor> make_post_processor(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "TemplateProcessing") return std::make_unique<template_processing>(config);
  if (type == "ByteLevel") return std::make_unique<pass_through>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<post_processor>> steps;
    for (const auto& step : config.at("processors")) {
      if (auto built = make_post_processor(step)) steps.push_back(std::move(built));
    }
    return std::make_unique<sequence>(std::move(steps));
  }
  throw tokenizer_error("unsupported post_processor type '" + type + "'");
}

}  // namespace mlxd::tokenizer_detail
