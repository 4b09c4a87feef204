#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "dist_commands.h"
#include "generation_flags.h"
#include "mlxd/core/ops.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/io/file_text.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/default_model.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/lora.h"
#include "mlxd/tokenizer/chat_template.h"
#include "mlxd/tokenizer/stream_decoder.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

namespace mlxd::app {
namespace {

// The prompt text that the tokenizer's chat template makes of an optional system message and one user turn.
std::string chat_prompt(const tokenizer& tok, const std::string& system, const std::string& user) {
  chat_request request;
  if (!system.empty()) request.messages.push_back({{"role", "system"}, {"content", system}});
  request.messages.push_back({{"role", "user"}, {"content", user}});
  request.add_generation_prompt = true;
  return apply_chat_template(tok, request);
}

// The model, with LoRA adapters merged into its weights when `adapters` names a folder.
models::llama_model load_model(const std::string& model, const std::string& adapters, bool mmap) {
  if (adapters.empty()) return models::load_llama(model, {.mmap = mmap});
  if (mmap)
    throw std::invalid_argument("--mmap is not supported with --adapters (the merged weights are new)");
  models::hf_model fused = models::load_fused_model(model, adapters);
  return models::llama_model(std::move(fused.config), fused.weights);
}

void add_adapters_flag(CLI::App* cmd, std::string& adapters) {
  cmd->add_option("--adapters", adapters, "LoRA adapter folder (PEFT layout) merged into the model at load");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void add_model_commands(CLI::App& app) {
  {
    auto* cmd =
        app.add_subcommand("init", "write a Llama-family model with seeded random weights (HF folder)");
    auto config = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto seed = std::make_shared<uint64_t>(0);
    cmd->add_option("--config", *config, "config.json describing the model")->required();
    cmd->add_option("--out", *out, "output folder (created)")->required();
    cmd->add_option("--seed", *seed, "random seed");
    cmd->callback([config, out, seed] {
      const auto text = io::read_file(*config);
      if (!text) throw std::invalid_argument("cannot read " + *config);
      const models::llama_config c = models::parse_llama_config(*text, *config);
      std::filesystem::create_directories(*out);
      save_safetensors(std::filesystem::path(*out) / "model.safetensors",
                       models::init_llama_weights(c, *seed), {{"format", "pt"}});
      std::ofstream(std::filesystem::path(*out) / "config.json") << models::to_json(c) << "\n";
      std::printf("wrote %s (%s, %d layers, hidden %d, vocab %d)\n", out->c_str(), c.architecture.c_str(),
                  c.n_layers, c.hidden_size, c.vocab_size);
    });
  }
  {
    auto* cmd = app.add_subcommand("logits", "write the logits of every position of a token sequence");
    auto model = std::make_shared<std::string>();
    auto tokens = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("--model", *model, "model folder")->required();
    cmd->add_option("--tokens", *tokens, "comma-separated token ids")->required();
    cmd->add_option("--out", *out, "output .safetensors (tensor \"logits\" [n_tokens, vocab])")->required();
    auto adapters = std::make_shared<std::string>();
    add_adapters_flag(cmd, *adapters);
    auto cluster = std::make_shared<cluster_flags>();
    add_cluster_flags(cmd, *cluster, true);
    cmd->callback([model, tokens, out, cluster, adapters] {
      const auto ids = parse_ids(*tokens);
      if (!cluster->workers.empty()) {
        if (!adapters->empty()) throw std::invalid_argument("--adapters is not supported with --workers");
        dist::coordinator c(*model, coordinator_options_of(*cluster));
        save_safetensors(*out, {{"logits", c.logits(ids)}});
        return;
      }
      const models::llama_model m = load_model(*model, *adapters, false);
      models::kv_cache cache = m.make_cache(static_cast<int>(ids.size()));
      save_safetensors(*out, {{"logits", m.forward(ids, cache)}});
    });
  }
  {
    auto* cmd = app.add_subcommand("generate", "generate tokens from prompt token ids");
    auto model = std::make_shared<std::string>();
    auto tokens = std::make_shared<std::string>();
    auto stop_ids = std::make_shared<std::string>();
    auto prompt_text = std::make_shared<std::string>();
    auto tokenizer_path = std::make_shared<std::string>();
    auto ignore_eos = std::make_shared<bool>(false);
    auto max_tokens = std::make_shared<int>(16);
    auto json = std::make_shared<bool>(false);
    auto chat = std::make_shared<bool>(false);
    auto system = std::make_shared<std::string>();
    auto sp = std::make_shared<engine::sampling_params>();
    sp->temperature = 0.0f;
    cmd->add_option("--model", *model, "model folder or GGUF file (default: the bundled model)");
    auto* tokens_opt = cmd->add_option("--tokens", *tokens, "comma-separated prompt token ids");
    auto* prompt_opt = cmd->add_option("--prompt", *prompt_text, "prompt text (needs a tokenizer)");
    tokens_opt->excludes(prompt_opt);
    cmd->add_option("--tokenizer", *tokenizer_path,
                    "model folder, tokenizer.json, tokenizer.model or GGUF file (default: the model)");
    cmd->add_flag("--chat", *chat, "send --prompt as a user message through the model's chat template")
        ->needs(prompt_opt);
    cmd->add_option("--system", *system, "with --chat: a system message before the prompt");
    cmd->add_flag("--ignore-eos", *ignore_eos, "keep generating past the tokenizer's end-of-sequence ids");
    cmd->add_option("--max-tokens", *max_tokens, "most tokens to generate")->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--stop-ids", *stop_ids, "comma-separated ids that end generation (kept in the output)");
    add_sampling_flags(cmd, *sp);
    cmd->add_flag("--json", *json, "print one JSON object with tokens, logprobs and timings");
    auto adapters = std::make_shared<std::string>();
    add_adapters_flag(cmd, *adapters);
    auto mmap = std::make_shared<bool>(false);
    add_mmap_flag(cmd, *mmap);
    auto kv_dtype = std::make_shared<std::string>("f32");
    add_kv_dtype_flag(cmd, *kv_dtype);
    auto cluster = std::make_shared<cluster_flags>();
    add_cluster_flags(cmd, *cluster, true);
    cmd->callback([=] {
      if (tokens->empty() && prompt_text->empty()) throw std::invalid_argument("give --tokens or --prompt");
      *model = models::model_or_default(*model);
      if (!cluster->workers.empty()) {
        if (!adapters->empty()) throw std::invalid_argument("--adapters is not supported with --workers");
        if (*kv_dtype != "f32") throw std::invalid_argument("--kv-dtype is not supported with --workers");
        if (*mmap)
          throw std::invalid_argument("--mmap is not supported with --workers (the workers load the model)");
        std::optional<tokenizer> tok;
        if (!prompt_text->empty()) tok = load_tokenizer(tokenizer_path->empty() ? *model : *tokenizer_path);
        dist::generation_request r;
        r.prompt = tok ? tok->encode(*prompt_text, true) : parse_ids(*tokens);
        if (r.prompt.empty()) throw std::invalid_argument("the prompt encodes to no tokens");
        r.max_tokens = *max_tokens;
        r.sampling = *sp;
        r.stop_ids = stop_ids->empty() ? std::vector<int32_t>{} : parse_ids(*stop_ids);
        if (tok && !*ignore_eos)
          r.stop_ids.insert(r.stop_ids.end(), tok->eos_ids().begin(), tok->eos_ids().end());
        std::optional<stream_decoder> stream;
        if (tok) stream.emplace(*tok, true);
        std::string text;
        r.on_token = [&](const engine::sample_result& t) {
          if (!stream) return;
          const std::string piece = stream->push(t.id);
          text += piece;
          if (!*json) std::fputs(piece.c_str(), stdout), std::fflush(stdout);
        };
        dist::coordinator c(*model, coordinator_options_of(*cluster));
        const dist::generation_result g = c.generate(r);
        if (stream) {
          const std::string rest = stream->finish();
          text += rest;
          if (!*json) std::printf("%s\n", rest.c_str());
        }
        if (*json) {
          const double steps = std::max(1, g.decode_steps);
          double compute = 0;
          std::vector<double> stage_ms;  // each stage's compute a token, in pipeline order
          for (double ms : g.decode_stage_ms) {
            compute += ms;
            stage_ms.push_back(ms / steps);
          }
          const auto hops = static_cast<double>(std::max<size_t>(1, g.decode_stage_ms.size()));
          nlohmann::json j = {{"tokens", g.tokens},
                              {"logprobs", g.logprobs},
                              {"plan", c.plan_description()},
                              {"replans", g.replans},
                              {"direct_replies", g.direct_replies},
                              {"reply_link", g.reply_link},
                              {"carriers", g.carriers},
                              {"looped_steps", g.looped_steps},
                              {"timings",
                               {{"prefill_s", g.prefill_s},
                                {"decode_s", g.decode_s},
                                {"prefill_tokens_per_s", static_cast<double>(r.prompt.size()) / g.prefill_s},
                                {"decode_tokens_per_s", g.decode_s > 0 ? g.decode_steps / g.decode_s : 0.0},
                                {"decode_round_trip_ms", g.decode_round_trip_ms / steps},
                                {"decode_compute_ms", compute / steps},
                                {"decode_stage_ms", stage_ms},
                                {"added_ms_per_hop", (g.decode_round_trip_ms - compute) / steps / hops}}}};
          if (stream) j["text"] = text;
          std::printf("%s\n", j.dump().c_str());
        } else if (!stream) {
          for (size_t i = 0; i < g.tokens.size(); ++i) std::printf("%s%d", i ? "," : "", g.tokens[i]);
          std::printf("\n");
        }
        return;
      }
      const models::llama_model m = load_model(*model, *adapters, *mmap);
      std::optional<tokenizer> tok;
      if (!prompt_text->empty()) tok = load_tokenizer(tokenizer_path->empty() ? *model : *tokenizer_path);
      // A chat template writes the BOS and turn markers itself, so the rendered text is encoded without them.
      const auto prompt = !tok    ? parse_ids(*tokens)
                          : *chat ? tok->encode(chat_prompt(*tok, *system, *prompt_text), false)
                                  : tok->encode(*prompt_text, true);
      if (prompt.empty()) throw std::invalid_argument("the prompt encodes to no tokens");
      std::vector<int32_t> stops = stop_ids->empty() ? std::vector<int32_t>{} : parse_ids(*stop_ids);
      if (tok && !*ignore_eos) stops.insert(stops.end(), tok->eos_ids().begin(), tok->eos_ids().end());
      std::optional<stream_decoder> stream;
      if (tok) stream.emplace(*tok, true);
      std::string text;
      const int capacity = static_cast<int>(prompt.size()) + *max_tokens;
      if (capacity > m.config().max_position_embeddings) {
        throw std::invalid_argument("prompt of " + std::to_string(prompt.size()) + " tokens plus " +
                                    std::to_string(*max_tokens) + " new ones exceeds the context of " +
                                    std::to_string(m.config().max_position_embeddings));
      }
      engine::sampler sampler(*sp, m.config().vocab_size);
      models::kv_cache cache = m.make_cache(capacity, kv_dtype_of(*kv_dtype));
      std::vector<int32_t> generated;
      std::vector<float> logprobs;
      const auto start = std::chrono::steady_clock::now();
      array logits = m.forward_last(prompt, cache);
      const double prefill = seconds_since(start);
      for (int i = 0; i < *max_tokens; ++i) {
        const auto last = contiguous(slice_axis(logits, 0, logits.shape(0) - 1, logits.shape(0)));
        const auto r = sampler.sample({last.data<float>(), static_cast<size_t>(last.size())}, generated);
        generated.push_back(r.id);
        logprobs.push_back(r.logprob);
        if (stream) {
          const std::string piece = stream->push(r.id);
          text += piece;
          if (!*json) std::fputs(piece.c_str(), stdout), std::fflush(stdout);
        }
        if (std::find(stops.begin(), stops.end(), r.id) != stops.end()) break;
        if (i + 1 < *max_tokens) logits = m.forward({r.id}, cache);
      }
      const double total = seconds_since(start);
      if (stream) {
        const std::string rest = stream->finish();
        text += rest;
        if (!*json) std::printf("%s\n", rest.c_str());
      }
      const auto n_decoded = static_cast<double>(generated.size() - 1);
      if (*json) {
        const double decode = total - prefill;
        nlohmann::json j = {{"prompt_tokens", prompt.size()},
                            {"tokens", generated},
                            {"logprobs", logprobs},
                            {"timings",
                             {{"prefill_s", prefill},
                              {"decode_s", decode},
                              {"prefill_tokens_per_s", static_cast<double>(prompt.size()) / prefill},
                              {"decode_tokens_per_s", decode > 0 ? n_decoded / decode : 0.0}}}};
        if (stream) j["text"] = text;
        std::printf("%s\n", j.dump().c_str());
      } else if (!stream) {
        for (size_t i = 0; i < generated.size(); ++i) std::printf("%s%d", i ? "," : "", generated[i]);
        std::printf("\n");
      }
    });
  }
}

}  // namespace mlxd::app
