// The coordinator of pipeline-parallel inference: it plans which worker runs which layers, assigns them,
// drives prefill and decode over one stream to the first stage, and survives the loss of a worker by
// re-planning over the survivors (as soon as the stream ends, from a thread of its own) and re-prefilling
// each affected sequence from its token history.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/dist/plan.h"
#include "mlxd/engine/sampler.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::dist {

// How to reach the workers.
struct cluster_access {
  std::vector<std::string> workers;  // host:port, in pipeline order
  std::string cluster_token;
  std::string tls_cert, tls_key, tls_ca;          // PEM files (mutual TLS with cert+key)
  std::chrono::milliseconds hello_timeout{1500};  // a worker that does not answer Hello in time is down
};

struct coordinator_options {
  cluster_access access;
  std::vector<layer_range> layers;                // --layers: one range per worker; empty: planned
  std::optional<layer_range> coordinator_layers;  // --coordinator-layers: run these here, with the embedding
  // Prompt positions per prefill step (fewer when a chunk would exceed a message); the single-node forward's
  // chunk by default, so that long prompts give the same bits on a cluster and on one node.
  int prefill_chunk = models::llama_model::prefill_chunk;
  int kv_positions = 0;  // KV room each worker must keep; 0: the context length, at most 4096
  // How often a new request checks whether a worker of the list that the plan left out (it was down)
  // answers again; when one does, the pipeline is planned again with it as for a joined worker (when no
  // sequence is running, or after join_wait). 0: never.
  std::chrono::milliseconds rejoin_interval{2000};
  // Send each worker its stage's tensors (config.json and a safetensors file of exactly its layers), which
  // it keeps in its weights cache by their hash, instead of naming a model path it must be able to read. A
  // worker that holds them from an earlier plan is not sent them again. Needs a Hugging Face folder.
  bool ship_weights = false;
  // Where workers started with `mlxd worker --join` announce themselves: a Cluster service on this process
  // (proto/mlxd/v1/inference.proto) with the token and TLS files of `access` (the certificate and key serve
  // it; with a CA the joiners must present certificates signed by it). A worker that joins is added to the
  // node set after a Hello back, and the next plan, made as soon as no sequence is running (or after
  // join_wait), includes it. A joined worker that does not answer when a plan is made leaves the node set
  // (it joins again by itself when it is back). -1: no such service; 0: a free port (see join_port()).
  int join_port = -1;
  std::string join_host = "0.0.0.0";  // beyond loopback a cluster token is required
  // How long a joined worker waits for a moment with no sequence running. Then the plan changes anyway:
  // the running sequences re-prefill from their tokens on the new plan (same tokens, one prefill's time),
  // so a server that is never idle still uses the new worker.
  std::chrono::milliseconds join_wait{10000};
  // (protocol 1.7) A sequence that decodes alone asks the pipeline for this many tokens at a time: the last
  // stage feeds each sampled token straight back to the first, and the coordinator only listens, so one
  // hop and the coordinator's turn leave each token's path. A sequence that starts meanwhile waits for the
  // ring's end (this many tokens at most) to join it in groups. 0 or 1: every step from the coordinator.
  int ring_tokens = 8;
  // (protocol 1.8) Stages on one machine send each other their steps over a local link (a Unix socket their
  // call sets up) instead of the call itself. false: every step goes over gRPC, as between machines.
  bool local_links = true;
};

struct generation_request {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  engine::sampling_params sampling;
  std::vector<int32_t> stop_ids;  // generation ends after producing one of these (it is kept)
  // Called with each new token as it arrives (not again for tokens re-produced after a re-plan). What it
  // throws ends the generation (the sequence is released on every stage first) and reaches the caller.
  std::function<void(const engine::sample_result&)> on_token;
  // Polled before the prefill and before every decode step (from the generating thread): true ends the
  // generation there (a client that went away, a stop string, a timeout), releasing the sequence's KV caches
  // on every stage before generate() returns with `stopped` set.
  std::function<bool()> stop_requested;
};

struct generation_result {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  bool stopped = false;  // ended early by stop_requested
  int replans = 0;       // how many times a lost worker made this request re-plan
  double prefill_s = 0;  // to the first token
  double decode_s = 0;   // the rest
  // Decode steps: their count, total round-trip time and total compute time per stage (first stage first),
  // so (round trip - compute) / hops is the added latency per hop.
  int decode_steps = 0;
  double decode_round_trip_ms = 0;
  std::vector<double> decode_stage_ms;
  // The most sequences any stage ran one of this request's decode steps together with (1: always alone);
  // workers batch the decode steps of concurrent sequences that reach them at the same time.
  int max_stage_batch = 0;
  // Who ran each stage of the plan that finished the request, first stage first: a worker's address, or
  // "coordinator" for --coordinator-layers; decode_stage_ms[i] is stage_nodes[i]'s time.
  std::vector<std::string> stage_nodes;
  // The last stage answered on a stream of its own (protocol 1.4), not back through every stage.
  bool direct_replies = false;
  // (1.9) ... on a local link, the last stage being on this machine.
  bool reply_link = false;
  // The plan's stages take carriers (protocol 1.6): each group of decode steps crossed every hop as one
  // message.
  bool carriers = false;
  // (1.7) Decode tokens that came from rings: the last stage fed the token back to the first by itself.
  int looped_steps = 0;
};

// A worker as seen by a Hello.
struct node_status {
  std::string address;
  bool healthy = false;
  std::string error;  // why not healthy
  std::string node_id;
  node_info info;
  double latency_ms = 0;  // median Hello round trip
  uint64_t plan_id = 0;   // its current assignment (0: none)
  models::llama_stage layers;
  uint64_t weight_bytes = 0, kv_bytes = 0;
  uint32_t n_sequences = 0;
  uint64_t loads = 0;  // stages it loaded since it started (protocol 1.2; 0 from older workers)
  uint64_t layers_read =
      0;  // decoder layers it read from model files (1.3; a grown range reads only its new)
  uint64_t local_links = 0;  // (1.8) links to stages on its machine it made or took
  uint32_t protocol_minor = 0;
  std::string host_id;  // (1.8) its machine, for this boot; "" when unknown
};

// Says Hello to every worker (in parallel; `pings` round trips each for the latency).
std::vector<node_status> probe_cluster(const cluster_access& access, int pings = 1);

class coordinator {
 public:
  // Reads the model's config, checks every worker (a worker that is unreachable, refuses the token or speaks
  // another protocol version is an error naming it), plans, and assigns. Throws plan_error when the model
  // does not fit, std::runtime_error for a worker that fails, std::invalid_argument for bad options.
  coordinator(const std::filesystem::path& model, coordinator_options o);
  ~coordinator();
  coordinator(const coordinator&) = delete;
  coordinator& operator=(const coordinator&) = delete;

  const models::llama_config& config() const;
  // The current plan, e.g. "127.0.0.1:4001 0-5 (embedding) | 127.0.0.1:4002 6-11 (head)", or "no plan" while
  // none fits the workers left. A plan whose pipeline is lost (a worker gone) is replaced at once in the
  // background, not only when the next request needs it. Thread-safe; waits while a re-plan is under way.
  std::string plan_description() const;
  // How many plans have replaced the first one since the start (after a lost pipeline, a rejoin or a join).
  uint64_t n_replans() const;
  // Every worker known: those of --workers, then those that joined, in pipeline order.
  std::vector<std::string> workers() const;
  // The port of the Cluster service (join_port), 0 when there is none.
  int join_port() const;

  // Generates from `r.prompt`. Thread-safe: several sequences run at once through the pipeline. A lost
  // worker is noticed (closed connection at once, silence within about 1.5 s), the pipeline re-planned over
  // the survivors, and the sequence re-prefilled so it continues with the tokens it would have produced.
  // Throws plan_error when no plan fits the survivors (a later call plans again), std::invalid_argument for a
  // bad request, std::runtime_error when a worker refuses a step or replies inconsistently.
  generation_result generate(const generation_request& r);
  // The logits [n_tokens, vocab] of `tokens` through the pipeline (one prefill step that returns them).
  array logits(const std::vector<int32_t>& tokens);
  // The final-norm hidden states [n_tokens, hidden_size] of `tokens` through the pipeline (what the LM head
  // multiplies; one prefill pass whose last stage returns them). Needs workers of protocol 1.1 or later.
  array final_hidden(const std::vector<int32_t>& tokens);
  // The workers' health and assignments (every worker known, joined ones too).
  std::vector<node_status> status(int pings = 3);
  // Bytes of weights sent to workers so far (ship_weights).
  uint64_t shipped_bytes() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mlxd::dist
