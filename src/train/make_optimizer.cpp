#include <stdexcept>

#include "mlxd/train/adam.h"
#include "mlxd/train/lion.h"
#include "mlxd/train/sgd.h"

namespace mlxd::train {

std::unique_ptr<optimizer> make_optimizer(std::string_view name, std::vector<std::string> names,
                                          const std::vector<array>& params, double weight_decay,
                                          std::vector<param_group> groups) {
  if (name == "sgd") {
    return std::make_unique<sgd>(std::move(names), params, sgd_options{.weight_decay = weight_decay},
                                 std::move(groups));
  }
  if (name == "adam" || name == "adamw") {
    return std::make_unique<adam>(std::move(names), params, adam_options{.weight_decay = weight_decay},
                                  name == "adamw", std::move(groups));
  }
  if (name == "lion") {
    return std::make_unique<lion>(std::move(names), params, lion_options{.weight_decay = weight_decay},
                                  std::move(groups));
  }
  throw std::invalid_argument("[make_optimizer] unknown optimizer '" + std::string(name) +
                              "' (known: sgd, adam, adamw, lion)");
}

}  // namespace mlxd::train
