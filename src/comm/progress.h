// A transport whose messages move only while some thread drives it (gRPC's completion queue) lends that
// work to the threads that wait for them: the waiting thread reads its own message, with no hand-over
// between threads on the way (each costs tens of microseconds on a small VM).
#pragma once

#include "comm/request_state.h"

namespace mlxd::comm {

class progress_engine {
 public:
  virtual ~progress_engine() = default;
  // Returns once `s` is done or its deadline has passed, having driven the transport meanwhile whenever no
  // other thread did. The caller then takes the result (or the timeout) from `s` as usual.
  virtual void wait(request::state& s) = 0;
  // `s`, which this engine was driving for, was completed by another thread: stop waiting for the transport.
  virtual void completed(request::state& s) = 0;
};

}  // namespace mlxd::comm
