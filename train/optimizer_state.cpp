// Optimizer state <-> named tensors for Adam, AdamW and SGD, on LibTorch 1.13 and 2.x alike.
#include "train/optimizer_state.h"

#include <map>
#include <type_traits>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "checkpoint/checkpointer.h"
#include "core/check.h"

namespace dpt::train {
namespace {

std::string prefix_of(std::size_t index) { return "state." + std::to_string(index) + "."; }

// The tensor fields of each supported state type; `step` is handled beside them.
template <typename State>
void save_fields(const State& state, const std::string& prefix, bool copy, checkpoint::NamedTensors& out) {
  const auto put = [&](const char* field, const at::Tensor& tensor) {
    if (tensor.defined()) out.emplace_back(prefix + field, checkpoint::host_tensor(tensor, copy));
  };
  if constexpr (std::is_same_v<State, torch::optim::SGDParamState>) {
    put("momentum_buffer", state.momentum_buffer());
  } else {
    out.emplace_back(prefix + "step", at::scalar_tensor(static_cast<std::int64_t>(state.step()), at::kLong));
    put("exp_avg", state.exp_avg());
    put("exp_avg_sq", state.exp_avg_sq());
    put("max_exp_avg_sq", state.max_exp_avg_sq());
  }
}

// Takes the entries "<prefix>*" out of `by_name` into a new State; nullptr when there are none.
template <typename State>
std::unique_ptr<State> load_fields(std::map<std::string, at::Tensor>& by_name, const std::string& prefix,
                                   const at::Tensor& param, const std::string& what) {
  bool found = false;
  const auto take = [&](const char* field, bool required) {
    auto it = by_name.find(prefix + field);
    if (it == by_name.end()) {
      DPT_CHECK(!required || !found, "optimizer state in ", what, " lacks '", prefix, field,
                "'; the checkpoint was saved with another optimizer (train.optimizer) or is damaged");
      return at::Tensor();
    }
    found = true;
    at::Tensor tensor = it->second.to(param.device(), /*non_blocking=*/false, /*copy=*/true);
    by_name.erase(it);
    return tensor;
  };
  auto state = std::make_unique<State>();
  if constexpr (std::is_same_v<State, torch::optim::SGDParamState>) {
    state->momentum_buffer(take("momentum_buffer", false));
  } else {
    const at::Tensor step = take("step", false);
    if (!found) return nullptr;
    state->step(static_cast<std::decay_t<decltype(state->step())>>(step.item<std::int64_t>()));
    state->exp_avg(take("exp_avg", true));
    state->exp_avg_sq(take("exp_avg_sq", true));
    state->max_exp_avg_sq(take("max_exp_avg_sq", false));
    for (const at::Tensor& tensor : {state->exp_avg(), state->exp_avg_sq()}) {
      DPT_CHECK(tensor.sizes() == param.sizes(), "optimizer state '", prefix, "*' in ", what, " has shape ",
                tensor.sizes(), " but parameter has shape ", param.sizes(), "; it was saved from another model");
    }
  }
  return found ? std::move(state) : nullptr;
}

// Calls fn(State tag) with the state type of `optimizer`'s class.
template <typename Fn>
void with_state_type(const torch::optim::Optimizer& optimizer, Fn&& fn) {
  if (dynamic_cast<const torch::optim::AdamW*>(&optimizer)) return fn(torch::optim::AdamWParamState());
  if (dynamic_cast<const torch::optim::Adam*>(&optimizer)) return fn(torch::optim::AdamParamState());
  if (dynamic_cast<const torch::optim::SGD*>(&optimizer)) return fn(torch::optim::SGDParamState());
  DPT_THROW("checkpoints can hold the state of Adam, AdamW and SGD optimizers only; use one of those ",
            "(train.optimizer)");
}

}  // namespace

checkpoint::NamedTensors optimizer_state_tensors(const torch::optim::Optimizer& optimizer, bool copy) {
  checkpoint::NamedTensors out;
  with_state_type(optimizer, [&](auto tag) {
    using State = decltype(tag);
    const auto& states = optimizer.state();
    std::size_t index = 0;
    for (const auto& group : optimizer.param_groups()) {
      for (const auto& param : group.params()) {
        const auto it = states.find(optimizer_state_key(states, param));
        if (it != states.end()) save_fields(static_cast<const State&>(*it->second), prefix_of(index), copy, out);
        ++index;
      }
    }
  });
  return out;
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const checkpoint::NamedTensors& tensors,
                          const std::string& what) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  with_state_type(optimizer, [&](auto tag) {
    using State = decltype(tag);
    auto& states = optimizer.state();
    states.clear();
    std::size_t index = 0;
    for (const auto& group : optimizer.param_groups()) {
      for (const auto& param : group.params()) {
        if (auto state = load_fields<State>(by_name, prefix_of(index), param, what)) {
          states[optimizer_state_key(states, param)] = std::move(state);
        }
        ++index;
      }
    }
  });
  DPT_CHECK(by_name.empty(), "optimizer state in ", what, " has an entry '", by_name.begin()->first,
            "' that this optimizer has no place for; it was saved with another optimizer (train.optimizer) or model");
}

}  // namespace dpt::train
