#include "mlxd/serve/api_error.h"

namespace mlxd::serve {

api_error::api_error(int status, std::string message, std::string type, std::string param, std::string code)
    : std::runtime_error(std::move(message)),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

nlohmann::json api_error::to_json() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  return {{"error",
           {{"message", what()}, {"type", type_}, {"param", or_null(param_)}, {"code", or_null(code_)}}}};
}

api_error bad_request(const std::string& message, const std::string& param) {
  return api_error(400, message, "invalid_request_error", param);
}

}  // namespace mlxd::serve
