#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/hf_pipeline.h"

namespace mlxd::tokenizer_detail {

std::unique_ptr<hf_pipeline> build_hf_pipeline(const nlohmann::json& json, const nlohmann::json& config) {
  if (!json.is_object() || !json.contains("model")) throw tokenizer_error("tokenizer.json has no \"model\"");
  auto pipeline = std::make_unique<hf_pipeline>();
  pipeline->model = std::make_unique<bpe_model>(json["model"]);
  pipeline->added = std::make_unique<added_vocabulary>(json.value("added_tokens", nlohmann::json::array()));
  pipeline->normalizer_step = make_normalizer(json.value("normalizer", nlohmann::json()));
  pipeline->pre_tokenizer_step = make_pre_tokenizer(json.value("pre_tokenizer", nlohmann::json()));
  pipeline->post_processor_step = make_post_processor(json.value("post_processor", nlohmann::json()));
  pipeline->decoder_step = make_decoder(json.value("decoder", nlohmann::json()), &pipeline->added_contents);
  pipeline->index_vocabulary();
  if (config.is_object()) {
    for (const auto& extra : config.value("additional_special_tokens", nlohmann::json::array())) {
      if (extra.is_string()) pipeline->special_contents.insert(extra.get<std::string>());
    }
  }
  return pipeline;
}

}  // namespace mlxd::tokenizer_detail
