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
//
// (1.7) A sequence that decodes alone goes in rings: its step asks the pipeline for up to `ring_tokens`
// tokens, which the last stage feeds back to the first by itself, so the coordinator leaves each token's
// path. The ring counts as a group in the pipeline until its last reply is taken; a sequence that starts
// decoding meanwhile waits for it, and the two then go in groups. No ring starts while another sequence is
// on its way (an arrival: in its prefill).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
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
  // Sends a step as a ring of n tokens (pipeline_stream::send_ring) / gives up the rest of one.
  using ring_fn = std::function<std::vector<std::future<v1::StepReply>>(v1::StepRequest&, uint32_t n)>;
  using abandon_fn = std::function<void(uint64_t sequence, uint64_t first_step, uint32_t n)>;
  static constexpr std::chrono::microseconds default_patience{1000};
  // `send` puts one group's steps on the pipeline, in order (and may throw), and returns their replies;
  // `max_groups` groups may be in it at once: one when the stages share a machine's cores, more when they
  // run on machines of their own. `wait`, when given, returns once a reply is ready (pipeline_stream::wait,
  // which reads replies meanwhile).
  decode_gate(send_fn send, int max_groups, std::chrono::microseconds patience = default_patience,
              wait_fn wait = {});
  // Lets a sequence that decodes alone go in rings of up to `tokens` tokens (2 or more). Before any member.
  void use_rings(ring_fn send, abandon_fn abandon, uint32_t tokens);

  // A sequence before its decode loop (its prefill): no ring starts while one lives.
  class arrival {
   public:
    explicit arrival(decode_gate& gate);
    ~arrival();
    arrival(const arrival&) = delete;
    arrival& operator=(const arrival&) = delete;

   private:
    decode_gate& gate_;
  };

  // A sequence in its decode loop: it takes part in grouping while the member lives. `stop_ids` end the
  // sequence (a ring stops at them).
  class member {
   public:
    explicit member(decode_gate& gate, std::vector<int32_t> stop_ids = {});
    ~member();  // gives up what is left of a ring
    member(const member&) = delete;
    member& operator=(const member&) = delete;
    // Sends `step` with the next group and returns its reply; what sending or the pipeline throws reaches
    // the caller (pipeline_lost). `wanted`: tokens the sequence may still produce, this step's included.
    // Inside a ring the step is not sent: the pipeline computes the same step itself.
    v1::StepReply run(v1::StepRequest step, int wanted = 1);
    // Replies that came from rings without a step sent (the last stage fed them back itself).
    int looped() const { return looped_; }
    // The next run() takes its reply from a ring, whose step left when the last reply did.
    bool in_ring() const { return in_ring_; }

   private:
    // The ring ended or is given up: the rest is abandoned and its group leaves the pipeline.
    void end_ring();

    decode_gate& gate_;
    std::vector<int32_t> stop_ids_;
    std::deque<std::future<v1::StepReply>> ring_;  // the replies still to come from this member's ring
    uint64_t ring_group_ = 0, ring_next_ = 0;      // its group and the step id of ring_.front()
    uint64_t sequence_ = 0;
    bool in_ring_ = false;
    int looped_ = 0;
  };

 private:
  struct waiting {
    v1::StepRequest step;
    std::future<v1::StepReply> reply;
    std::exception_ptr error;
    bool sent = false;
    uint64_t group = 0;
    uint64_t step_id = 0;  // set when sent
    uint32_t ring = 0;     // tokens it may go on for, when alone; 0: none
    const std::vector<int32_t>* stop_ids = nullptr;
    std::vector<std::future<v1::StepReply>> rest;  // a ring's later replies
  };
  // Sends every waiting step as one group, unless max_groups_ groups are in the pipeline or (`patient`) a
  // member is busy: neither waiting nor in the pipeline, so about to have its step ready. Holds mu_.
  void flush_if_ready(bool patient);

  send_fn send_;
  wait_fn wait_;
  ring_fn ring_;
  abandon_fn abandon_;
  uint32_t ring_tokens_ = 0;
  const int max_groups_;
  const std::chrono::microseconds patience_;
  std::mutex mu_;  // guards what follows
  std::condition_variable sent_;
  std::vector<waiting*> waiting_;
  int members_ = 0;                      // sequences in their decode loop
  int arriving_ = 0;                     // sequences before it
  int in_flight_ = 0;                    // members whose step is in the pipeline
  std::map<uint64_t, int> outstanding_;  // groups in the pipeline: replies not yet taken
  uint64_t next_group_ = 1;
};

}  // namespace mlxd::dist
