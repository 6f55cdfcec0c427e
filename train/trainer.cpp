// Trainer: one training step = generators seeded from the position -> lr schedule -> for each of the step's loader
// batches: forward (autocast at bf16/fp16) -> loss -> backward (the last one's all-reduce, with ddp.zero = 1
// reduce-scatter, overlaps it) -> one pass for the gradient norm and non-finite values -> the step vote -> clip and
// unscale -> optimizer step (or a skipped one; ddp.zero = 1: this rank's shard, then the parameters all-gathered) ->
// metrics -> periodic checkpoint. Every rank runs the same steps in the same order; what ranks must agree on (run
// id, stop flag, non-finite values, metrics) goes through the control backend.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "checkpoint/checkpointer.h"
#include "checkpoint/lineage.h"
#include "core/check.h"
#include "kernels/grad_norm.h"
#include "tracking/metric_hub.h"
#include "tracking/sinks.h"
#include "train/evaluation.h"
#include "train/mixed_precision.h"
#include "train/optimizer_state.h"
#include "train/preemption.h"
#include "train/step_stats.h"

namespace dpt::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Broadcasts a string from `root` (the run id, an error message): its length, then its bytes.
std::string broadcast_string(distributed::Backend& control, const std::string& value, int root = 0) {
  at::Tensor length = at::full({1}, static_cast<std::int64_t>(value.size()), at::kLong);
  control.broadcast(length, root)->wait();
  at::Tensor buffer = at::zeros({length.item<std::int64_t>()}, at::kByte);
  if (control.rank() == root) std::memcpy(buffer.data_ptr(), value.data(), value.size());
  control.broadcast(buffer, root)->wait();
  return std::string(static_cast<const char*>(buffer.data_ptr()), static_cast<std::size_t>(buffer.numel()));
}

// What the ranks agreed on at a step boundary, the same on every rank.
struct StepVote {
  bool stop = false;                   // a preemption signal reached some rank
  double nonfinite_gradients = 0.0;    // non-finite values in the all-reduced gradients (the same on every rank)
  std::vector<int> nonfinite_loss;     // ranks whose loss was not finite
  std::vector<int> nonfinite_own;      // ranks whose own gradients (before the all-reduce) were not finite
  bool finite() const { return nonfinite_gradients == 0 && nonfinite_loss.empty(); }
};

std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

// How many samples make an optimizer step: ranks x train.batch_size x train.accumulate_batches.
struct StepShape {
  std::int64_t world = 0;
  std::int64_t batch = 0;    // per rank and loader batch; 0: not recorded
  std::int64_t batches = 1;  // loader batches per step

  std::int64_t global() const { return world * batch * batches; }

  // "2 ranks x 24 (global batch 48)", "1 rank x 16 x 3 batches (global batch 48)".
  std::string describe() const {
    std::string out = std::to_string(world) + (world == 1 ? " rank" : " ranks");
    if (batch == 0) return out;
    out += " x " + std::to_string(batch);
    if (batches > 1) out += " x " + std::to_string(batches) + " batches";
    return out + " (global batch " + std::to_string(global()) + ")";
  }

  // From a checkpoint manifest's state: its world size and the batch keys of its resolved config.
  static StepShape saved_in(const nlohmann::json& manifest_state) {
    StepShape shape;
    shape.world = manifest_state.value("world_size", std::int64_t{0});
    const nlohmann::json config = manifest_state.value("config", nlohmann::json::object());
    shape.batch = config.value("train.batch_size", std::int64_t{0});
    shape.batches = config.value("train.accumulate_batches", std::int64_t{1});
    return shape;
  }
};

std::shared_ptr<distributed::Backend> not_owned(distributed::Backend& backend) {
  return std::shared_ptr<distributed::Backend>(std::shared_ptr<distributed::Backend>(), &backend);
}

}  // namespace

struct Trainer::Impl {
  const Config config;
  const Runtime& runtime;
  const distributed::Backends backends;
  distributed::Backend& control;
  distributed::Backend& gradients;
  std::unique_ptr<RunParts> run;
  TrainState state;
  nlohmann::json parent;  // the version this run started from (checkpoint::parent_record); null for a fresh run
  double grad_norm = std::nan("");  // of the last step's gradient, unscaled, before clipping
  bool stop_voted = false;          // the last step's vote: a preemption signal reached some rank
  std::vector<std::string> param_names;  // of run->params, for errors
  std::unique_ptr<tracking::MetricHub> hub;
  // After `hub`, so destroyed before it: its destructor waits for a background save, which reports to the hub.
  std::unique_ptr<checkpoint::Checkpointer> checkpointer;  // rank 0, during fit()

  Impl(const Config& c, const Runtime& r, distributed::Backends b)
      : config(c), runtime(r), backends(std::move(b)), control(*backends.control), gradients(*backends.gradients) {}

  const TrainOptions& options() const { return run->options; }

  // The batch's rows [begin, begin + size) as they go into the loss; class labels are checked against the model's
  // outputs first, so a bad label names its sample instead of ending in LibTorch's bare "out of bounds".
  at::Tensor targets_of(const data::Batch& batch, const data::Loader& loader, const at::Tensor& output,
                        std::int64_t begin, std::int64_t size) const {
    return checked_targets(batch, loader, run->loss, output, begin, size, run->device);
  }

  // What one optimizer step consumed, for the loop's position and the step's metrics.
  struct StepOutcome {
    double local_loss = 0.0;          // this rank's mean loss over its samples of the step
    std::int64_t local_samples = 0;   // this rank's samples over the step's batches
    std::int64_t global_samples = 0;  // the step's samples across ranks
    std::int64_t cursor_after = 0;    // the epoch's global cursor after the step
  };

  // One optimizer step on this rank's share of the step's samples: its train.accumulate_batches loader batches
  // (`batch` is the first; the loader gives the rest), each run as ddp.accumulate_steps micro-batches. Gradients add
  // up locally and only the last backward of the step communicates (the no_sync pattern), so the step equals one
  // batch that many times as large.
  StepOutcome train_step(data::Batch batch, data::Loader& loader, StepTimes& times) {
    const Precision precision = options().precision;
    // fp16: gradients of the loss times the scale, unscaled in the clipping pass (bf16 and fp32 need none).
    const double loss_scale = precision == Precision::Float16 ? state.loss_scale.value : 1.0;
    bool loss_finite = true;
    std::optional<data::Batch> nonfinite_batch;  // this rank's first batch whose loss was not finite, for errors
    seed_step_generators(options().seed, control.rank(), state.position(loader.sampler().num_samples()),
                         run->device);
    const double lr = run->schedule.lr(run->schedule_position(state));
    for (auto& group : run->optimizer->param_groups()) group.options().set_lr(lr);
    const auto sync_start = Clock::now();
    const std::int64_t buffers_every = options().broadcast_buffers_every;
    if (buffers_every > 0 && state.step % buffers_every == 0) distributed::broadcast_from_root(run->buffers, gradients);
    run->reducer->zero_grad();
    StepOutcome outcome{0.0, batch.step_local, batch.step_global, 0};
    const double share_of_step =
        static_cast<double>(outcome.local_samples) / static_cast<double>(outcome.global_samples);
    distributed::BackwardPass pass{state.step, share_of_step};
    double waited = 0.0;  // for the step's later batches, inside the compute interval
    const auto compute_start = Clock::now();
    while (true) {
      const std::int64_t n = batch.targets.size(0);
      if (n > 0) {
        const at::Tensor inputs = batch.inputs.to(run->device);
        const std::int64_t micro_steps = std::min(options().accumulate_steps, n);
        bool batch_finite = true;
        for (std::int64_t i = 0; i < micro_steps; ++i) {
          const std::int64_t begin = n * i / micro_steps;
          const std::int64_t size = n * (i + 1) / micro_steps - begin;
          pass.communicate = batch.ends_step && i == micro_steps - 1;
          run->reducer->prepare_for_backward(pass);
          at::Tensor loss;
          {
            const AutocastGuard autocast(precision, run->device);
            const at::Tensor output = run->model.forward(inputs.narrow(0, begin, size));
            loss = run->loss.mean(output, targets_of(batch, *run->train_loader, output, begin, size));
          }
          // Each micro-batch's mean loss weighted by its share of this rank's samples of the step: the sum is the
          // mean loss over them (the Reducer's weight then makes it the global mean).
          const double share = static_cast<double>(size) / static_cast<double>(outcome.local_samples);
          const double weight = share * loss_scale;
          (weight == 1.0 ? loss : loss * weight).backward();
          const double value = loss.item<double>();
          batch_finite = batch_finite && std::isfinite(value);
          outcome.local_loss += value * share;
        }
        if (!batch_finite && !nonfinite_batch) nonfinite_batch = batch;
        loss_finite = loss_finite && batch_finite;
      } else if (batch.ends_step) {
        // No samples of the step's last batch here: what earlier batches added up (or zeros) is this rank's part.
        pass.has_samples = false;
        pass.communicate = true;
        run->reducer->prepare_for_backward(pass);
      }
      if (batch.ends_step) break;
      std::optional<data::Batch> next = loader.next();
      DPT_CHECK(next, "the training data ended inside optimizer step ", state.step + 1, " (epoch ", state.epoch + 1,
                "): the sampler promised more batches");
      waited += loader.last_wait_seconds();
      batch = std::move(*next);
    }
    outcome.cursor_after = batch.cursor_after;
    const auto comm_start = Clock::now();
    run->reducer->finish();
    const auto comm_end = Clock::now();
    const std::vector<at::Tensor> grads = update_gradients();
    const at::Tensor stats = kernels::gradient_stats(grads);
    // One small copy from a GPU: the vote needs the totals and whether this rank's own gradients were finite.
    const at::Tensor host = at::cat({stats[-1], run->reducer->local_nonfinite().to(at::kDouble)}).cpu();
    at::Tensor totals = host.narrow(0, 0, 2).clone();
    if (run->reducer->zero()) sum_shard_totals(stats, totals);
    const auto vote_start = Clock::now();
    const StepVote vote = vote_at_step_boundary(loss_finite, host[2].item<double>() == 0, totals[1].item<double>());
    const auto vote_end = Clock::now();
    stop_voted = vote.stop;
    grad_norm = std::sqrt(totals[0].item<double>()) / loss_scale;
    const auto update_start = Clock::now();
    if (vote.finite()) {
      kernels::clip_and_unscale(grads, stats, options().grad_clip, 1.0 / loss_scale);
      run->optimizer->step();
      if (run->reducer->zero()) run->reducer->gather_parameters();
      if (precision == Precision::Float16) state.loss_scale.update(true, options().loss_scale_growth_interval);
    } else {
      skip_step(vote, loss_finite, nonfinite_batch ? *nonfinite_batch : batch, stats);
    }
    // The vote waits for the slowest rank, as the all-reduce does: it counts as communication, not busy time.
    times.data_wait += waited;
    times.compute = seconds_between(compute_start, comm_start) - waited + seconds_between(comm_end, vote_start) +
                    seconds_between(vote_end, update_start);
    times.optimizer = seconds_between(update_start, Clock::now());
    times.comm = seconds_between(comm_start, comm_end) + seconds_between(sync_start, compute_start) +
                 seconds_between(vote_start, vote_end);
    return outcome;
  }

  // The gradients the update reads: every parameter's, or with ddp.zero = 1 this rank's shard of every bucket (the
  // optimizer steps only that shard, and the rest of each gradient bucket is not reduced).
  std::vector<at::Tensor> update_gradients() const {
    if (run->reducer->zero()) return run->reducer->gradient_shards();
    std::vector<at::Tensor> grads;
    grads.reserve(run->params.size());
    for (const auto& p : run->params) grads.push_back(p.grad());
    return grads;
  }

  // ddp.zero = 1: each rank's stats cover its shards; the totals (sum of squares, non-finite count) summed over the
  // ranks are the whole gradient's, on every rank, and clipping reads them from the stats' last row.
  void sum_shard_totals(const at::Tensor& stats, at::Tensor& totals) {
    control.allreduce(totals, distributed::ReduceOp::Sum)->wait();
    stats[-1].copy_(totals);
  }

  // The one control all-reduce of a step, before the update: a preemption signal on any rank, the all-reduced
  // gradients' non-finite count (already equal on every rank, summed only to keep the vote one collective), which
  // ranks' losses were not finite and which ranks' own gradients were not. Sums of 0/1 flags, so every rank reads
  // the same decision.
  StepVote vote_at_step_boundary(bool loss_finite, bool own_gradients_finite, double nonfinite_gradients) {
    const int world = control.world_size();
    at::Tensor votes = at::zeros({2 + 2 * world}, at::kDouble);
    auto* v = votes.data_ptr<double>();
    v[0] = PreemptionSignals::received() != 0 ? 1.0 : 0.0;
    v[1] = nonfinite_gradients;
    v[2 + control.rank()] = loss_finite ? 0.0 : 1.0;
    v[2 + world + control.rank()] = own_gradients_finite ? 0.0 : 1.0;
    control.allreduce(votes, distributed::ReduceOp::Sum)->wait();
    StepVote vote;
    vote.stop = v[0] > 0;
    vote.nonfinite_gradients = v[1] / world;
    for (int r = 0; r < world; ++r) {
      if (v[2 + r] > 0) vote.nonfinite_loss.push_back(r);
      if (v[2 + world + r] > 0) vote.nonfinite_own.push_back(r);
    }
    return vote;
  }

  // A step with non-finite values, the same decision on every rank: fp16 gradients that overflowed lower the loss
  // scale and skip (as GradScaler does); anything else skips with train.nonfinite = "skip", or ends the run with
  // one error, agreed by every rank, from the lowest rank whose loss was not finite (its samples named) or, for
  // gradients alone, naming the first parameter.
  void skip_step(const StepVote& vote, bool loss_finite, const data::Batch& batch, const at::Tensor& stats) {
    const bool overflow = options().precision == Precision::Float16 && vote.nonfinite_loss.empty();
    if (overflow) state.loss_scale.update(false, options().loss_scale_growth_interval);
    if (overflow || options().skip_nonfinite) {
      ++state.skipped_steps;
      if (!overflow) {
        runtime.out() << "dptrain: warning: step " << state.step + 1 << " skipped (train.nonfinite = \"skip\"): "
                      << nonfinite_summary(vote, stats) << std::endl;
      }
      return;
    }
    std::string message;
    const int root = vote.nonfinite_loss.empty() ? 0 : vote.nonfinite_loss.front();
    if (control.rank() == root) {
      message = "step " + std::to_string(state.step + 1) + ": " +
                (loss_finite ? nonfinite_summary(vote, stats) : nonfinite_loss_detail(batch)) +
                "; set train.nonfinite = \"skip\" to skip such steps";
    }
    throw AgreedError(broadcast_string(control, message, root));
  }

  // "the loss was not finite on rank(s) 1, 3", or "the gradient of parameter 'fc1.weight' holds 12 non-finite values
  // after the all-reduce; rank(s) 1 brought them (own gradients not finite, though every rank's loss was finite)", or
  // that no rank's own gradients held them (the reduction overflowed).
  std::string nonfinite_summary(const StepVote& vote, const at::Tensor& stats) const {
    if (!vote.nonfinite_loss.empty()) return "the loss was not finite on rank(s) " + rank_list(vote.nonfinite_loss);
    std::string where;
    if (run->reducer->zero()) {
      where = "the gradients hold " + std::to_string(static_cast<std::int64_t>(vote.nonfinite_gradients)) +
              " non-finite value(s) after the reduce-scatter";
    } else {
      const at::Tensor counts = stats.select(1, 1).cpu();
      std::int64_t first = 0;
      while (first + 1 < static_cast<std::int64_t>(param_names.size()) && counts[first].item<double>() == 0) ++first;
      where = "the gradient of parameter '" + param_names.at(static_cast<std::size_t>(first)) + "' holds " +
              std::to_string(static_cast<std::int64_t>(counts[first].item<double>())) +
              " non-finite value(s) after the all-reduce";
    }
    if (!vote.nonfinite_own.empty()) {
      return where + "; rank(s) " + rank_list(vote.nonfinite_own) +
             " brought them (own gradients not finite, though every rank's loss was finite)";
    }
    std::string cause = "; every rank's loss and own gradients were finite, so the reduction overflowed";
    if (run->reducer->compression() == distributed::Compression::Float16) {
      cause += " (ddp.compression = \"fp16\" carries values up to 65504; use \"bf16\")";
    }
    return where + cause;
  }

  // This rank's non-finite loss and the samples behind it: those whose inputs are not finite, else the whole batch.
  std::string nonfinite_loss_detail(const data::Batch& batch) const {
    const data::Source& source = run->train_loader->source();
    const at::Tensor finite_rows = at::isfinite(batch.inputs).flatten(1).all(1);
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < finite_rows.numel(); ++i) {
      if (!finite_rows[i].item<bool>()) rows.push_back(i);
    }
    const bool inputs = !rows.empty();
    if (!inputs) {
      for (std::int64_t i = 0; i < finite_rows.numel(); ++i) rows.push_back(i);
    }
    constexpr std::size_t kNamed = 8;
    std::string named;
    for (std::size_t i = 0; i < std::min(rows.size(), kNamed); ++i) {
      named += (named.empty() ? "" : ", ") + source.locate(batch.indices.at(static_cast<std::size_t>(rows[i])));
    }
    if (rows.size() > kNamed) named += " and " + std::to_string(rows.size() - kNamed) + " more";
    return "the loss was not finite on rank " + std::to_string(control.rank()) + " of " +
           std::to_string(control.world_size()) + (inputs ? "; non-finite inputs in " : "; its batch: ") + named;
  }

  std::map<std::string, double> log_metrics(StepStats& stats, double local_loss, std::int64_t local_samples) {
    auto values = stats.collect(control, local_loss, local_samples, run->device.is_cuda() ? run->device.index() : -1);
    state.last_loss = values.at("train/loss");
    values["train/lr"] = run->schedule.lr(run->schedule_position(state));
    values["train/samples"] = static_cast<double>(state.position(run->train_loader->sampler().num_samples()));
    values["train/grad_norm"] = grad_norm;
    values["train/skipped_steps"] = static_cast<double>(state.skipped_steps);
    if (options().precision == Precision::Float16) values["train/loss_scale"] = state.loss_scale.value;
    return values;
  }

  EvalResult evaluate() {
    DPT_CHECK(run->test_loader, "evaluation needs test data: set data.test in the config or with --set data.test=PATH");
    return train::evaluate(
        EvalParts{run->model, *run->module, *run->test_loader, run->loss, options().precision, run->device, control});
  }

  // After an epoch's last step, before that step's save: so the version holds the result, and a resume from it
  // does not evaluate the epoch again.
  void evaluate_epoch() {
    if (!run->test_loader || !options().eval_every_epoch) return;
    state.last_eval = evaluate();
    std::map<std::string, double> values = {{"eval/loss", state.last_eval->loss}};
    if (run->loss.classification) values["eval/accuracy"] = state.last_eval->accuracy;
    record(std::move(values));
  }

  // What a checkpoint records besides the loop's position: lineage, the run, the build.
  nlohmann::json run_record() const {
    return {{"world_size", control.world_size()},
            {"samples", state.position(run->train_loader->sampler().num_samples())},
            {"dataset_digest", run->dataset_digest},
            {"run_name", config.get_string("run.name")},
            {"tags", config.get_strings("tracking.tags")},
            {"model", options().model},
            {"config", config.to_json()},
            {"optimizer", options().optimizer},
            {"build", checkpoint::build_info()},
            {"parent", parent},
            {"tracking_runs", hub ? hub->backend_run_ids() : std::map<std::string, std::string>()}};
  }

  // Every rank calls this at the same step (with ddp.zero = 1 the optimizer state's shards are gathered); rank 0
  // hands a snapshot to the Checkpointer. The time training stands still for it is recorded as checkpoint/stall_s.
  void save() {
    if (!run->store) return;
    const auto stall_start = Clock::now();
    // ddp.zero = 1: every rank takes part in gathering the optimizer state's shards; checkpoints hold it whole.
    checkpoint::NamedTensors optimizer_state;
    if (run->reducer->zero()) optimizer_state = gather_optimizer_state(*run->optimizer, *run->reducer, control);
    if (!checkpointer) return;
    if (!run->reducer->zero()) optimizer_state = optimizer_state_tensors(*run->optimizer, checkpointer->async());
    checkpointer->save(
        snapshot(state, run->named_state(), std::move(optimizer_state), run_record(), checkpointer->async()));
    record({{"checkpoint/stall_s", seconds_between(stall_start, Clock::now())}});
  }

  // How a checkpoint's optimizer state reaches this rank: whole, or with ddp.zero = 1 the shards this rank steps.
  OptimizerStateLoader optimizer_loader(const std::string& ref) {
    return [this, ref](const checkpoint::NamedTensors& tensors) {
      if (run->reducer->zero()) {
        load_sharded_optimizer_state(*run->optimizer, *run->reducer, run->params, tensors, ref);
      } else {
        load_optimizer_state(*run->optimizer, tensors, ref);
      }
    };
  }

  // Every rank reads the same verified version; for "latest", damaged newer versions are skipped (one line each).
  void resume_from(const std::string& ref) {
    DPT_CHECK(run->store, "--resume needs checkpoints: checkpoint.enabled is false");
    const checkpoint::CheckpointContents contents = load_version(*run->store, ref, runtime.out());
    const std::string run_id = state.run_id;
    const LossScale configured = state.loss_scale;
    state = restore(contents, run->named_state(), optimizer_loader(ref), ref, options().model);
    parent = checkpoint::parent_record(contents, "resume");
    if (state.run_id.empty()) state.run_id = run_id;
    if (!contents.state.contains("loss_scale")) state.loss_scale = configured;
    const auto& sampler = run->train_loader->sampler();
    const StepShape saved = StepShape::saved_in(contents.state);
    const StepShape now{control.world_size(), sampler.batch_per_rank(), sampler.batches_per_step()};
    runtime.out() << "dptrain: resuming from " << contents.version << " in " << run->store->root() << ": step "
                  << state.step << ", epoch " << state.epoch + 1 << " at sample " << state.cursor << " of "
                  << sampler.num_samples() << " (saved by " << saved.describe() << ", now " << now.describe() << ")"
                  << std::endl;
    if (saved.batch > 0 && saved.global() != now.global()) {
      const std::int64_t at = state.position(sampler.num_samples());
      runtime.out() << "dptrain: the global batch changes from " << saved.global() << " to " << now.global()
                    << " samples per step: the learning-rate schedule counts samples, so it goes on from sample " << at
                    << " unchanged (train.lr is not rescaled for the new batch)";
      if (options().max_steps > 0) {
        const std::int64_t left = run->steps_left(state);
        runtime.out() << "; train.max_steps counts steps, so its " << left << " remaining steps end at sample "
                      << state.epoch * sampler.num_samples() + sampler.position_after(state.cursor, left)
                      << ", where the schedule now ends";
      }
      runtime.out() << std::endl;
    }
  }

  void record(std::map<std::string, double> values) {
    if (hub) hub->record(tracking::MetricRecord{state.step, state.epoch, unix_time(), std::move(values)});
  }

  void announce() const {
    std::int64_t numel = 0;
    for (const auto& p : run->params) numel += p.numel();
    const auto& sampler = run->train_loader->sampler();
    runtime.out() << "dptrain: run " << state.run_id << " | " << control.world_size() << " rank(s) via "
                  << runtime.launcher() << ", backend " << gradients.describe() << ", " << runtime.threads()
                  << " thread(s)/rank" << (runtime.pinned_cpus().empty() ? "" : " on its own CPUs") << " | model "
                  << options().model << " (" << numel << " parameters) on " << run->device.str() << " | "
                  << sampler.num_samples() << " samples, global batch " << sampler.samples_per_step()
                  << (sampler.batches_per_step() > 1
                          ? " (" + std::to_string(sampler.batches_per_step()) + " batches of " +
                                std::to_string(sampler.global_batch_size()) + ")"
                          : std::string())
                  << ", " << run->total_steps(state) << " steps | rank " << control.rank() << " on "
                  << runtime.host() << " (" << runtime.local_size() << " rank(s) on this host)" << std::endl;
  }

  // Run id, resume, the Checkpointer, rank 0's model state on every rank, the sinks.
  void start(const std::string& resume, const InitFrom& init) {
    for (const auto& p : run->module->named_parameters()) {
      if (p.value().requires_grad()) param_names.push_back(p.key());
    }
    state.loss_scale.value = options().loss_scale;
    runtime.all_or_none(init.ref.empty() ? "resume" : "--init-from", [&] {
      if (control.rank() == 0) state.run_id = tracking::new_run_id();
      DPT_CHECK(resume.empty() || init.ref.empty(), "--resume and --init-from exclude each other: --resume continues ",
                "a run, --init-from starts a new one from a version's weights");
      DPT_CHECK(!init.ref.empty() || (!init.optimizer && init.store.empty()),
                "--init-optimizer and --init-from-dir go with --init-from VERSION");
      if (!resume.empty()) resume_from(resume);
      if (!init.ref.empty()) {
        parent = init_from(init, options().checkpoint_dir, run->named_state(), optimizer_loader(init.ref),
                           options().model, runtime.out());
      }
      if (run->store && control.rank() == 0) {
        checkpointer = std::make_unique<checkpoint::Checkpointer>(
            checkpoint::CheckpointerOptions::from_config(config),
            [this](const PublishedCheckpoint& published) {
              if (hub) hub->checkpoint(published);  // the MLflow sink uploads and registers it
            });
      }
    });
    state.run_id = broadcast_string(control, state.run_id);
    std::vector<at::Tensor> model_state;
    for (const auto& [name, tensor] : run->named_state()) model_state.push_back(tensor);
    distributed::broadcast_from_root(model_state, gradients);

    // Every rank: rank 0 gets every sink, the others only per-rank ones (Prometheus endpoints), if any.
    runtime.all_or_none("starting metric sinks", [&] {
      tracking::RunInfo info{state.run_id, config.get_string("run.name"),
                             config.get_string("run.output_dir") + "/" + state.run_id, config.to_json(),
                             tracking::parse_tags(config.get_strings("tracking.tags")), control.rank()};
      auto sinks = tracking::make_sinks(config.get_strings("tracking.sinks"), info, runtime.out(),
                                        run->total_steps(state), &config);
      if (!sinks.empty()) hub = std::make_unique<tracking::MetricHub>(info, std::move(sinks));
    });
    announce();
  }

  FitResult fit(const std::string& resume, const InitFrom& init) {
    const auto started = Clock::now();
    FitResult result;
    const PreemptionSignals signals;
    start(resume, init);
    const std::int64_t first_step = state.step;
    const std::int64_t epochs = options().epochs;
    // Only train.max_steps limits the step count: steps are counted at the world size of their time, so after a
    // resume at another world size the epochs and the global cursor alone say where training ends.
    const std::int64_t max_steps =
        options().max_steps > 0 ? options().max_steps : std::numeric_limits<std::int64_t>::max();
    const std::int64_t save_every = options().save_every;
    data::Loader& loader = *run->train_loader;
    StepStats stats;
    bool stop = state.step >= max_steps;
    for (; state.epoch < epochs && !stop; ++state.epoch, state.cursor = 0) {
      loader.start_epoch(state.epoch, state.cursor);
      while (auto batch = loader.next()) {
        StepTimes times;
        times.data_wait = loader.last_wait_seconds();
        const StepOutcome done = train_step(std::move(*batch), loader, times);
        ++state.step;
        state.cursor = done.cursor_after;
        stats.add(times, done.global_samples);
        const bool last_step = state.step == max_steps || (state.epoch + 1 == epochs && !loader.sampler().has_next());
        if (state.step % options().log_every == 0 || last_step) {
          record(log_metrics(stats, done.local_loss, done.local_samples));
        }
        if (!loader.sampler().has_next()) evaluate_epoch();
        if (save_every > 0 && state.step % save_every == 0) save();
        // A signal on any rank stops every rank after the same step (the step vote carried the flags).
        if (stop_voted) {
          result.preempted = true;
          stop = true;
          break;
        }
        if (state.step >= max_steps) {
          stop = true;
          break;
        }
      }
      const bool epoch_complete = !loader.sampler().has_next();
      if (epoch_complete) ++result.epochs;
      if (stop && !epoch_complete) break;  // keep (epoch, cursor) pointing at the next sample
    }
    // A resumed run that had already finished takes no step: a new version would only repeat the last one.
    if (state.step == first_step) {
      runtime.out() << "dptrain: nothing to train: the resumed run already reached step " << state.step
                    << " (train.epochs = " << epochs << ", train.max_steps = " << options().max_steps
                    << "); no new checkpoint published; raise either to train on" << std::endl;
    } else if (run->store && (save_every == 0 || state.step % save_every != 0)) {
      save();
    }
    if (checkpointer) result.checkpoint = checkpointer->wait();
    checkpointer.reset();
    if (hub) hub->close(result.preempted ? "KILLED" : "FINISHED");
    hub.reset();
    result.steps = state.step;
    result.run_id = state.run_id;
    result.evaluated = state.last_eval.has_value();
    if (state.last_eval) result.eval = *state.last_eval;
    result.seconds = seconds_between(started, Clock::now());
    return result;
  }
};

Trainer::Trainer(const Config& config, const Runtime& runtime, distributed::Backends backends, TrainerParts parts)
    : impl_(std::make_unique<Impl>(config, runtime, std::move(backends))) {
  runtime.all_or_none("set-up", [&] {
    impl_->run = std::make_unique<RunParts>(config, impl_->backends, std::move(parts));
    check_precision(impl_->run->options.precision, impl_->run->device);
  });
  const std::string warning = precision_warning(impl_->run->options.precision, impl_->run->device);
  if (!warning.empty() && runtime.rank() == 0) std::cerr << "dptrain: warning: " << warning << std::endl;
}

Trainer::Trainer(const Config& config, const Runtime& runtime, distributed::Backend& backend, TrainerParts parts)
    : Trainer(config, runtime,
              distributed::Backends{not_owned(backend), not_owned(backend),
                                    distributed::model_device(config.get_string("runtime.device"),
                                                              runtime.local_rank())},
              std::move(parts)) {}

Trainer::~Trainer() = default;

FitResult Trainer::fit(const std::string& resume, const InitFrom& init) { return impl_->fit(resume, init); }

EvalResult Trainer::evaluate() { return impl_->evaluate(); }

std::vector<at::Tensor> Trainer::parameters() const { return impl_->run->params; }

std::int64_t Trainer::step() const { return impl_->state.step; }

std::int64_t Trainer::optimizer_state_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& [name, tensor] : optimizer_state_tensors(*impl_->run->optimizer, /*copy=*/false)) {
    bytes += static_cast<std::int64_t>(tensor.nbytes());
  }
  return bytes;
}

bool Trainer::holds_model_storage(const at::Tensor& tensor) const {
  if (impl_->run->reducer->holds(tensor)) return true;
  for (const auto& [name, t] : impl_->run->named_state()) {
    if (tensor.is_alias_of(t) || (t.grad().defined() && tensor.is_alias_of(t.grad()))) return true;
  }
  return false;
}

}  // namespace dpt::train
