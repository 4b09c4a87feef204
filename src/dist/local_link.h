// (1.8) Steps between two stages on one machine go over a Unix socket that their Run (or Loop) call sets up,
// not over the call itself. Over gRPC a step's hidden state cost each side 55-100 us of CPU in HTTP/2
// framing, completions and window updates, which on a small machine is taken from the next stage's compute; a
// socket costs one write and one read (110M over 3 workers: 0.14-0.24 ms a hop against 0.29-0.43 and
// 1.09-1.13x the tokens/s; bench/dist/pipeline_bench.sh with GRPC=1). (1.9) A last stage's replies to a
// coordinator on its machine take one too (pipeline_stream.h). gRPC keeps everything else (admission, the
// plan, the calls' ends and why) and every pair across machines.
//
// The offering side listens in a folder only its user may enter (TMPDIR/mlxd-<uid>, mode 0700) on a fresh
// path, and names it in the call's metadata; the peer connects before it answers the call, so the offer
// takes the connection that is already waiting. Only the user's own processes can reach the socket, and the
// call that names it was admitted with the cluster token.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/message_lite.h>

namespace mlxd::dist {

// The machine this process runs on, as the kernel names it for this boot ("" when unknown): two workers that
// report the same one may try a link.
std::string host_id();

// One connected link: messages in order, each a 4-byte little-endian length and the message's bytes.
class local_link {
 public:
  // Takes `fd`, a connected stream socket.
  explicit local_link(int fd);
  ~local_link();
  local_link(const local_link&) = delete;
  local_link& operator=(const local_link&) = delete;

  // To poll for what arrives.
  int fd() const { return fd_; }
  // Queues `m` to go out in order, on this thread when the socket takes it at once (a step's hidden state
  // does), else on the link's writer thread (a prefill chunk of megabytes), so the caller never waits for
  // the peer. False once the peer is gone or the message is too big.
  bool send(const google::protobuf::MessageLite& m);
  // Reads the message that poll() announced into `m`: "" when read, else why not ("closed" when the peer
  // has closed its end). A length beyond `max_bytes` or bytes that do not parse are refused. One read takes
  // what the socket holds, so a step's frame costs one system call; what it took beyond the message waits
  // in the link (buffered()), where poll() does not see it.
  std::string receive(google::protobuf::MessageLite& m, size_t max_bytes);
  // Bytes of a next message were read with the last one: receive() again before polling.
  bool buffered() const { return in_end_ > in_begin_; }
  // Ends this side's writing once what was sent is out; the peer reads "closed" after it.
  void close_writing();

 private:
  void write_loop();
  // Reads until `want` bytes from in_begin_ are in in_: "" when they are, else why not.
  std::string fill(size_t want);

  // What one read may take beyond the message it needs (a 1B model's hidden state is 8 KB).
  static constexpr size_t read_ahead = 64 << 10;
  int fd_;
  std::vector<char> in_;  // read from the socket, not yet received: [in_begin_, in_end_)
  size_t in_begin_ = 0, in_end_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;  // frames (or their rest) for the writer thread, in order
  bool broken_ = false, closing_ = false, write_closed_ = false;
  std::thread writer_;
};

// The offering side's listening socket; removed with it.
class link_offer {
 public:
  // Throws std::runtime_error with why when it cannot listen.
  link_offer();
  ~link_offer();
  link_offer(const link_offer&) = delete;
  link_offer& operator=(const link_offer&) = delete;

  // What the call's metadata carries: "<host id> <path>".
  const std::string& description() const { return description_; }
  // The connection the peer made before it answered: throws std::runtime_error when none is waiting.
  std::unique_ptr<local_link> take();

 private:
  int fd_ = -1;
  std::string path_, description_;
};

// The answering side: connects to the offer `description` names. Throws std::runtime_error with why not (the
// offer is from another machine, the path is not here, the connect failed).
std::unique_ptr<local_link> connect_link(const std::string& description);

// Metadata of Run and Loop calls: the offer (client) and the answer (server's initial metadata: "ok", or why
// not, when the caller falls back to the call).
inline constexpr const char* link_key = "mlxd-link";

}  // namespace mlxd::dist
