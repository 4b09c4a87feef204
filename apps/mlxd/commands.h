// Subcommands of the mlxd binary. Each registers its flags on the CLI app and runs through the libraries.
#pragma once

#include <CLI/CLI.hpp>

namespace mlxd::app {

// `mlxd info`: version, CPU kernels, threads, and a timed self-check of the core against its reference
// kernels.
void add_info_command(CLI::App& app);
// `mlxd inspect PATH`: the tensors and metadata of a safetensors file, checkpoint folder or GGUF file.
void add_inspect_command(CLI::App& app);
// `mlxd tokenize --tokenizer PATH [--special] [--file F | TEXT]`: the ids as a JSON array;
// `mlxd detokenize --tokenizer PATH [--skip-special] IDS...`: the text.
void add_tokenize_commands(CLI::App& app);
// `mlxd init`, `mlxd logits`, `mlxd generate`: random Llama-family models, their logits, greedy generation.
void add_model_commands(CLI::App& app);
// `mlxd quantize IN OUT --type q8_0|q4_0|q4_k|q6_k`: a GGUF file (or HF folder) rewritten as GGUF with its
// 2-d weights block-quantized; metadata copied.
void add_quantize_command(CLI::App& app);

}  // namespace mlxd::app
