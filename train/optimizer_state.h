// Optimizer state as named tensors, so checkpoints hold it in safetensors (readable from Python) rather than
// in LibTorch's own archive format.
#pragma once

#include <sstream>
#include <string>
#include <type_traits>

#include <torch/optim/optimizer.h>

#include "checkpoint/safetensors.h"
#include "distributed/backend.h"
#include "distributed/reducer.h"

namespace dpt::train {

// The key of `param`'s entry in an optimizer's state map: LibTorch 1.13 keys it by the printed TensorImpl
// address, 2.x by the address itself.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const at::Tensor& param) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << static_cast<const void*>(param.unsafeGetTensorImpl());
    return text.str();
  } else {
    return static_cast<Key>(param.unsafeGetTensorImpl());
  }
}

// Per-parameter state keyed by the parameter's position across the param groups, as PyTorch's state_dict
// numbers it: "state.<i>.step" (int64 scalar), "state.<i>.exp_avg", "state.<i>.exp_avg_sq" and
// "state.<i>.max_exp_avg_sq" (Adam, AdamW; the last only with amsgrad), "state.<i>.momentum_buffer" (SGD).
// Parameters without state yet (never stepped) have no entries. Tensors are host copies, or with copy = false the CPU
// tensors themselves (see checkpoint::host_tensor).
// Hyper-parameters are not saved: they come from the config. Other optimizer types throw a dpt::Error.
checkpoint::NamedTensors optimizer_state_tensors(const torch::optim::Optimizer& optimizer, bool copy = true);

// Replaces the optimizer's state with `tensors` (moved to each parameter's device); an entry that does not fit
// this optimizer (another type, a parameter index out of range, a missing field, a wrong shape) throws a
// dpt::Error naming `what` (the checkpoint).
void load_optimizer_state(torch::optim::Optimizer& optimizer, const checkpoint::NamedTensors& tensors,
                          const std::string& what);

// ddp.zero = 1, where `optimizer` steps `reducer`'s shard pieces: its state as the whole per-parameter tensors that
// optimizer_state_tensors gives for an optimizer over every parameter (what ddp.zero = 0 saves, so checkpoints do
// not depend on the sharding). Collective: every rank calls it; the shards are all-gathered through the reducer's
// gradient backend, which fields exist and the step count agreed over `control`. Host tensors, on every rank.
checkpoint::NamedTensors gather_optimizer_state(const torch::optim::Optimizer& optimizer, distributed::Reducer& reducer,
                                                distributed::Backend& control);

// The way back, at a resume with ddp.zero = 1: of whole per-parameter state (saved with ddp.zero = 0 or 1, at any
// world size) this rank keeps its shard pieces' parts. `parameters`: the reducer's, in registration order. Entries
// that fit no parameter throw a dpt::Error naming `what`, as load_optimizer_state does.
void load_sharded_optimizer_state(torch::optim::Optimizer& optimizer, const distributed::Reducer& reducer,
                                  const std::vector<at::Tensor>& parameters, const checkpoint::NamedTensors& tensors,
                                  const std::string& what);

}  // namespace dpt::train
