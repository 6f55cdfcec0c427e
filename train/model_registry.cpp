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

void ModelRegistry::add(const std::string& name, ModelFactory factory, const std::string& description) {
  DPT_CHECK(!name.empty(), "a model needs a non-empty name");
  DPT_CHECK(!entries_.count(name), "model '", name, "' is already registered: pick another name");
  entries_[name] = Entry{std::move(factory), description};
}

bool ModelRegistry::contains(const std::string& name) const { return entries_.count(name) > 0; }

torch::nn::AnyModule ModelRegistry::create(const std::string& name, const nlohmann::json& options) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [n, e] : entries_) known += (known.empty() ? "" : ", ") + n;
    DPT_THROW("unknown model '", name, "' (model.name): registered models are ", known,
              "; register your own with ModelRegistry::global().add()");
  }
  return it->second.factory(options);
}

std::vector<std::pair<std::string, std::string>> ModelRegistry::list() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, e] : entries_) out.emplace_back(n, e.description);
  return out;
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
