#include "tokenizer/vocabulary_pipeline.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/utf8.h"

namespace mlxd::tokenizer_detail {
namespace {

using json = nlohmann::json;

// The split regexes of the tokenizer.json files these names stand for.
constexpr const char* llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class pre_family { gpt2, llama3, qwen2 };

pre_family byte_level_family(const std::string& name) {
  if (name.empty() || name == "default" || name == "gpt2") return pre_family::gpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return pre_family::llama3;
  if (name == "qwen2") return pre_family::qwen2;
  throw tokenizer_error("unsupported pre-tokenizer '" + name +
                        "' (supported: gpt2, default, llama-bpe, llama3, llama-v3, qwen2)");
}

json split_then_byte_level(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           json::array({{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}},
                        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
}

json template_for(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  json single = json::array(), special = json::object();
  if (bos) {
    single.push_back({{"SpecialToken", {{"id", "bos"}}}});
    special["bos"] = {{"ids", {*bos}}};
  }
  single.push_back({{"Sequence", {{"id", "A"}}}});
  if (eos) {
    single.push_back({{"SpecialToken", {{"id", "eos"}}}});
    special["eos"] = {{"ids", {*eos}}};
  }
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", special}};
}

token_type type_of(const vocabulary_spec& spec, size_t id) {
  return spec.types.empty() ? token_type::normal : spec.types[id];
}

void check_spec(const vocabulary_spec& spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) throw tokenizer_error("the vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) throw tokenizer_error("the vocabulary is too large");
  if (!spec.types.empty() && spec.types.size() != n) {
    throw tokenizer_error("token types: " + std::to_string(spec.types.size()) + " for " + std::to_string(n) +
                          " tokens");
  }
  for (size_t i = 0; i < spec.types.size(); ++i) {
    const auto t = static_cast<int32_t>(spec.types[i]);
    if (t < 0 || t >= static_cast<int32_t>(token_type::count)) {
      throw tokenizer_error("token " + std::to_string(i) + " has unknown type " + std::to_string(t));
    }
  }
  if (spec.model == vocabulary_model::sentencepiece_bpe && spec.scores.size() != n) {
    throw tokenizer_error("token scores: " + std::to_string(spec.scores.size()) + " for " +
                          std::to_string(n) + " tokens (a SentencePiece vocabulary merges by score)");
  }
  const std::pair<const char*, std::optional<token_id>> ids[] = {{"bos", spec.bos}, {"eos", spec.eos},
                                                                 {"pad", spec.pad}, {"unk", spec.unk},
                                                                 {"eot", spec.eot}, {"eom", spec.eom}};
  for (const auto& [name, id] : ids) {
    if (id && (*id < 0 || static_cast<size_t>(*id) >= n)) {
      throw tokenizer_error(std::string(name) + " token id " + std::to_string(*id) +
                            " is outside the vocabulary (size " + std::to_string(n) + ")");
    }
  }
}

// SentencePiece BPE merges the adjacent pair whose concatenation is the best-scored piece, leftmost on ties:
// every split of a normal piece into two normal pieces is a merge, ranked by the piece's score.
// (SentencePiece could also join two characters that are not pieces; a BPE vocabulary holds every character
// of its pieces.)
std::vector<bpe_merge> merges_by_score(const vocabulary_spec& spec,
                                       const std::unordered_map<std::string, int32_t>& normal) {
  std::vector<float> scores;
  for (const auto& [token, id] : normal) scores.push_back(spec.scores[id]);
  std::sort(scores.begin(), scores.end(), std::greater<>());
  scores.erase(std::unique(scores.begin(), scores.end()), scores.end());
  std::vector<bpe_merge> merges;
  for (const auto& [token, id] : normal) {
    const float score = spec.scores[id];
    const auto rank = static_cast<int32_t>(
        std::lower_bound(scores.begin(), scores.end(), score, std::greater<>()) - scores.begin());
    for (size_t pos = 0; pos < token.size();) {
      pos += std::max<size_t>(1, utf8_sequence_length(token, pos));
      if (pos >= token.size()) break;
      std::string left = token.substr(0, pos), right = token.substr(pos);
      if (normal.contains(left) && normal.contains(right)) {
        merges.push_back({std::move(left), std::move(right), rank});
      }
    }
  }
  return merges;
}

std::vector<bpe_merge> merges_by_rank(const vocabulary_spec& spec) {
  std::vector<bpe_merge> merges;
  merges.reserve(spec.merges.size());
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    const std::string& merge = spec.merges[i];
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) throw tokenizer_error("merge " + std::to_string(i) + " has no space");
    merges.push_back({merge.substr(0, space), merge.substr(space + 1), static_cast<int32_t>(i)});
  }
  return merges;
}

}  // namespace

std::shared_ptr<const tokenizer_impl> build_from_vocabulary(const vocabulary_spec& spec) {
  check_spec(spec);
  const bool sentencepiece = spec.model == vocabulary_model::sentencepiece_bpe;
  if (!sentencepiece && spec.model != vocabulary_model::byte_level_bpe) {
    throw tokenizer_error("unknown vocabulary model " + std::to_string(static_cast<int>(spec.model)));
  }
  const pre_family family = sentencepiece ? pre_family::gpt2 : byte_level_family(spec.pre_tokenizer);

  // Control, user-defined and unknown tokens are matched in the text; the model knows the others.
  std::unordered_map<std::string, int32_t> vocab, normal;
  json added = json::array();
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const token_type type = type_of(spec, i);
    if (type == token_type::control || type == token_type::user_defined || type == token_type::unknown) {
      added.push_back({{"id", id},
                       {"content", spec.tokens[i]},
                       {"special", type != token_type::user_defined},
                       {"normalized", false}});
    }
    if (type != token_type::control && type != token_type::user_defined) vocab.emplace(spec.tokens[i], id);
    if (type == token_type::normal) normal.emplace(spec.tokens[i], id);
  }

  bpe_options options;
  options.byte_fallback = sentencepiece;
  options.ignore_merges = family == pre_family::llama3;
  if (spec.unk) options.unk_token = spec.tokens[*spec.unk];
  const bool add_bos = spec.add_bos.value_or(sentencepiece || family == pre_family::llama3);
  const bool add_eos = spec.add_eos.value_or(false);

  auto pipeline = std::make_unique<hf_pipeline>();
  pipeline->model = std::make_unique<bpe_model>(
      std::move(vocab), sentencepiece ? merges_by_score(spec, normal) : merges_by_rank(spec), options);
  pipeline->added = std::make_unique<added_vocabulary>(added);
  pipeline->post_processor_step =
      make_post_processor(template_for(add_bos ? spec.bos : std::nullopt, add_eos ? spec.eos : std::nullopt));
  if (sentencepiece) {
    json normalizers = json::array();
    if (spec.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", "\u2581"}});
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}});
    pipeline->normalizer_step = make_normalizer({{"type", "Sequence"}, {"normalizers", normalizers}});
    json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                 {{"type", "ByteFallback"}},
                                 {{"type", "Fuse"}}});
    if (spec.add_space_prefix) {
      decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    }
    pipeline->decoder_step = make_decoder({{"type", "Sequence"}, {"decoders", decoders}}, nullptr);
  } else {
    if (family == pre_family::qwen2) pipeline->normalizer_step = make_normalizer({{"type", "NFC"}});
    pipeline->pre_tokenizer_step = make_pre_tokenizer(
        family == pre_family::llama3 ? split_then_byte_level(llama3_pattern)
        : family == pre_family::qwen2
            ? split_then_byte_level(qwen2_pattern)
            : json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}});
    pipeline->decoder_step = make_decoder({{"type", "ByteLevel"}}, &pipeline->added_contents);
  }
  pipeline->index_vocabulary();
  if (pipeline->id_to_token.size() < spec.tokens.size()) {
    pipeline->id_to_token.resize(spec.tokens.size());
    pipeline->has_token.resize(spec.tokens.size());
  }
  // Ids that no token of the model or of the added vocabulary took (a repeated spelling) still name theirs.
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    if (!pipeline->has_token[i]) {
      pipeline->id_to_token[i] = spec.tokens[i];
      pipeline->has_token[i] = true;
    }
  }

  auto impl = std::make_shared<tokenizer_impl>();
  impl->settings.bos = spec.bos;
  impl->settings.pad = spec.pad;
  impl->settings.unk = spec.unk;
  for (const auto& id : {spec.eos, spec.eot, spec.eom}) {
    if (id &&
        std::find(impl->settings.eos.begin(), impl->settings.eos.end(), *id) == impl->settings.eos.end())
      impl->settings.eos.push_back(*id);
  }
  impl->settings.clean_up_tokenization_spaces =
      spec.clean_up_tokenization_spaces.value_or(!sentencepiece && family != pre_family::qwen2);
  impl->settings.chat_template = spec.chat_template;
  impl->backend = std::move(pipeline);
  return impl;
}

}  // namespace mlxd::tokenizer_detail
