// The coordinator's end of a pipeline: the Run stream to the first remote stage, where steps go out in order,
// and (protocol 1.4) the Replies stream of the last one. Replies come back on either, matched by step id;
// when a stream ends every waiting step fails with the reason.
//
// Both are async calls on the coordinator's completion queue, driven by comm's cq_driver: a thread that waits
// for a reply (wait()) reads it itself. With a reader thread per stream, each reply went from gRPC's poller
// to the reader and through a promise to the waiter.
//
// (1.9) A last stage on this machine sends its replies on a local link that its Replies call sets up (as
// stages do their steps, local_link.h). Over gRPC each reply cost the last stage 110-250 us of CPU and woke
// two more threads (its queue's, for the write's completion and the window update that came back), all of it
// beside the first stage's compute. A waiting thread then polls the link, one at a time, while the queue's
// background thread drives the calls.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "comm/grpc/cq_driver.h"
#include "comm/grpc/write_queue.h"
#include "comm/request_state.h"
#include "dist/local_link.h"
#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist {

// The pipeline stopped working (a stage was lost or its stream ended): re-plan and retry.
class pipeline_lost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class pipeline_stream {
 public:
  struct endpoint {
    std::shared_ptr<grpc::Channel> channel;
    std::string address;
    bool link = false;  // (1.9) offer the last stage a local link for its replies
  };
  // `last`: the plan's last stage, when it is not the first. Its replies then come straight back on a
  // Replies stream; a worker older than protocol 1.4 answers through the Run streams instead. `on_lost`
  // (optional) is called once with the reason when a stream ends, on the thread that drives the queue (also
  // when the destructor cancels them), after every waiting step has failed; it must not block. `driver`
  // (started) outlives the stream's operations: the destructor waits for them.
  pipeline_stream(std::shared_ptr<comm::rpc::cq_driver> driver, const endpoint& first,
                  const std::optional<endpoint>& last, const std::string& token, uint64_t plan_id,
                  std::function<void(const std::string&)> on_lost = {});
  // (1.6) Every stage of the plan takes carriers: send_group writes a group as one.
  void use_carriers() { carriers_ = true; }
  ~pipeline_stream();  // cancels the streams; waiting steps fail
  pipeline_stream(const pipeline_stream&) = delete;
  pipeline_stream& operator=(const pipeline_stream&) = delete;

  // Sends `req` with a fresh step id. The future throws pipeline_lost when the stream ends first; wait() for
  // it before get(). Throws pipeline_lost when the stream has already ended. Thread-safe.
  std::future<v1::StepReply> send(v1::StepRequest& req);
  // The same for several steps, in order, as one carrier where the stages take them.
  std::vector<std::future<v1::StepReply>> send_group(std::vector<v1::StepRequest>& reqs);
  // (1.7) Sends `req`, a one-token decode step, as a ring of `n` tokens (StepRequest.ring, with ids step_id
  // to step_id + n - 1 kept for the steps the last stage sends on): its reply and theirs, in order. A ring
  // that meets a stop id ends early, and the rest never come.
  std::vector<std::future<v1::StepReply>> send_ring(v1::StepRequest& req, uint32_t n);
  // The replies of steps [first, first + n) of `sequence`, the rest of a ring, are no longer waited for:
  // those that come are dropped, and the others forgotten once the sequence's end is answered (every reply
  // of a ring comes before it).
  void abandon(uint64_t sequence, uint64_t first, uint32_t n);
  // Returns once `reply` (one of this stream's) is ready, having read replies meanwhile.
  void wait(std::future<v1::StepReply>& reply);
  // The last stage answers on its own stream.
  bool direct_replies() const { return direct_; }
  // (1.9) ... on a local link.
  bool reply_link() const { return reply_link_ != nullptr; }
  bool carriers() const { return carriers_; }

 private:
  using tag = comm::rpc::cq_driver::tag;
  // One of the two streams, with its reads: replies are delivered as they come; a protocol error cancels the
  // stream, whose reads then end, and its Finish gives the reason.
  template <class Request>
  struct reader {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReaderWriter<Request, v1::StepReply>> stream;
    v1::StepReply in;
    grpc::Status status;
    std::string name;  // for the reason it ended
    std::string why;   // set by a protocol error
    bool started = false;
  };
  // Starts the call with its first read; returns once it has started.
  template <class Request>
  void open(reader<Request>& r, tag& started);
  template <class Request>
  void on_read(reader<Request>& r, bool ok, tag& read, tag& finished, bool run_stream);
  template <class Request>
  void on_finished(reader<Request>& r);
  // Opens the last stage's Replies stream and waits for its first message; false (and nothing open) when the
  // worker does not offer one.
  bool open_replies(const endpoint& last, const std::string& token, uint64_t plan_id);
  // (1.9) The offer of a link for the replies on the Replies call; null (and why, on stderr) when this
  // process cannot listen or poll.
  std::unique_ptr<link_offer> offer_reply_link();
  // Returns once `ready` (called under mu_) holds, driving the queue meanwhile, or reading the reply link
  // when no other thread does.
  void await(const std::function<bool()>& ready);
  // (1.9) Reads the replies on the link until `ready` holds or the link ends, then lets the next waiter
  // read it.
  void read_link_until(const std::function<bool()>& ready);
  // Delivers the replies that arrived on the link; false once it has ended (a protocol error, or its close,
  // after which the Replies call's end says why).
  bool take_link_replies();
  // Wakes the waiting threads whose condition now holds: with many sequences in flight, waking all of them
  // for every reply woke each sequence's thread once per reply of its group. Under mu_.
  void wake_locked();
  // The tag of an operation whose completion runs `handler` (on the driving thread), then counts it done.
  tag then(std::function<void(bool)> handler);
  void* start(tag& t);
  // Hands a reply, or each reply of a carrier, to its waiting step; the step id of a reply no step waits
  // for, if any.
  std::optional<uint64_t> deliver(v1::StepReply& r);
  bool deliver_one(v1::StepReply& r);
  // Fails every waiting and later step with `why`, ends both streams and calls on_lost, the first time only.
  void lose(const std::string& why);

  std::string address_, last_address_;
  std::function<void(const std::string&)> on_lost_;
  std::shared_ptr<comm::rpc::cq_driver> driver_;
  std::unique_ptr<v1::Stage::Stub> stub_, last_stub_;
  reader<v1::StepRequest> run_;
  reader<v1::RepliesRequest> replies_;
  bool direct_ = false;                     // the Replies stream is open
  std::unique_ptr<local_link> reply_link_;  // (1.9) its replies come here
  int wake_fd_ = -1;                        // an eventfd: wakes the thread that polls reply_link_
  std::mutex send_mu_;                      // keeps the order of step ids on the wire
  std::mutex mu_;                           // guards what follows
  std::map<uint64_t, std::promise<v1::StepReply>> pending_;
  std::map<uint64_t, uint64_t> abandoned_;  // step id -> sequence id, of rings left behind
  std::map<uint64_t, uint64_t> ends_;  // step id -> sequence id, of ends of sequences with abandoned steps
  uint64_t next_id_ = 1;
  bool carriers_ = false;  // set before the first send
  bool lost_ = false;
  std::string why_;
  struct waiter {
    comm::request::state* state;
    const std::function<bool()>* ready;  // called under mu_
  };
  std::vector<waiter> waiters_;
  const std::function<bool()>* link_reader_ = nullptr;  // the condition of the thread polling reply_link_
  std::thread::id link_reader_thread_;                  // ... which needs no eventfd to wake itself
  bool link_over_ = false;
  int ops_ = 0;     // operations started and not completed: the destructor waits for none
  int opened_ = 0;  // open_replies: its operation has completed, 1 failed, 2 succeeded
  tag run_started_, run_read_, run_finished_, replies_started_, replies_read_, replies_finished_, written_,
      opening_;
  comm::rpc::write_queue<v1::StepRequest> writes_;
};

}  // namespace mlxd::dist
