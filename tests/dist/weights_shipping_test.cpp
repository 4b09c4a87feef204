// Shipping a stage's weights to workers that cannot read the model: the coordinator sends each worker its
// layers' tensors, the workers cache them by hash and give the logits a single node gives; a later plan
// finds them cached and sends nothing; a dishonest or malformed upload is refused and leaves nothing behind.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <cmath>
#include <filesystem>

#include "dist/stage_rpc.h"
#include "dist/weights_cache.h"
#include "mlxd/core/ops.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/worker.h"
#include "mlxd/models/llama.h"
#include "mlxd/v1/inference.grpc.pb.h"
#include "support/temp_dir.h"

namespace mlxd::dist {
namespace {

namespace fs = std::filesystem;
const fs::path shipped_model = fs::path(MLXD_GOLDEN_DIR) / "llama_gqa";  // an HF folder: vocab 40, 2 layers

worker_options caching_worker(const fs::path& cache) {
  worker_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.cache_dir = cache;
  return o;
}

// The entries (and anything else) in a cache folder.
std::vector<std::string> cache_entries(const fs::path& dir) {
  std::vector<std::string> out;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// The largest elementwise difference of two arrays of one shape.
float largest_gap(const array& a, const array& b) {
  EXPECT_EQ(a.shape(), b.shape());
  return max(abs(subtract(a, b))).item<float>();
}

TEST(WeightsShipping, StagesAreSentCachedByHashAndUsedAgain) {
  const test::temp_dir dir("shipping");
  worker a(caching_worker(dir.path() / "a")), b(caching_worker(dir.path() / "b"));
  coordinator_options o;
  o.access.workers = {"127.0.0.1:" + std::to_string(a.port()), "127.0.0.1:" + std::to_string(b.port())};
  o.ship_weights = true;
  const std::vector<int32_t> tokens = {1, 5, 9, 2};
  const models::llama_model whole = models::load_llama(shipped_model);
  models::kv_cache cache = whole.make_cache(8);
  const array expected = whole.forward(tokens, cache);
  {
    coordinator c(shipped_model, o);
    EXPECT_GT(c.shipped_bytes(), 0u);
    EXPECT_LE(largest_gap(c.logits(tokens), expected), 1e-5f);
  }
  for (const char* w : {"a", "b"}) {
    const auto e = cache_entries(dir.path() / w);
    ASSERT_EQ(e.size(), 1u) << w;
    EXPECT_EQ(e[0].size(), 16u) << e[0];  // the hash names the entry
    EXPECT_TRUE(fs::exists(dir.path() / w / e[0] / "model.safetensors"));
  }
  EXPECT_NE(cache_entries(dir.path() / "a"), cache_entries(dir.path() / "b"))
      << "each worker holds its own layers";
  // A new plan assigns the same ranges: the workers hold them already.
  coordinator again(shipped_model, o);
  EXPECT_EQ(again.shipped_bytes(), 0u);
  EXPECT_LE(largest_gap(again.logits(tokens), expected), 1e-5f);
}

TEST(WeightsShipping, DishonestOrMalformedUploadsAreRefusedAndLeaveNothing) {
  const test::temp_dir dir("shipping");
  worker w(caching_worker(dir.path() / "cache"));
  auto stub = v1::Stage::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(w.port()), grpc::InsecureChannelCredentials()));
  auto upload = [&](const std::vector<v1::WeightsChunk>& chunks) {
    grpc::ClientContext ctx;
    ctx.AddMetadata(rpc::protocol_key, "1.1");
    v1::UploadReply reply;
    auto writer = stub->Upload(&ctx, &reply);
    for (const auto& c : chunks) writer->Write(c);
    writer->WritesDone();
    return writer->Finish();
  };
  auto chunk = [](const std::string& hash, const std::string& file, const std::string& data,
                  uint64_t file_bytes, uint64_t offset = 0) {
    v1::WeightsChunk c;
    c.set_hash(hash);
    c.set_file(file);
    c.set_data(data);
    c.set_file_bytes(file_bytes);
    c.set_offset(offset);
    return c;
  };
  const std::string config = "{}", weights = "0123456789";
  const std::string honest = hex64(fnv1a(weights, fnv1a(config)));
  const std::pair<std::vector<v1::WeightsChunk>, const char*> cases[] = {
      {{chunk("0123456789abcdef", "config.json", config, 2),
        chunk("0123456789abcdef", "model.safetensors", weights, 10)},
       "hash to"},
      {{chunk("not-a-hash", "config.json", config, 2)}, "is not a weights hash"},
      {{chunk(honest, "model.safetensors", weights, 10)}, "expected config.json"},
      {{chunk(honest, "config.json", config, 2), chunk(honest, "model.safetensors", weights, 10, 4)},
       "does not continue"},
      {{chunk(honest, "config.json", config, 2)}, "ended before both"},
      {{chunk(honest, "config.json", config, 2), chunk(honest, "model.safetensors", weights, 4)},
       "runs past the end"},
      {{chunk(honest, "config.json", config, 2), chunk(honest, "../x", weights, 10)},
       "expected model.safetensors or model.gguf"},
  };
  for (const auto& [chunks, message] : cases) {
    const grpc::Status s = upload(chunks);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_NE(s.error_message().find(message), std::string::npos) << s.error_message();
    EXPECT_TRUE(cache_entries(dir.path() / "cache").empty()) << "nothing kept after: " << message;
  }
  // The honest upload of the same bytes is kept under its hash.
  const grpc::Status ok =
      upload({chunk(honest, "config.json", config, 2), chunk(honest, "model.safetensors", weights, 10)});
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(cache_entries(dir.path() / "cache"), std::vector<std::string>{honest});

  // Assigning a hash the worker does not hold is NOT_FOUND, which makes a coordinator send it.
  v1::Assignment as;
  as.set_plan_id(7);
  as.set_model_path("/nonexistent");
  as.set_layer_begin(0);
  as.set_layer_end(2);
  as.set_embedding(true);
  as.set_head(true);
  as.set_weights_hash("fedcba9876543210");
  grpc::ClientContext ctx;
  ctx.AddMetadata(rpc::protocol_key, "1.1");
  v1::AssignReply reply;
  EXPECT_EQ(stub->Assign(&ctx, as, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A quantized GGUF model ships too: each worker gets a GGUF file of the model's metadata and its layers'
// tensors unchanged (still quantized), and the cluster gives the single node's logits.
TEST(WeightsShipping, AQuantizedGgufModelShipsItsLayersAsTheyAre) {
  const fs::path gguf = fs::path(MLXD_GOLDEN_DIR) / "llama_quant" / "model.gguf";
  const test::temp_dir dir("shipping");
  worker a(caching_worker(dir.path() / "a")), b(caching_worker(dir.path() / "b"));
  coordinator_options o;
  o.access.workers = {"127.0.0.1:" + std::to_string(a.port()), "127.0.0.1:" + std::to_string(b.port())};
  o.ship_weights = true;
  const models::llama_model whole = models::load_llama(gguf);
  const std::vector<int32_t> tokens = {1, 5, 9, 2};
  models::kv_cache cache = whole.make_cache(8);
  const array expected = whole.forward(tokens, cache);
  {
    coordinator c(gguf, o);
    EXPECT_GT(c.shipped_bytes(), 0u);
    EXPECT_LT(c.shipped_bytes(), 2 * fs::file_size(gguf)) << "the metadata travels twice, the tensors once";
    EXPECT_LE(largest_gap(c.logits(tokens), expected), 1e-5f);
  }
  size_t quantized = 0;
  for (const char* w : {"a", "b"}) {
    const auto e = cache_entries(dir.path() / w);
    ASSERT_EQ(e.size(), 1u) << w;
    const fs::path file = dir.path() / w / e[0] / "model.gguf";
    ASSERT_TRUE(fs::exists(file));
    const gguf_file g = load_gguf(file, {.read_tensors = false});
    for (const gguf_tensor_info& t : g.tensor_infos) {
      quantized += t.type_name.starts_with("Q");
      EXPECT_TRUE(!t.name.starts_with("blk.") || std::atoi(t.name.c_str() + 4) < 2) << t.name;
    }
  }
  EXPECT_GT(quantized, 0u) << "quantized tensors travel quantized";
  coordinator again(gguf, o);
  EXPECT_EQ(again.shipped_bytes(), 0u);
  EXPECT_LE(largest_gap(again.logits(tokens), expected), 1e-5f);
}

}  // namespace
}  // namespace mlxd::dist

namespace mlxd::dist {
namespace {

// An MLX-community folder is served both ways: workers that read it load their layers' quantized tensors and
// dequantize only those; workers that cannot get them shipped, already dequantized, with a config that no
// longer says "quantization". Either way the cluster gives the single node's logits.
TEST(WeightsShipping, AnMlxQuantizedFolderIsReadOrShippedDequantized) {
  const fs::path mlx = fs::path(MLXD_GOLDEN_DIR) / "mlx_qwen2_mixed";
  const models::llama_model whole = models::load_llama(mlx);
  const std::vector<int32_t> tokens = {1, 5, 9, 2};
  models::kv_cache cache = whole.make_cache(8);
  const array expected = whole.forward(tokens, cache);
  for (const bool ship : {false, true}) {
    SCOPED_TRACE(ship ? "shipped" : "read by the workers");
    const test::temp_dir dir("shipping");
    worker a(caching_worker(dir.path() / "a")), b(caching_worker(dir.path() / "b"));
    coordinator_options o;
    o.access.workers = {"127.0.0.1:" + std::to_string(a.port()), "127.0.0.1:" + std::to_string(b.port())};
    o.ship_weights = ship;
    coordinator c(mlx, o);
    EXPECT_EQ(c.shipped_bytes() > 0, ship);
    EXPECT_EQ(largest_gap(c.logits(tokens), expected), 0.0f);
    if (!ship) continue;
    for (const char* w : {"a", "b"}) {
      const auto e = cache_entries(dir.path() / w);
      ASSERT_EQ(e.size(), 1u) << w;
      const models::llama_config shipped = models::load_llama_config(dir.path() / w / e[0]);
      EXPECT_FALSE(shipped.mlx_quantized) << w;
    }
  }
}

}  // namespace
}  // namespace mlxd::dist
