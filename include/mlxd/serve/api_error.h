// An error the HTTP API reports to its client, in OpenAI's shape:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}} with an HTTP status.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace mlxd::serve {

class api_error : public std::runtime_error {
 public:
  // `type` as OpenAI names it: invalid_request_error (400, 404, 405, 413), authentication_error (401),
  // rate_limit_error (429), server_error (500, 503). `param` names the offending request field (or empty).
  api_error(int status, std::string message, std::string type = "invalid_request_error",
            std::string param = {}, std::string code = {});

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  // The error body; `param` and `code` are null when empty.
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// A 400 invalid_request_error naming `param`.
api_error bad_request(const std::string& message, const std::string& param = {});

}  // namespace mlxd::serve
