// Evaluation: one pass over a split in eval mode; totals (and the confusion matrix) through the control backend.
#include "train/evaluation.h"

#include <cmath>
#include <memory>
#include <optional>

#include <torch/torch.h>

#include "checkpoint/checkpoint_store.h"
#include "core/check.h"
#include "data/make_loader.h"
#include "train/model_registry.h"
#include "train/run_parts.h"
#include "train/train_options.h"

namespace dpt::train {
namespace {

// One pass over the loader; the totals are summed over the ranks, and so is the confusion matrix when asked for.
ClassEval run_evaluation(const EvalParts& parts, bool confusion) {
  torch::NoGradGuard no_grad;
  parts.module.eval();
  double loss_sum = 0.0;
  std::int64_t samples = 0;
  std::int64_t correct = 0;
  std::int64_t labels = 0;
  std::int64_t classes = 0;
  at::Tensor counts;  // flattened confusion matrix of this rank, on the CPU
  data::Loader& loader = parts.loader;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const std::int64_t n = batch->targets.size(0);
    if (n == 0) continue;
    at::Tensor output;
    {
      const AutocastGuard autocast(parts.precision, parts.device);
      output = parts.model.forward(batch->inputs.to(parts.device));
    }
    const at::Tensor targets = checked_targets(*batch, loader, parts.loss, output, 0, n, parts.device);
    loss_sum += parts.loss.mean(output, targets).item<double>() * static_cast<double>(n);
    samples += n;
    if (!parts.loss.classification) continue;
    const at::Tensor predicted = output.argmax(-1);
    correct += predicted.eq(targets).sum().item<std::int64_t>();
    labels += targets.numel();
    classes = output.size(-1);
    if (confusion && classes <= kMaxConfusionClasses) {
      const at::Tensor cells = (targets.flatten() * classes + predicted.flatten()).to(at::kCPU);
      const at::Tensor batch_counts = at::bincount(cells, {}, classes * classes);
      counts = counts.defined() ? counts + batch_counts : batch_counts;
    }
  }
  parts.module.train();
  // Ranks without samples learn the class count from the others: sum of (classes x has samples) / ranks with some.
  const double has = classes > 0 ? 1.0 : 0.0;
  at::Tensor totals = at::tensor({loss_sum, static_cast<double>(samples), static_cast<double>(correct),
                                  static_cast<double>(labels), static_cast<double>(classes) * has, has},
                                 at::kDouble);
  parts.control.allreduce(totals, distributed::ReduceOp::Sum)->wait();
  ClassEval out;
  out.totals.samples = static_cast<std::int64_t>(totals[1].item<double>());
  out.totals.loss = totals[0].item<double>() / std::max(1.0, totals[1].item<double>());
  out.totals.accuracy = parts.loss.classification
                            ? totals[2].item<double>() / std::max(1.0, totals[3].item<double>())
                            : std::nan("");
  if (!confusion || !parts.loss.classification) return out;
  out.classes =
      static_cast<std::int64_t>(std::llround(totals[4].item<double>() / std::max(1.0, totals[5].item<double>())));
  if (out.classes > kMaxConfusionClasses) return out;  // the same on every rank: the count was all-reduced
  at::Tensor matrix = at::zeros({out.classes * out.classes}, at::kDouble);
  if (counts.defined()) matrix.copy_(counts);
  parts.control.allreduce(matrix, distributed::ReduceOp::Sum)->wait();
  const at::Tensor cells = matrix.to(at::kLong).contiguous();
  out.confusion.assign(cells.data_ptr<std::int64_t>(), cells.data_ptr<std::int64_t>() + cells.numel());
  return out;
}

}  // namespace

bool ClassEval::has_confusion() const { return !confusion.empty(); }

std::int64_t ClassEval::class_samples(std::int64_t label) const {
  std::int64_t sum = 0;
  for (std::int64_t c = 0; c < classes; ++c) sum += confusion.at(static_cast<std::size_t>(label * classes + c));
  return sum;
}

double ClassEval::class_accuracy(std::int64_t label) const {
  const std::int64_t total = class_samples(label);
  if (total == 0) return std::nan("");
  return static_cast<double>(confusion.at(static_cast<std::size_t>(label * classes + label))) /
         static_cast<double>(total);
}

at::Tensor checked_targets(const data::Batch& batch, const data::Loader& loader, const Loss& loss,
                           const at::Tensor& output, std::int64_t begin, std::int64_t size, at::Device device) {
  const at::Tensor host = batch.targets.narrow(0, begin, size);
  if (loss.classification) {
    const std::string bad = check_class_labels(host, output.size(-1), [&](std::int64_t row) {
      return loader.source().locate(batch.indices.at(static_cast<std::size_t>(begin + row)));
    });
    DPT_CHECK(bad.empty(), bad);
  }
  return host.to(device);
}

EvalResult evaluate(const EvalParts& parts) { return run_evaluation(parts, false).totals; }

ClassEval evaluate_classes(const EvalParts& parts) { return run_evaluation(parts, true); }

CheckpointEval evaluate_checkpoint(const Config& config, const Runtime& runtime,
                                   const distributed::Backends& backends, const std::string& store,
                                   const std::string& ref) {
  const distributed::Backend& control = *backends.control;
  std::optional<TrainOptions> options;
  torch::nn::AnyModule model;
  std::unique_ptr<data::Loader> loader;
  Loss loss;
  CheckpointEval out;
  runtime.all_or_none("set-up", [&] {
    options = TrainOptions::from_config(config);
    model = ModelRegistry::global().create(options->model, config.options("model"));
    model.ptr()->to(backends.device);
    const data::SplitSource split = data::open_split(config, "test");
    DPT_CHECK(split.source, "dptrain eval needs test data: set data.test in the config or with --set data.test=PATH");
    out.test_files = split.files;
    loader = data::make_loader(config, split.source,
                               data::LoaderShard{options->eval_batch_size, control.rank(), control.world_size(),
                                                 false, backends.device.is_cuda()});
    loss = losses().get(options->loss);
  });
  runtime.all_or_none("loading checkpoint " + ref, [&] {
    const checkpoint::CheckpointContents contents = checkpoint::open_checkpoint_store(store)->load(ref);
    const std::string what = contents.version + " in " + contents.store;
    DPT_CHECK(contents.tensors.count("model"), "checkpoint ", what,
              " has no model tensors: it was not written by dptrain's trainer; evaluate another version");
    load_model_tensors(contents.tensors.at("model"), named_state(*model.ptr()), what, options->model);
    out.version = contents.version;
    out.store = contents.store;
    out.manifest_sha256 = contents.manifest_sha256;
    out.state = contents.state;
  });
  out.eval = evaluate_classes(
      EvalParts{model, *model.ptr(), *loader, loss, options->precision, backends.device, *backends.control});
  return out;
}

}  // namespace dpt::train
