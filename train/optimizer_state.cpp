// Optimizer state <-> named tensors for Adam, AdamW and SGD, on LibTorch 1.13 and 2.x alike.
#include "train/optimizer_state.h"

#include <cmath>
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

// The per-element fields of every supported state type, in the order save_fields writes them.
const std::vector<std::string>& element_fields() {
  static const std::vector<std::string> fields = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"};
  return fields;
}

// "state.<i>.<field>" -> (i, field); false for any other name.
bool parse_state_name(const std::string& name, std::size_t& index, std::string& field) {
  const std::string prefix = "state.";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  const std::string digits = name.substr(prefix.size(), dot - prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return false;
  index = std::stoul(digits);
  field = name.substr(dot + 1);
  return !field.empty();
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

checkpoint::NamedTensors gather_optimizer_state(const torch::optim::Optimizer& optimizer, distributed::Reducer& reducer,
                                                distributed::Backend& control) {
  const checkpoint::NamedTensors local = optimizer_state_tensors(optimizer, /*copy=*/false);
  const std::map<std::string, at::Tensor> by_name(local.begin(), local.end());
  const auto& pieces = reducer.shard_pieces();
  const auto& fields = element_fields();
  // A rank may hold no piece at all, so what exists is agreed: per field the ranks holding it, then the ranks
  // holding a step count and the sum of their counts (all equal: every piece steps at every step).
  const auto n_fields = static_cast<std::int64_t>(fields.size());
  at::Tensor agreed = at::zeros({n_fields + 2}, at::kDouble);
  auto* a = agreed.data_ptr<double>();
  if (!pieces.empty()) {
    for (std::int64_t f = 0; f < n_fields; ++f) a[f] = by_name.count(prefix_of(0) + fields[f]) ? 1.0 : 0.0;
    const auto step = by_name.find(prefix_of(0) + "step");
    if (step != by_name.end()) {
      a[n_fields] = 1.0;
      a[n_fields + 1] = static_cast<double>(step->second.item<std::int64_t>());
    }
  }
  control.allreduce(agreed, distributed::ReduceOp::Sum)->wait();
  std::vector<std::vector<at::Tensor>> whole(fields.size());
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if (a[f] == 0) continue;
    std::vector<at::Tensor> parts;
    for (std::size_t k = 0; k < pieces.size(); ++k) {
      const auto it = by_name.find(prefix_of(k) + fields[f]);
      DPT_CHECK(it != by_name.end(), "optimizer state of shard piece ", k, " lacks '", fields[f],
                "', which other pieces have");
      parts.push_back(it->second);
    }
    whole[f] = reducer.gather_shards(parts);
  }
  std::size_t parameters = 0;
  for (const auto& bucket : reducer.bucket_parameters()) parameters += bucket.size();
  checkpoint::NamedTensors out;
  for (std::size_t i = 0; i < parameters; ++i) {
    if (a[n_fields] > 0) {
      const auto step = static_cast<std::int64_t>(std::llround(a[n_fields + 1] / a[n_fields]));
      out.emplace_back(prefix_of(i) + "step", at::scalar_tensor(step, at::kLong));
    }
    for (std::size_t f = 0; f < fields.size(); ++f) {
      if (!whole[f].empty()) out.emplace_back(prefix_of(i) + fields[f], checkpoint::host_tensor(whole[f][i], false));
    }
  }
  return out;
}

void load_sharded_optimizer_state(torch::optim::Optimizer& optimizer, const distributed::Reducer& reducer,
                                  const std::vector<at::Tensor>& parameters, const checkpoint::NamedTensors& tensors,
                                  const std::string& what) {
  std::map<std::size_t, checkpoint::NamedTensors> by_parameter;
  for (const auto& [name, tensor] : tensors) {
    std::size_t index = 0;
    std::string field;
    DPT_CHECK(parse_state_name(name, index, field) && index < parameters.size(), "optimizer state in ", what,
              " has an entry '", name, "' that this optimizer has no place for; it was saved with another optimizer ",
              "(train.optimizer) or model");
    DPT_CHECK(field == "step" || tensor.numel() == parameters[index].numel(), "optimizer state '", name, "' in ",
              what, " has shape ", tensor.sizes(), " but parameter has shape ", parameters[index].sizes(),
              "; it was saved from another model");
    by_parameter[index].emplace_back(field, tensor);
  }
  checkpoint::NamedTensors mine;
  const auto& pieces = reducer.shard_pieces();
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const auto found = by_parameter.find(pieces[k].parameter);
    if (found == by_parameter.end()) continue;
    for (const auto& [field, tensor] : found->second) {
      mine.emplace_back(prefix_of(k) + field,
                        field == "step" ? tensor
                                        : tensor.reshape({-1}).narrow(0, pieces[k].offset, pieces[k].tensor.numel()));
    }
  }
  load_optimizer_state(optimizer, mine, what);
}

}  // namespace dpt::train
