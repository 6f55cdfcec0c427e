// RunParts: the run's parts from the registries (model, optimizer, schedule, loss) and the data library.
#include "train/run_parts.h"

#include <torch/torch.h>

#include "core/check.h"
#include "data/dataset_digest.h"
#include "data/make_loader.h"
#include "train/model_registry.h"
#include "train/optimizers.h"

namespace dpt::train {

RunParts::RunParts(const Config& config, const distributed::Backends& backends, TrainerParts parts)
    : options(TrainOptions::from_config(config)),
      device(backends.device),
      loss(parts.loss ? *parts.loss : losses().get(options.loss)),
      schedule(options.schedule) {
  const distributed::Backend& gradients = *backends.gradients;
  torch::manual_seed(options.seed);
  model = ModelRegistry::global().create(options.model, config.options("model"));
  module = model.ptr();
  module->to(device);
  std::vector<distributed::Reducer::NamedParameter> named;
  for (auto& p : module->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    params.push_back(p.value());
    named.emplace_back(p.key(), p.value());
  }
  buffers = module->buffers();
  reducer = std::make_unique<distributed::Reducer>(std::move(named), *backends.gradients, *backends.control,
                                                   distributed::ReducerOptions::from_config(config));
  // ddp.zero = 1: the optimizer steps this rank's shard of the parameters only, and holds state for it alone.
  std::vector<at::Tensor> stepped = params;
  if (reducer->zero()) {
    stepped.clear();
    for (const auto& piece : reducer->shard_pieces()) stepped.push_back(piece.tensor);
  }
  optimizer = optimizers().get(options.optimizer)(std::move(stepped), options.optimizer_settings);

  const bool pin = device.is_cuda();
  std::shared_ptr<data::Source> train_data = parts.train_data;
  if (!train_data) {
    const data::SplitSource split = data::open_split(config, "train");
    train_data = split.source;
    // Rank 0 alone saves checkpoints; the digest is cached beside the data, so only a first run hashes the files.
    if (gradients.rank() == 0) dataset_digest = data::dataset_digest(split.files);
  }
  train_loader = data::make_loader(
      config, train_data,
      data::LoaderShard{options.batch_size, gradients.rank(), gradients.world_size(), true, pin,
                        options.accumulate_batches});
  std::shared_ptr<data::Source> test_data = parts.test_data ? parts.test_data : data::open_split(config, "test").source;
  if (test_data) {
    test_loader = data::make_loader(config, test_data,
                                    data::LoaderShard{options.eval_batch_size, gradients.rank(),
                                                      gradients.world_size(), false, pin});
  }
  if (options.checkpoints) {
    store = checkpoint::open_checkpoint_store(options.checkpoint_dir);
    if (gradients.rank() == 0) store->check_writable();
  }
}

NamedTensorRefs named_state(const torch::nn::Module& module) {
  NamedTensorRefs all;
  for (const auto& item : module.named_parameters()) all.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) all.emplace_back(item.key(), item.value());
  return all;
}

NamedTensorRefs RunParts::named_state() const { return train::named_state(*module); }

std::int64_t RunParts::steps_left(const TrainState& state) const {
  const auto& sampler = train_loader->sampler();
  const std::int64_t in_epoch = state.epoch < options.epochs ? sampler.steps_from(state.cursor) : 0;
  const std::int64_t epochs_after = std::max<std::int64_t>(0, options.epochs - state.epoch - 1);
  const std::int64_t left = in_epoch + epochs_after * sampler.steps_per_epoch();
  return options.max_steps > 0 ? std::min(left, std::max<std::int64_t>(0, options.max_steps - state.step)) : left;
}

std::int64_t RunParts::total_steps(const TrainState& state) const { return state.step + steps_left(state); }

SchedulePosition RunParts::schedule_position(const TrainState& state) const {
  const auto& sampler = train_loader->sampler();
  const auto per_epoch = static_cast<double>(sampler.num_samples());
  SchedulePosition at;
  at.samples_per_epoch = per_epoch;
  at.samples = static_cast<double>(state.position(sampler.num_samples()));
  // Where the last step will end, from here at this world size and step size: after a resume that changed the
  // global batch, train.max_steps' remaining steps cover other samples, and the schedule's end moves with them.
  at.total_samples = static_cast<double>(state.epoch) * per_epoch +
                     static_cast<double>(sampler.position_after(state.cursor, steps_left(state)));
  return at;
}

}  // namespace dpt::train
