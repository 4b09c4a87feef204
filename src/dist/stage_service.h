// The worker's side of the stage protocol: what Hello, Assign, Upload, Run, Replies and Loop do, with the
// state they share (the loaded stage and one KV cache per sequence). The calls themselves are stage_server's.
// Thread-safe; every method catches what it throws.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dist/weights_cache.h"
#include "mlxd/dist/worker.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/models/llama.h"
#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist {

class stage_service {
 public:
  using clock = std::chrono::steady_clock;
  stage_service(const worker_options& o, std::string node_id, worker_capabilities caps);

  // The answers of the unary calls; Upload reads its chunks with `read` (false at the end of the stream).
  grpc::Status hello(const grpc::ServerContext& ctx, const v1::StageHelloRequest& request,
                     v1::StageHelloReply* reply);
  grpc::Status assign(const grpc::ServerContext& ctx, const v1::Assignment& request, v1::AssignReply* reply);
  grpc::Status upload(const grpc::ServerContext& ctx, const std::function<bool(v1::WeightsChunk*)>& read,
                      v1::UploadReply* reply);

  struct loaded {
    v1::Assignment assignment;
    std::shared_ptr<const models::llama_model> model;
    uint64_t weight_bytes = 0;
    std::string files;  // what the weights were read from (see files_fingerprint)
  };
  // A stream the Run streams of a plan write to, another call's: the Replies stream of the last stage (its
  // replies) and, (1.7) on the last stage too, the Loop stream to the first (the steps of rings). `push`
  // queues a message on it (false when the stream has failed). Used only under `mu` while `open`.
  template <class Message>
  struct sink {
    std::mutex mu;
    std::function<bool(const Message&)> push;
    bool open = true;
    // False when the stream is gone (the message must go another way).
    bool write(const Message& m) {
      std::lock_guard lock(mu);
      if (open) open = push(m);
      return open;
    }
  };
  using reply_sink = sink<v1::StepReply>;
  using loop_sink = sink<v1::StepRequest>;
  // What a Run stream of a plan joins: the stage that holds it and, on the last stage, the plan's sinks that
  // are open (the coordinator's Replies stream; the first stage's Loop, which opens before the Run streams).
  struct joined {
    std::shared_ptr<loaded> stage;
    std::shared_ptr<reply_sink> replies;
    std::shared_ptr<loop_sink> loop;
  };
  // FAILED_PRECONDITION when this node holds another plan.
  grpc::Status join_plan(uint64_t plan, joined* out);
  // The stage held now (a new plan replaces it).
  std::shared_ptr<loaded> stage();
  // Registers the Replies (Loop) sink of `plan` (FAILED_PRECONDITION when this is not the plan's last stage,
  // ALREADY_EXISTS when it has one) / drops it when its stream ends.
  grpc::Status open_replies(uint64_t plan, const std::shared_ptr<reply_sink>& s);
  void close_replies(uint64_t plan, const std::shared_ptr<reply_sink>& s);
  grpc::Status open_loop(uint64_t plan, const std::shared_ptr<loop_sink>& s);
  void close_loop(uint64_t plan, const std::shared_ptr<loop_sink>& s);

  // Runs forward steps: the decode steps of different sequences (one row each, 16 rows at most) in one
  // forward_layers_batch, so each stage reads its weights once for all of them; the others alone. Each
  // request is updated for the next stage (hidden states, its stage time and batch size) or its reply
  // filled; a step that fails gets its error in `errors`.
  void run_forward(const loaded& st, std::vector<v1::StepRequest*>& reqs, std::vector<v1::StepReply>& replies,
                   std::vector<std::string>& errors);
  void drop_sequence(uint64_t id);
  bool holds_sequence(uint64_t id);
  const std::string& node_id() const { return node_id_; }
  // (1.8) A local link was made or taken (Hello reports the count).
  void count_link() { ++local_links_; }
  const worker_options& options() const { return options_; }

  // Frees the KV caches of sequences idle for longer than the timeout; called periodically.
  void evict_idle();

 private:
  struct sequence {
    explicit sequence(models::kv_cache c) : cache(std::move(c)) {}
    models::kv_cache cache;
    std::optional<engine::sampler> sampler;                  // the last stage's
    std::vector<int32_t> history;                            // ids sampled so far (for the penalties)
    std::atomic<clock::time_point> last_used{clock::now()};  // set by steps, read by evict_idle
    uint64_t bytes = 0;
  };

  // A forward step's sequence and input rows on this stage (embedded tokens or the hidden states received).
  // Throws std::invalid_argument for a malformed or inconsistent step.
  struct step_input {
    std::shared_ptr<sequence> seq;
    array x;  // f32 [n_tokens, hidden]
  };
  step_input prepare(const loaded& st, const v1::StepRequest& req);
  // After the layers ran: the hidden states y for the next stage, or (the last stage) the reply filled with
  // the sampled token or the logits.
  std::optional<array> finish(const loaded& st, const v1::StepRequest& req, sequence& seq, const array& y,
                              v1::StepReply& reply);
  // Samples the next token from one row of logits into the reply, appending it to the sequence's history.
  static void sample_into(sequence& seq, const float* logits, int64_t vocab, v1::StepReply& reply);
  // The last stage's decode steps `rows` (one row each, sampling only): one head product for all of them
  // (matmul computes up to 16 rows row by row, so each gets the bits it gets alone), then each one sampled.
  static void sample_batch(const loaded& st, const std::vector<step_input>& inputs,
                           const std::vector<array>& outputs, const std::vector<size_t>& rows,
                           std::vector<v1::StepReply>& replies);
  std::shared_ptr<sequence> open_sequence(const loaded& st, const v1::StepRequest& req);

  worker_options options_;
  weights_cache cache_;
  std::string node_id_;
  worker_capabilities caps_;
  std::mutex assign_mu_;  // one Assign at a time
  std::mutex mu_;         // guards what follows
  std::shared_ptr<loaded> stage_;
  std::map<uint64_t, std::shared_ptr<sequence>> sequences_;
  std::map<uint64_t, std::shared_ptr<reply_sink>> sinks_;  // by plan id
  std::map<uint64_t, std::shared_ptr<loop_sink>> loops_;   // by plan id
  uint64_t kv_bytes_ = 0;
  uint64_t loads_ = 0;        // stages loaded since the start
  uint64_t layers_read_ = 0;  // decoder layers read from model files since the start
  const std::string host_id_;
  std::atomic<uint64_t> local_links_{0};
};

}  // namespace mlxd::dist
