// Server-sent events as OpenAI streams them: one "data: <json>" event per chunk, "data: [DONE]" at the end.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mlxd::serve {

std::string sse_event(const nlohmann::json& data);  // "data: {...}\n\n" (invalid UTF-8 replaced)
std::string sse_done();                             // "data: [DONE]\n\n"
// An SSE comment, which clients ignore; sent while a request waits so a closed connection is noticed.
std::string sse_keepalive();

}  // namespace mlxd::serve
