// TrainState <-> checkpoint contents: safetensors for the tensors, the manifest's JSON for the rest.
#include "train/train_state.h"

#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "checkpoint/checkpointer.h"
#include "core/check.h"
#include "core/splitmix64.h"

namespace dpt::train {

checkpoint::CheckpointContents snapshot(const TrainState& state, const NamedTensorRefs& model,
                                        checkpoint::NamedTensors optimizer_state, nlohmann::json run, bool copy) {
  checkpoint::CheckpointContents contents;
  checkpoint::NamedTensors model_tensors;
  for (const auto& [name, tensor] : model) model_tensors.emplace_back(name, checkpoint::host_tensor(tensor, copy));
  contents.tensors["model"] = std::move(model_tensors);
  contents.tensors["optimizer"] = std::move(optimizer_state);
  nlohmann::json metrics = nlohmann::json::object();
  if (std::isfinite(state.last_loss)) metrics["train/loss"] = state.last_loss;
  if (state.last_eval) {
    metrics["eval/loss"] = state.last_eval->loss;
    if (std::isfinite(state.last_eval->accuracy)) metrics["eval/accuracy"] = state.last_eval->accuracy;
  }
  run["step"] = state.step;
  run["epoch"] = state.epoch;
  run["cursor"] = state.cursor;
  run["run_id"] = state.run_id;
  run["skipped_steps"] = state.skipped_steps;
  run["loss_scale"] = {{"value", state.loss_scale.value}, {"good_steps", state.loss_scale.good_steps}};
  run["metrics"] = metrics;
  contents.state = std::move(run);
  return contents;
}

void load_model_tensors(const checkpoint::NamedTensors& tensors, const NamedTensorRefs& model, const std::string& ref,
                        const std::string& model_name) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : model) {
    auto it = by_name.find(name);
    DPT_CHECK(it != by_name.end(), "checkpoint ", ref, " has no tensor '", name, "' for model '", model_name,
              "': it was saved from a different model");
    DPT_CHECK(it->second.sizes() == target.sizes(), "checkpoint ", ref, " tensor '", name, "' has shape ",
              it->second.sizes(), " but the model expects ", target.sizes());
    at::Tensor destination = target;
    destination.copy_(it->second);
  }
}

TrainState restore(const checkpoint::CheckpointContents& contents, const NamedTensorRefs& model,
                   const OptimizerStateLoader& load_optimizer, const std::string& ref, const std::string& model_name) {
  DPT_CHECK(contents.tensors.count("model") && contents.tensors.count("optimizer"), "checkpoint ", ref,
            " lacks model or optimizer tensors: it was not written by dptrain's trainer; resume from another version");
  load_model_tensors(contents.tensors.at("model"), model, ref, model_name);
  load_optimizer(contents.tensors.at("optimizer"));
  TrainState state;
  state.step = contents.state.at("step").get<std::int64_t>();
  state.epoch = contents.state.at("epoch").get<std::int64_t>();
  state.cursor = contents.state.at("cursor").get<std::int64_t>();
  state.run_id = contents.state.value("run_id", std::string());
  state.skipped_steps = contents.state.value("skipped_steps", std::int64_t{0});
  if (contents.state.contains("loss_scale")) {
    state.loss_scale.value = contents.state.at("loss_scale").at("value").get<double>();
    state.loss_scale.good_steps = contents.state.at("loss_scale").at("good_steps").get<std::int64_t>();
  }
  return state;
}

std::uint64_t step_seed(std::uint64_t seed, int rank, std::int64_t position) {
  // Each input goes through the mixer in turn, so neighbouring ranks or positions give unrelated seeds.
  std::uint64_t h = SplitMix64{seed}.next();
  h = SplitMix64{h ^ static_cast<std::uint64_t>(rank)}.next();
  return SplitMix64{h ^ static_cast<std::uint64_t>(position)}.next();
}

void seed_step_generators(std::uint64_t seed, int rank, std::int64_t position, const at::Device& device) {
  const std::uint64_t value = step_seed(seed, rank, position);
  std::vector<at::Generator> generators = {at::detail::getDefaultCPUGenerator()};
  if (device.is_cuda()) generators.push_back(at::globalContext().defaultGenerator(device));
  for (auto& generator : generators) {
    const std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(value);
  }
}

}  // namespace dpt::train
