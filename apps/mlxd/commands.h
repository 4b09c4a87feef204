// Subcommands of the mlxd binary. Each registers its flags on the CLI app and runs through the libraries.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace mlxd::app {

// `mlxd info`: version, CPU kernels, threads, and a timed self-check of the core against its reference
// kernels.
void add_info_command(CLI::App& app);
// `mlxd inspect PATH`: the tensors and metadata of a safetensors file, checkpoint folder or GGUF file.
void add_inspect_command(CLI::App& app);
// `mlxd tokenize --tokenizer PATH [--special] [--file F | TEXT]`: the ids as a JSON array;
// `mlxd detokenize --tokenizer PATH [--skip-special] IDS...`: the text.
void add_tokenize_commands(CLI::App& app);
// `mlxd tokenizer train --corpus FILE... --out DIR [--vocab-size N] [--min-frequency K] [--special A,B]`:
// learns a byte-level BPE vocabulary and writes a Hugging Face tokenizer folder.
void add_tokenizer_train_command(CLI::App& app);
// `mlxd chat-template --tokenizer PATH --messages FILE.json [--add-generation-prompt] [--tools FILE.json]
// [--chat-template FILE] [--var NAME=VALUE]...`: the prompt the model's chat template renders.
void add_chat_template_command(CLI::App& app);
// `mlxd init`, `mlxd logits`, `mlxd generate`: random Llama-family models, their logits, generation (on this
// node, or with --workers over a pipeline of worker nodes).
void add_model_commands(CLI::App& app);
// `mlxd chat [--model M] [--system TEXT] [sampling flags]`: an interactive conversation through the model's
// chat template; user lines come from stdin, /reset forgets the conversation, /exit or end of input ends it.
void add_chat_command(CLI::App& app);
// `mlxd convert IN OUT [--dtype keep|f32|f16|bf16]`: a Hugging Face folder as GGUF, or a GGUF file as a
// folder.
void add_convert_command(CLI::App& app);
// `mlxd fuse --model BASE --adapters DIR --out OUT [--dtype keep|f32|f16|bf16]`: a HF folder with the LoRA
// adapters of DIR merged into the weights, and the base folder's config and tokenizer files.
void add_fuse_command(CLI::App& app);
// `mlxd perplexity --model M --file TEXT [--context N] [--stride S]`: the model's perplexity on the text.
void add_perplexity_command(CLI::App& app);
// `mlxd quantize IN OUT --type q8_0|q4_0|q4_k|q4_k_m|q6_k`: a GGUF file (or HF folder) rewritten as GGUF with
// its 2-d weights block-quantized; metadata copied.
void add_quantize_command(CLI::App& app);

// `mlxd train --config FILE.yaml [--set KEY=VALUE]... [--out DIR] [--steps N] [--no-resume]`: a training run
// (data-parallel when launched with `mlxd launch -n N`), resuming from the run folder's last checkpoint.
void add_train_command(CLI::App& app);
// The same for `task` (empty: the config's) as the subcommand `name` of `parent`.
void add_run_command(CLI::App& parent, const std::string& name, const std::string& description,
                     const std::string& task);
// `mlxd rlhf reward|dpo|grpo --config FILE.yaml ...` (as train) and `mlxd rlhf score --model DIR --data
// FILE.jsonl`.
void add_rlhf_command(CLI::App& app);
// `mlxd plot RUN.jsonl [-o curves.svg|curves.png] [--title T]`: loss and learning-rate curves of a training
// run's metrics log.
void add_plot_command(CLI::App& app);

// `mlxd launch -n N [--] CMD...`: N local ranks of CMD with the rendezvous environment; `mlxd bench comm`.
void add_launch_command(CLI::App& app);
// argv as CLI11 parses it (reversed, without the program name), with the "--" that may separate
// `mlxd launch`'s options from its command removed: CLI11 then hands the whole command to launch.
std::vector<std::string> command_line(int argc, char** argv);
// `mlxd bench comm`, `mlxd bench model` (prefill and decode tokens/s beside the read-bandwidth bound) and
// `mlxd bench pipeline` (aggregate tokens/s of sequences at once over worker nodes beside one sequence).
void add_bench_commands(CLI::App& app);
void add_bench_model_command(CLI::App* bench);
void add_bench_pipeline_command(CLI::App* bench);
// `mlxd serve [--model PATH] [--port 8100] [--host H] [--api-key K]`: the OpenAI-compatible server.
void add_serve_command(CLI::App& app);
// `mlxd worker`: a node serving a range of layers; `mlxd cluster status`: the workers' health and layers.
void add_dist_commands(CLI::App& app);

}  // namespace mlxd::app
