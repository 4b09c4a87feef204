// POST /v1/embeddings: the mean-pooled, L2-normalised final hidden state of each input
// (models::mean_pooled_embedding), in OpenAI's shape, as float lists or base64 of little-endian float32.
#include <algorithm>
#include <bit>
#include <cstring>

#include "mlxd/serve/request.h"
#include "mlxd/serve/responses.h"
#include "server_state.h"

namespace mlxd::serve::detail {
namespace {

using json = nlohmann::json;

std::string base64_of_floats(const std::vector<float>& v) {
  static_assert(std::endian::native == std::endian::little, "base64 embeddings are little-endian float32");
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t triple = 0;
    for (size_t k = 0; k < 3; ++k)
      triple = (triple << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? digits[(triple >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

void embeddings(const httplib::Request& req, httplib::Response& res, server_state& st) {
  const auto eng = st.backend_or_503();
  const embeddings_request r = parse_embeddings_request(req.body);
  if (!r.model.empty() && r.model != st.model_name)
    throw api_error(404,
                    "The model `" + r.model + "` does not exist; this server serves `" + st.model_name + "`",
                    "invalid_request_error", "model", "model_not_found");
  const int hidden = eng->config().hidden_size;
  if (r.dimensions != 0 && r.dimensions != hidden)
    throw bad_request("dimensions: this model's embeddings have " + std::to_string(hidden) +
                          " dimensions and cannot be shortened",
                      "dimensions");
  std::vector<std::vector<int32_t>> inputs;
  int64_t n_tokens = 0;
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const prompt_input& in = r.inputs[i];
    inputs.push_back(in.is_ids ? in.ids : eng->tok().encode(in.text, true));
    if (inputs.back().empty())
      throw bad_request("input[" + std::to_string(i) + "] encodes to no tokens", "input");
    n_tokens += static_cast<int64_t>(inputs.back().size());
  }
  const std::vector<std::vector<float>> vectors = eng->embed(inputs);
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i)
    data.push_back({{"object", "embedding"},
                    {"index", i},
                    {"embedding", r.base64 ? json(base64_of_floats(vectors[i])) : json(vectors[i])}});
  send_json(res, dump({{"object", "list"},
                       {"data", std::move(data)},
                       {"model", st.model_name},
                       {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}}));
}

}  // namespace

void add_embedding_routes(httplib::Server& http, server_state& st) {
  http.Post("/v1/embeddings", guarded([&st](const httplib::Request& req, httplib::Response& res) {
              embeddings(req, res, st);
            }));
}

}  // namespace mlxd::serve::detail
