// ModelRegistry: model name -> factory, so a config can say model.name = "fashion_cnn" or a user's own model.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/any.h>

namespace dpt::train {

// Builds a module from the free-form `[model.options]` table. Any torch::nn::Module with a
// `torch::Tensor forward(torch::Tensor)` works: wrap it in torch::nn::AnyModule.
using ModelFactory = std::function<torch::nn::AnyModule(const nlohmann::json& options)>;

class ModelRegistry {
 public:
  // The process-wide registry, with the built-in models (fashion_cnn, mlp) already registered.
  static ModelRegistry& global();

  // Registers `name`; registering a name twice is an error (two models would silently shadow each other).
  void add(const std::string& name, ModelFactory factory, const std::string& description);
  torch::nn::AnyModule create(const std::string& name, const nlohmann::json& options) const;
  bool contains(const std::string& name) const;
  // (name, description) pairs, sorted by name.
  std::vector<std::pair<std::string, std::string>> list() const;

 private:
  struct Entry {
    ModelFactory factory;
    std::string description;
  };
  std::map<std::string, Entry> entries_;
};

// Reads an integer option with a default, rejecting a value of the wrong type with the option's name.
std::int64_t model_option(const nlohmann::json& options, const std::string& name, std::int64_t fallback);
double model_option(const nlohmann::json& options, const std::string& name, double fallback);

}  // namespace dpt::train
