// TrainState <-> checkpoint contents: safetensors for the tensors, the manifest's JSON for the rest.
#include "train/train_state.h"

#include <cmath>
#include <map>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "checkpoint/checkpointer.h"
#include "core/check.h"

namespace dpt::train {

checkpoint::CheckpointContents snapshot(const TrainState& state, const NamedTensorRefs& model,
                                        checkpoint::NamedTensors optimizer_state, const at::Tensor& rng_states,
                                        nlohmann::json run, bool copy) {
  checkpoint::CheckpointContents contents;
  checkpoint::NamedTensors model_tensors;
  for (const auto& [name, tensor] : model) model_tensors.emplace_back(name, checkpoint::host_tensor(tensor, copy));
  contents.tensors["model"] = std::move(model_tensors);
  for (std::int64_t r = 0; r < rng_states.size(0); ++r) {
    contents.tensors["rng"].emplace_back("rank" + std::to_string(r), rng_states[r].clone());
  }
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
                   const OptimizerStateLoader& load_optimizer, int rank, const std::string& ref,
                   const std::string& model_name) {
  DPT_CHECK(contents.tensors.count("model") && contents.tensors.count("optimizer") && contents.tensors.count("rng"),
            "checkpoint ", ref, " lacks model, optimizer or rng tensors: it was not written by dptrain's trainer; ",
            "resume from another version");
  load_model_tensors(contents.tensors.at("model"), model, ref, model_name);
  load_optimizer(contents.tensors.at("optimizer"));
  // The same world size gets each rank its own generator back (bit-identical continuation); another one takes
  // rank 0's for the ranks that did not exist.
  const auto& rng = contents.tensors.at("rng");
  const std::size_t mine = static_cast<std::size_t>(rank) < rng.size() ? static_cast<std::size_t>(rank) : 0;
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng.at(mine).second);
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

}  // namespace dpt::train
