// The coordinator's end of the Run stream to the first remote stage: steps go out in order, replies come
// back matched by step id, and when the stream ends every waiting step fails with the reason.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

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
  // `on_lost` (optional) is called once with the reason when the stream ends, from the stream's reader
  // thread (also when the destructor cancels it), after every waiting step has failed; it must not block on
  // anything that waits for this stream's destruction.
  pipeline_stream(const std::shared_ptr<grpc::Channel>& channel, const std::string& token, uint64_t plan_id,
                  std::string address, std::function<void(const std::string&)> on_lost = {});
  ~pipeline_stream();  // cancels the stream; waiting steps fail
  pipeline_stream(const pipeline_stream&) = delete;
  pipeline_stream& operator=(const pipeline_stream&) = delete;

  // Sends `req` with a fresh step id. The future throws pipeline_lost when the stream ends first. Throws
  // pipeline_lost when the stream has already ended. Thread-safe.
  std::future<v1::StepReply> send(v1::StepRequest& req);

 private:
  void read_loop();
  void fail_all(const std::string& why);

  std::string address_;
  std::function<void(const std::string&)> on_lost_;
  std::unique_ptr<v1::Stage::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepReply>> stream_;
  std::mutex write_mu_;
  std::mutex mu_;  // guards what follows
  std::map<uint64_t, std::promise<v1::StepReply>> pending_;
  uint64_t next_id_ = 1;
  bool lost_ = false;
  std::string why_;
  std::thread reader_;
};

}  // namespace mlxd::dist
