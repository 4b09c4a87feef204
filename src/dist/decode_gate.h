// The coordinator's gate for decode steps: the running sequences' steps leave in groups, which every stage
// runs as one batch (its weights read once for all of them).
//
// Left alone, sequences drift apart: each reaches the first stage while it is idle and runs alone, so with
// 4 sequences over 2 workers the stages ran one sequence at a time (serve_bench: 1.3x one stream's tokens/s).
// Here a step waits while `max_groups` groups are in the pipeline or, briefly, while another sequence is
// about to have its step ready; then every waiting step leaves at once, marked with a group id and size
// (protocol 1.5) and handed to the pipeline in one call (one message a hop where the stages take carriers,
// 1.6), and the stages wait for the whole group before running it. Sequences therefore fall into step with
// each other: a sequence that starts decoding joins the next group.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "mlxd/v1/inference.pb.h"

namespace mlxd::dist {

class decode_gate {
 public:
  using send_fn = std::function<std::vector<std::future<v1::StepReply>>(std::vector<v1::StepRequest>&)>;
  using wait_fn = std::function<void(std::future<v1::StepReply>&)>;
  static constexpr std::chrono::microseconds default_patience{1000};
  // `send` puts one group's steps on the pipeline, in order (and may throw), and returns their replies;
  // `max_groups` groups may be in it at once: one when the stages share a machine's cores, more when they
  // run on machines of their own. `wait`, when given, returns once a reply is ready (pipeline_stream::wait,
  // which reads replies meanwhile).
  decode_gate(send_fn send, int max_groups, std::chrono::microseconds patience = default_patience,
              wait_fn wait = {});

  // A sequence in its decode loop: it takes part in grouping while the member lives.
  class member {
   public:
    explicit member(decode_gate& gate);
    ~member();
    member(const member&) = delete;
    member& operator=(const member&) = delete;
    // Sends `step` with the next group and returns its reply; what sending or the pipeline throws reaches
    // the caller (pipeline_lost).
    v1::StepReply run(v1::StepRequest step);

   private:
    decode_gate& gate_;
  };

 private:
  struct waiting {
    v1::StepRequest step;
    std::future<v1::StepReply> reply;
    std::exception_ptr error;
    bool sent = false;
    uint64_t group = 0;
  };
  // Sends every waiting step as one group, unless max_groups_ groups are in the pipeline or (`patient`) a
  // member is busy: neither waiting nor in the pipeline, so about to have its step ready. Holds mu_.
  void flush_if_ready(bool patient);

  send_fn send_;
  wait_fn wait_;
  const int max_groups_;
  const std::chrono::microseconds patience_;
  std::mutex mu_;  // guards what follows
  std::condition_variable sent_;
  std::vector<waiting*> waiting_;
  int members_ = 0;                      // sequences in their decode loop
  int in_flight_ = 0;                    // members whose step is in the pipeline
  std::map<uint64_t, int> outstanding_;  // groups in the pipeline: replies not yet taken
  uint64_t next_group_ = 1;
};

}  // namespace mlxd::dist
