#include "mlxd/serve/sse.h"

#include "mlxd/serve/responses.h"

namespace mlxd::serve {

std::string sse_event(const nlohmann::json& data) {
  return "data: " + dump(data) + "\n\n";
}

std::string sse_done() {
  return "data: [DONE]\n\n";
}

std::string sse_keepalive() {
  return ": keep-alive\n\n";
}

}  // namespace mlxd::serve
