#include "mlxd/comm/registry.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

#include "comm/builtin_backends.h"

namespace mlxd::comm {
namespace {

struct registry {
  std::mutex mu;
  std::map<std::string, backend_factory> factories{
      {"local",
       [](const group_options& o) {
         if (o.world_size != 1)
           throw std::invalid_argument("[make_group] the local backend is a group of one, not " +
                                       std::to_string(o.world_size));
         return make_local_group();
       }},
      {"grpc", make_grpc_group},
  };
};

registry& the_registry() {
  static registry r;
  return r;
}

}  // namespace

void register_backend(const std::string& name, backend_factory factory) {
  if (name.empty() || !factory)
    throw std::invalid_argument("[register_backend] a backend needs a name and a factory");
  auto& r = the_registry();
  std::lock_guard lock(r.mu);
  r.factories[name] = std::move(factory);
}

std::vector<std::string> backends() {
  auto& r = the_registry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

std::shared_ptr<group> make_group(const std::string& backend, const group_options& options) {
  backend_factory factory;
  {
    auto& r = the_registry();
    std::lock_guard lock(r.mu);
    auto it = r.factories.find(backend);
    if (it == r.factories.end()) {
      std::string known;
      for (const auto& [name, f] : r.factories) known += (known.empty() ? "" : ", ") + name;
      throw std::invalid_argument("[make_group] unknown backend \"" + backend + "\" (known: " + known + ")");
    }
    factory = it->second;
  }
  return factory(options);
}

}  // namespace mlxd::comm
