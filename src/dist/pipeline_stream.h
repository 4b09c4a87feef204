// The coordinator's end of a pipeline: the Run stream to the first remote stage, where steps go out in order,
// and (protocol 1.4) the Replies stream of the last one. Replies come back on either, matched by step id;
// when a stream ends every waiting step fails with the reason.
#pragma once

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
  };
  // `last`: the plan's last stage, when it is not the first. Its replies then come straight back on a
  // Replies stream; a worker older than protocol 1.4 answers through the Run streams instead. `on_lost`
  // (optional) is called once with the reason when a stream ends, from a reader thread (also when the
  // destructor cancels them), after every waiting step has failed; it must not block on anything that waits
  // for this stream's destruction.
  pipeline_stream(const endpoint& first, const std::optional<endpoint>& last, const std::string& token,
                  uint64_t plan_id, std::function<void(const std::string&)> on_lost = {});
  // (1.6) Every stage of the plan takes carriers: send_group writes a group as one.
  void use_carriers() { carriers_ = true; }
  ~pipeline_stream();  // cancels the streams; waiting steps fail
  pipeline_stream(const pipeline_stream&) = delete;
  pipeline_stream& operator=(const pipeline_stream&) = delete;

  // Sends `req` with a fresh step id. The future throws pipeline_lost when the stream ends first. Throws
  // pipeline_lost when the stream has already ended. Thread-safe.
  std::future<v1::StepReply> send(v1::StepRequest& req);
  // The same for several steps, in order, as one carrier where the stages take them.
  std::vector<std::future<v1::StepReply>> send_group(std::vector<v1::StepRequest>& reqs);
  // The last stage answers on its own stream.
  bool direct_replies() const { return replies_ != nullptr; }
  bool carriers() const { return carriers_; }

 private:
  // Opens the last stage's Replies stream and waits for its first message; false (and nothing open) when the
  // worker does not offer one.
  bool open_replies(const endpoint& last, const std::string& token, uint64_t plan_id);
  void read_loop();
  void read_replies();
  // Hands a reply, or each reply of a carrier, to its waiting step; the step id of a reply no step waits
  // for, if any.
  std::optional<uint64_t> deliver(v1::StepReply& r);
  bool deliver_one(v1::StepReply& r);
  // Fails every waiting and later step with `why`, ends both streams and calls on_lost, the first time only.
  void lose(const std::string& why);

  std::string address_, last_address_;
  std::function<void(const std::string&)> on_lost_;
  std::unique_ptr<v1::Stage::Stub> stub_, last_stub_;
  grpc::ClientContext ctx_, replies_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepReply>> stream_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::RepliesRequest, v1::StepReply>> replies_;
  std::mutex write_mu_;
  std::mutex mu_;  // guards what follows
  std::map<uint64_t, std::promise<v1::StepReply>> pending_;
  uint64_t next_id_ = 1;
  bool carriers_ = false;  // set before the first send
  bool lost_ = false;
  std::string why_;
  std::thread reader_, replies_reader_;
};

}  // namespace mlxd::dist
