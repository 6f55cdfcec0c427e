// ModelRegistry: the global name -> factory table and typed access to model options.
#include "train/model_registry.h"

#include "core/check.h"

namespace dpt::train {

void register_builtin_models(ModelRegistry& registry);  // models.cpp

ModelRegistry& ModelRegistry::global() {
  static ModelRegistry* registry = [] {
    auto* r = new ModelRegistry();
    register_builtin_models(*r);
    return r;
  }();
  return *registry;
}

torch::nn::AnyModule ModelRegistry::create(const std::string& name, const nlohmann::json& options) const {
  return get(name)(options);
}

std::int64_t model_option(const nlohmann::json& options, const std::string& name, std::int64_t fallback) {
  if (!options.contains(name)) return fallback;
  const auto& v = options.at(name);
  DPT_CHECK(v.is_number_integer(), "model.options.", name, " must be an integer, got ", v.dump());
  return v.get<std::int64_t>();
}

double model_option(const nlohmann::json& options, const std::string& name, double fallback) {
  if (!options.contains(name)) return fallback;
  const auto& v = options.at(name);
  DPT_CHECK(v.is_number(), "model.options.", name, " must be a number, got ", v.dump());
  return v.get<double>();
}

}  // namespace dpt::train
