#include <array>
#include <stdexcept>

#include "mlxd/io/gguf.h"

namespace mlxd {

namespace {

// Indexed by type id; an empty name marks an id that ggml removed or never used.
constexpr std::array<ggml_type_traits, static_cast<size_t>(ggml_type::count)> ggml_types = {{
    {"F32", 1, 4},
    {"F16", 1, 2},
    {"Q4_0", 32, 18},
    {"Q4_1", 32, 20},
    {},
    {},
    {"Q5_0", 32, 22},
    {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},
    {"Q8_1", 32, 36},
    {"Q2_K", 256, 84},
    {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},
    {"Q5_K", 256, 176},
    {"Q6_K", 256, 210},
    {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66},
    {"IQ2_XS", 256, 74},
    {"IQ3_XXS", 256, 98},
    {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},
    {"IQ3_S", 256, 110},
    {"IQ2_S", 256, 82},
    {"IQ4_XS", 256, 136},
    {"I8", 1, 1},
    {"I16", 1, 2},
    {"I32", 1, 4},
    {"I64", 1, 8},
    {"F64", 1, 8},
    {"IQ1_M", 256, 56},
    {"BF16", 1, 2},
    {},
    {},
    {},
    {"TQ1_0", 256, 54},
    {"TQ2_0", 256, 66},
    {},
    {},
    {},
    {"MXFP4", 32, 17},
}};

constexpr std::array<std::string_view, static_cast<size_t>(gguf_type::count)> value_type_names = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

}  // namespace

std::string_view gguf_type_name(gguf_type t) {
  const auto i = static_cast<size_t>(t);
  if (i >= value_type_names.size()) throw std::invalid_argument("[gguf_type_name] not a gguf_type");
  return value_type_names[i];
}

const ggml_type_traits* find_ggml_type(uint32_t id) {
  if (id >= ggml_types.size() || ggml_types[id].name.empty()) return nullptr;
  return &ggml_types[id];
}

const ggml_type_traits& ggml_traits(ggml_type t) {
  const ggml_type_traits* traits = find_ggml_type(static_cast<uint32_t>(t));
  if (!traits) throw std::invalid_argument("[ggml_traits] not a ggml_type");
  return *traits;
}

}  // namespace mlxd
