// ModelRegistry: model name -> factory, so a config can say model.name = "fashion_cnn" or a user's own model.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/any.h>

#include "core/registry.h"

namespace dpt::train {

// Builds a module from the free-form `[model.options]` table. Any torch::nn::Module with a
// `torch::Tensor forward(torch::Tensor)` works: wrap it in torch::nn::AnyModule.
using ModelFactory = std::function<torch::nn::AnyModule(const nlohmann::json& options)>;

class ModelRegistry : public Registry<ModelFactory> {
 public:
  ModelRegistry() : Registry("model", "model.name") {}  // empty
  // The process-wide registry, with the built-in models (fashion_cnn, mlp) already registered.
  static ModelRegistry& global();
  // An unknown name is an error with the closest registered one.
  torch::nn::AnyModule create(const std::string& name, const nlohmann::json& options) const;
};

// Reads an integer option with a default, rejecting a value of the wrong type with the option's name.
std::int64_t model_option(const nlohmann::json& options, const std::string& name, std::int64_t fallback);
double model_option(const nlohmann::json& options, const std::string& name, double fallback);

}  // namespace dpt::train
