// Trainer: one training step = Loader.next -> forward -> backward (the Reducer's all-reduce overlaps it) -> clip
// -> optimizer step -> lr schedule -> metrics -> periodic checkpoint. Every rank runs the same steps in the same order.
#include "train/trainer.h"

#include <chrono>
#include <cstring>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_store.h"
#include "checkpoint/checkpointer.h"
#include "core/check.h"
#include "data/data_files.h"
#include "data/dataset_digest.h"
#include "data/hdf5_source.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/tensor_source.h"
#include "distributed/reducer.h"
#include "tracking/metric_hub.h"
#include "tracking/sinks.h"
#include "tracking/system_metrics.h"
#include "train/model_registry.h"
#include "train/fused_adam.h"
#include "train/optimizer_state.h"
#include "train/preemption.h"

namespace dpt::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& config, std::vector<torch::Tensor> params) {
  const std::string& name = config.get_string("train.optimizer");
  const double lr = config.get_float("train.lr");
  const double wd = config.get_float("train.weight_decay");
  const bool fused = config.get_bool("train.fused_optimizer");
  if (name == "adam") {
    const auto options = torch::optim::AdamOptions(lr).weight_decay(wd);
    if (fused) return std::make_unique<FusedAdam>(params, options);
    return std::make_unique<torch::optim::Adam>(params, options);
  }
  if (name == "adamw") {
    const auto options = torch::optim::AdamWOptions(lr).weight_decay(wd);
    if (fused) return std::make_unique<FusedAdamW>(params, options);
    return std::make_unique<torch::optim::AdamW>(params, options);
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(lr).momentum(config.get_float("train.momentum")).weight_decay(wd));
}

// Broadcasts a short string from rank 0 (the run id) through the backend.
std::string broadcast_string(distributed::Backend& backend, const std::string& value) {
  constexpr std::int64_t capacity = 128;
  at::Tensor buffer = at::zeros({capacity}, at::kByte);
  if (backend.rank() == 0) {
    DPT_CHECK(static_cast<std::int64_t>(value.size()) < capacity, "internal: string too long to broadcast");
    std::memcpy(buffer.data_ptr(), value.data(), value.size());
  }
  backend.broadcast(buffer, 0)->wait();
  return std::string(static_cast<const char*>(buffer.data_ptr()));
}

}  // namespace

struct Trainer::Impl {
  Config config;
  const Runtime& runtime;
  distributed::Backend& backend;

  torch::nn::AnyModule model;
  std::shared_ptr<torch::nn::Module> module;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<distributed::Reducer> reducer;
  std::vector<torch::Tensor> buffers;  // BatchNorm running statistics and the like, kept equal to rank 0's
  std::unique_ptr<data::Loader> train_loader;
  std::unique_ptr<data::Loader> test_loader;
  std::unique_ptr<checkpoint::CheckpointStore> store;
  std::unique_ptr<tracking::MetricHub> hub;
  // After `hub`, so destroyed before it: its destructor waits for a background save, which reports to the hub.
  std::unique_ptr<checkpoint::Checkpointer> checkpointer;  // rank 0, during fit()
  torch::Device device = torch::kCPU;

  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::int64_t cursor = 0;  // global samples of `epoch` already consumed
  std::string run_id;
  nlohmann::json dataset_digest;  // of the training files, for lineage in checkpoints (rank 0 only)
  std::optional<EvalResult> last_eval;
  double last_loss = std::nan("");
  double grad_norm = std::nan("");  // of the last step, before clipping; NaN: not measured (clipping off)
  // This rank's seconds since the last log step, for the step-time, straggler and system metrics.
  struct Interval {
    std::int64_t steps = 0;
    double data_wait = 0.0;
    double compute = 0.0;  // forward, backward, clipping and optimizer step
    double comm = 0.0;     // in Reducer::finish (communication not hidden by backward) and buffer broadcasts
    double cpu_seconds = 0.0;  // process CPU time at the interval's start
  } interval;

  Impl(const Config& c, const Runtime& r, distributed::Backend& b) : config(c), runtime(r), backend(b) {}

  void build() {
    device = choose_device();
    torch::manual_seed(static_cast<std::uint64_t>(config.get_int("run.seed")));
    model = ModelRegistry::global().create(config.get_string("model.name"), config.options("model"));
    module = model.ptr();
    module->to(device);
    std::vector<distributed::Reducer::NamedParameter> named;
    for (auto& p : module->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      params.push_back(p.value());
      named.emplace_back(p.key(), p.value());
    }
    buffers = module->buffers();
    optimizer = make_optimizer(config, params);
    distributed::ReducerOptions ddp;
    ddp.bucket_cap_mb = config.get_float("ddp.bucket_cap_mb");
    ddp.first_bucket_mb = config.get_float("ddp.first_bucket_mb");
    ddp.find_unused_parameters = config.get_bool("ddp.find_unused_parameters");
    ddp.compression = distributed::parse_compression(config.get_string("ddp.compression"));
    reducer = std::make_unique<distributed::Reducer>(std::move(named), backend, ddp);

    const data::Normalization norm{config.get_float("data.scale"), config.get_float("data.mean"),
                                   config.get_float("data.std")};
    const auto seed = static_cast<std::uint64_t>(config.get_int("run.seed"));
    const int prefetch = static_cast<int>(config.get_int("data.prefetch"));
    const std::vector<std::string> train_files = data::split_files(config, "train");
    std::shared_ptr<data::Source> train_source = data::cache_in_memory(
        std::make_shared<data::Hdf5Source>(train_files, config.get_string("data.inputs"),
                                           config.get_string("data.targets")),
        config.get_int("data.cache_mb") << 20);
    // Rank 0 alone saves checkpoints; the digest is cached beside the data, so only a first run hashes the files.
    if (backend.rank() == 0) dataset_digest = data::dataset_digest(train_files);
    data::Sampler train_sampler(train_source->size(), config.get_int("train.batch_size"), backend.rank(),
                                backend.world_size(), seed, config.get_bool("data.shuffle"),
                                data::parse_last_batch(config.get_string("data.last_batch")));
    const bool pin = device.is_cuda() && torch::cuda::is_available();
    train_loader = std::make_unique<data::Loader>(train_source, train_sampler, norm, prefetch, pin);
    const std::vector<std::string> test_files = data::split_files(config, "test");
    if (!test_files.empty()) {
      auto test_source = std::make_shared<data::Hdf5Source>(test_files, config.get_string("data.inputs"),
                                                            config.get_string("data.targets"));
      data::Sampler test_sampler(test_source->size(), std::max<std::int64_t>(256, config.get_int("train.batch_size")),
                                 backend.rank(), backend.world_size(), seed, false);
      test_loader = std::make_unique<data::Loader>(test_source, test_sampler, norm, prefetch, pin);
    }
    if (config.get_bool("checkpoint.enabled")) {
      store = std::make_unique<checkpoint::CheckpointStore>(config.get_string("checkpoint.dir"));
      if (backend.rank() == 0) store->check_writable();
    }
  }

  torch::Device choose_device() const {
    const std::string& wanted = config.get_string("runtime.device");
    if (wanted == "cpu" || (wanted == "auto" && !torch::cuda::is_available())) return torch::kCPU;
    DPT_CHECK(torch::cuda::is_available(), "runtime.device = \"cuda\" but this LibTorch has no usable CUDA device: ",
              "use runtime.device = \"cpu\" or build against a CUDA LibTorch (CMAKE_PREFIX_PATH)");
    const int count = static_cast<int>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(runtime.local_rank() % count));
  }

  // Parameters, then buffers, by name: what a checkpoint holds of the model and what rank 0 broadcasts at start.
  std::vector<std::pair<std::string, torch::Tensor>> named_state() const {
    std::vector<std::pair<std::string, torch::Tensor>> all;
    for (const auto& item : module->named_parameters()) all.emplace_back(item.key(), item.value());
    for (const auto& item : module->named_buffers()) all.emplace_back(item.key(), item.value());
    return all;
  }

  std::int64_t total_steps() const {
    const std::int64_t per_epoch = train_loader->sampler().steps_per_epoch();
    const std::int64_t all = per_epoch * config.get_int("train.epochs");
    const std::int64_t max_steps = config.get_int("train.max_steps");
    return max_steps > 0 ? std::min(all, max_steps) : all;
  }

  double learning_rate() const {
    const double base = config.get_float("train.lr");
    const std::string& schedule = config.get_string("train.lr_schedule");
    if (schedule == "cosine") {
      const double progress = static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, total_steps()));
      constexpr double pi = 3.14159265358979323846;
      return base * 0.5 * (1.0 + std::cos(pi * std::min(1.0, progress)));
    }
    if (schedule == "step") {
      return base * std::pow(config.get_float("train.lr_gamma"), epoch / config.get_int("train.lr_step_epochs"));
    }
    return base;
  }

  // One optimizer step on this rank's share of the global batch, run as ddp.accumulate_steps micro-batches
  // (gradients add up locally; only the last backward communicates). Returns the local mean loss.
  double train_step(const data::Batch& batch) {
    const double lr = learning_rate();
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    const auto sync_start = Clock::now();
    const std::int64_t buffers_every = config.get_int("ddp.broadcast_buffers_every");
    if (buffers_every > 0 && step % buffers_every == 0) distributed::broadcast_from_root(buffers, backend);
    reducer->zero_grad();
    const std::int64_t n = batch.targets.size(0);
    distributed::BackwardPass pass{step, static_cast<double>(n) / static_cast<double>(batch.global_batch)};
    double loss_value = 0.0;
    const auto compute_start = Clock::now();
    if (n > 0) {
      torch::Tensor inputs = batch.inputs.to(device);
      torch::Tensor targets = batch.targets.to(device);
      const std::int64_t micro_steps = std::min(config.get_int("ddp.accumulate_steps"), n);
      for (std::int64_t i = 0; i < micro_steps; ++i) {
        const std::int64_t begin = n * i / micro_steps;
        const std::int64_t size = n * (i + 1) / micro_steps - begin;
        pass.communicate = i == micro_steps - 1;
        reducer->prepare_for_backward(pass);
        torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(inputs.narrow(0, begin, size)),
                                                                  targets.narrow(0, begin, size));
        // Each micro-batch's mean loss weighted by its share: the sum is the mean loss over this rank's batch.
        const double share = static_cast<double>(size) / static_cast<double>(n);
        (micro_steps == 1 ? loss : loss * share).backward();
        loss_value += loss.item<double>() * share;
      }
    } else {
      pass.has_samples = false;
      reducer->prepare_for_backward(pass);
    }
    const auto comm_start = Clock::now();
    reducer->finish();
    const auto comm_end = Clock::now();
    const double clip = config.get_float("train.grad_clip");
    grad_norm = clip > 0 ? torch::nn::utils::clip_grad_norm_(params, clip) : std::nan("");
    optimizer->step();
    interval.compute += std::chrono::duration<double>(comm_start - compute_start).count() + seconds_since(comm_end);
    interval.comm += std::chrono::duration<double>(comm_end - comm_start + compute_start - sync_start).count();
    ++interval.steps;
    return loss_value;
  }

  // The L2 norm of the global gradient (equal on every rank after Reducer::finish); one sync, at log steps only.
  double gradient_norm() const {
    std::vector<at::Tensor> norms;
    for (const auto& p : params) {
      if (p.grad().defined()) norms.push_back(p.grad().detach().norm().to(at::kDouble).cpu());
    }
    return norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
  }

  // The metrics of a log step. One allgather of every rank's numbers, from which every rank derives the same
  // global values: the mean loss of the whole global batch, and the max and min over ranks of the per-step
  // busy time (data wait + compute, leaving out the gradient all-reduce, which makes every rank wait for the
  // slowest): their ratio exposes a straggler. "rank/..." values are this rank's own; Prometheus serves each
  // rank's. Sets last_loss and starts the next interval.
  std::map<std::string, double> interval_metrics(double local_loss, std::int64_t local_n, double elapsed,
                                                 std::int64_t samples) {
    const double steps = static_cast<double>(std::max<std::int64_t>(1, interval.steps));
    const double busy = (interval.data_wait + interval.compute) / steps;
    at::Tensor mine = at::tensor({local_loss * static_cast<double>(local_n), static_cast<double>(local_n), busy,
                                  interval.data_wait / steps, interval.compute / steps, interval.comm / steps},
                                 at::kDouble);
    at::Tensor all = at::empty({backend.world_size(), mine.numel()}, at::kDouble);
    backend.allgather(mine, all)->wait();
    const at::Tensor sum = all.sum(0);
    const at::Tensor max = std::get<0>(all.max(0));
    const double busy_min = all.select(1, 2).min().item<double>();
    const double count = sum[1].item<double>();
    last_loss = count > 0 ? sum[0].item<double>() / count : 0.0;

    const tracking::SystemSample system = tracking::sample_system(device.is_cuda() ? device.index() : -1);
    std::map<std::string, double> values = {
        {"train/loss", last_loss},
        {"train/samples_per_s", static_cast<double>(samples) / elapsed},
        {"train/lr", learning_rate()},
        {"train/grad_norm", std::isnan(grad_norm) ? gradient_norm() : grad_norm},
        {"train/data_wait_fraction", interval.data_wait / elapsed},
        {"train/step_time_s", elapsed / steps},
        {"train/step_time_max_s", max[2].item<double>()},
        {"train/step_time_min_s", busy_min},
        {"train/step_time_ratio", busy_min > 0 ? max[2].item<double>() / busy_min : 1.0},
        {"train/data_wait_s", max[3].item<double>()},
        {"train/compute_s", max[4].item<double>()},
        {"train/comm_s", max[5].item<double>()},
        {"rank/step_time_s", busy},
        {"rank/data_wait_s", interval.data_wait / steps},
        {"rank/compute_s", interval.compute / steps},
        {"rank/comm_s", interval.comm / steps},
        {"system/cpu_cores", (system.cpu_seconds - interval.cpu_seconds) / elapsed},
        {"system/rss_bytes", system.rss_bytes}};
    if (system.gpu_memory_bytes >= 0) values["system/gpu_memory_bytes"] = system.gpu_memory_bytes;
    interval = Interval{};
    interval.cpu_seconds = system.cpu_seconds;
    return values;
  }

  EvalResult evaluate() {
    DPT_CHECK(test_loader, "evaluation needs data.test: set it in the config or with --set data.test=PATH");
    torch::NoGradGuard no_grad;
    module->eval();
    double loss_sum = 0.0;
    std::int64_t correct = 0;
    std::int64_t count = 0;
    test_loader->start_epoch(0);
    while (auto batch = test_loader->next()) {
      if (batch->targets.size(0) == 0) continue;
      torch::Tensor targets = batch->targets.to(device);
      torch::Tensor logits = model.forward(batch->inputs.to(device));
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      correct += logits.argmax(1).eq(targets).sum().item<std::int64_t>();
      count += targets.size(0);
    }
    module->train();
    at::Tensor totals = at::tensor({loss_sum, static_cast<double>(correct), static_cast<double>(count)}, at::kDouble);
    backend.allreduce(totals, distributed::ReduceOp::Sum)->wait();
    EvalResult result;
    result.samples = static_cast<std::int64_t>(totals[2].item<double>());
    result.loss = totals[0].item<double>() / static_cast<double>(std::max<std::int64_t>(1, result.samples));
    result.accuracy = totals[1].item<double>() / static_cast<double>(std::max<std::int64_t>(1, result.samples));
    return result;
  }

  // Everything a resume needs, in host memory (copies for an async save; see checkpoint::host_tensor);
  // `rng_states` holds one CPU generator state per rank (dropout draws differ between ranks once a batch splits
  // unevenly).
  checkpoint::CheckpointContents snapshot(const at::Tensor& rng_states, bool copy) const {
    checkpoint::CheckpointContents contents;
    checkpoint::NamedTensors model_tensors;
    for (const auto& [name, tensor] : named_state()) {
      model_tensors.emplace_back(name, checkpoint::host_tensor(tensor, copy));
    }
    contents.tensors["model"] = std::move(model_tensors);
    for (std::int64_t r = 0; r < rng_states.size(0); ++r) {
      contents.tensors["rng"].emplace_back("rank" + std::to_string(r), rng_states[r].clone());
    }
    contents.tensors["optimizer"] = optimizer_state_tensors(*optimizer, copy);
    nlohmann::json metrics = nlohmann::json::object();
    if (std::isfinite(last_loss)) metrics["train/loss"] = last_loss;
    if (last_eval) {
      metrics["eval/loss"] = last_eval->loss;
      metrics["eval/accuracy"] = last_eval->accuracy;
    }
    contents.state = {{"step", step},
                      {"epoch", epoch},
                      {"cursor", cursor},
                      {"world_size", backend.world_size()},
                      {"dataset_digest", dataset_digest},
                      {"run_id", run_id},
                      {"run_name", config.get_string("run.name")},
                      {"tags", config.get_strings("tracking.tags")},
                      {"model", config.get_string("model.name")},
                      {"config", config.to_json()},
                      {"metrics", metrics},
                      {"optimizer", config.get_string("train.optimizer")},
                      {"build", checkpoint::build_info()}};
    return contents;
  }

  // Every rank calls this at the same step (the RNG states are gathered); rank 0 hands a snapshot to the
  // Checkpointer. The time training stands still for it is recorded as checkpoint/stall_s.
  void save() {
    if (!store) return;
    const auto stall_start = Clock::now();
    const at::Tensor mine = at::detail::getDefaultCPUGenerator().get_state();
    at::Tensor rng_states = at::empty({backend.world_size(), mine.numel()}, mine.options());
    backend.allgather(mine, rng_states)->wait();
    if (!checkpointer) return;
    checkpointer->save(snapshot(rng_states, checkpointer->async()));
    record({{"checkpoint/stall_s", seconds_since(stall_start)}});
  }

  // A signal on any rank stops every rank after the same step: the flags are summed at each step boundary.
  bool preemption_requested() {
    at::Tensor flag = at::full({1}, PreemptionSignals::received() != 0 ? 1.0 : 0.0, at::kDouble);
    backend.allreduce(flag, distributed::ReduceOp::Sum)->wait();
    return flag.item<double>() > 0;
  }

  void load_model_tensors(const checkpoint::NamedTensors& tensors, const std::string& ref) {
    std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : named_state()) {
      auto it = by_name.find(name);
      DPT_CHECK(it != by_name.end(), "checkpoint ", ref, " has no tensor '", name, "' for model '",
                config.get_string("model.name"), "': it was saved from a different model");
      DPT_CHECK(it->second.sizes() == target.sizes(), "checkpoint ", ref, " tensor '", name, "' has shape ",
                it->second.sizes(), " but the model expects ", target.sizes());
      target.copy_(it->second);
    }
  }

  // Every rank reads the same verified version; for "latest", damaged newer versions are skipped (one line each).
  void resume_from(const std::string& ref) {
    DPT_CHECK(store, "--resume needs checkpoints: checkpoint.enabled is false");
    std::vector<std::string> skipped;
    const checkpoint::CheckpointContents contents = store->load(ref, &skipped);
    for (const auto& line : skipped) runtime.out() << "dptrain: skipping a damaged checkpoint: " << line << std::endl;
    DPT_CHECK(contents.tensors.count("model") && contents.tensors.count("optimizer") && contents.tensors.count("rng"),
              "checkpoint ", ref, " in ", store->root(), " lacks model, optimizer or rng tensors: it was not written ",
              "by dptrain's trainer; resume from another version");
    load_model_tensors(contents.tensors.at("model"), ref);
    load_optimizer_state(*optimizer, contents.tensors.at("optimizer"), ref);
    // The same world size gets each rank its own generator back (bit-identical continuation); another one
    // takes rank 0's for the ranks that did not exist.
    const auto& rng = contents.tensors.at("rng");
    const std::size_t mine = static_cast<std::size_t>(backend.rank()) < rng.size() ? backend.rank() : 0;
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng.at(mine).second);
    step = contents.state.at("step").get<std::int64_t>();
    epoch = contents.state.at("epoch").get<std::int64_t>();
    cursor = contents.state.at("cursor").get<std::int64_t>();
    run_id = contents.state.value("run_id", run_id);
  }

  void record(std::map<std::string, double> values) {
    if (hub) hub->record(tracking::MetricRecord{step, epoch, unix_time(), std::move(values)});
  }

  void announce() const {
    std::int64_t numel = 0;
    for (const auto& p : params) numel += p.numel();
    const auto& sampler = train_loader->sampler();
    runtime.out() << "dptrain: run " << run_id << " | " << backend.world_size() << " rank(s) via "
                  << runtime.launcher() << ", backend " << backend.name() << ", " << runtime.threads()
                  << " thread(s)/rank" << (runtime.pinned_cpus().empty() ? "" : " on its own CPUs") << " | model " << config.get_string("model.name") << " (" << numel
                  << " parameters) | " << sampler.num_samples() << " samples, global batch "
                  << sampler.world_size() * sampler.batch_per_rank() << ", " << total_steps() << " steps" << std::endl;
  }

  FitResult fit(const std::string& resume) {
    const auto started = Clock::now();
    FitResult result;
    runtime.all_or_none("resume", [&] {
      if (backend.rank() == 0) run_id = tracking::new_run_id();
      if (!resume.empty()) resume_from(resume);
      if (store && backend.rank() == 0) {
        checkpointer = std::make_unique<checkpoint::Checkpointer>(
            checkpoint::CheckpointerOptions::from_config(config),
            [this](const PublishedCheckpoint& published) {
              if (hub) hub->checkpoint(published);  // the MLflow sink uploads and registers it
            });
      }
    });
    const PreemptionSignals signals;
    run_id = broadcast_string(backend, run_id);
    std::vector<torch::Tensor> model_state;
    for (const auto& [name, tensor] : named_state()) model_state.push_back(tensor);
    distributed::broadcast_from_root(model_state, backend);

    // Every rank: rank 0 gets every sink, the others only per-rank ones (Prometheus endpoints), if any.
    runtime.all_or_none("starting metric sinks", [&] {
      tracking::RunInfo run{run_id, config.get_string("run.name"), config.get_string("run.output_dir") + "/" + run_id,
                            config.to_json(), tracking::parse_tags(config.get_strings("tracking.tags")),
                            backend.rank()};
      auto sinks = tracking::make_sinks(config.get_strings("tracking.sinks"), run, runtime.out(), total_steps(),
                                        &config);
      if (!sinks.empty()) hub = std::make_unique<tracking::MetricHub>(run, std::move(sinks));
    });
    announce();

    const std::int64_t epochs = config.get_int("train.epochs");
    // Only train.max_steps limits the step count: steps are counted at the world size of their time, so after a
    // resume at another world size the epochs and the global cursor alone say where training ends.
    const std::int64_t max_steps =
        config.get_int("train.max_steps") > 0 ? total_steps() : std::numeric_limits<std::int64_t>::max();
    const std::int64_t log_every = config.get_int("tracking.log_every");
    const std::int64_t save_every = config.get_int("checkpoint.every_steps");
    auto interval_start = Clock::now();
    std::int64_t interval_samples = 0;
    interval = Interval{};
    interval.cpu_seconds = tracking::sample_system().cpu_seconds;
    bool stop = step >= max_steps;
    for (; epoch < epochs && !stop; ++epoch, cursor = 0) {
      train_loader->start_epoch(epoch, cursor);
      while (auto batch = train_loader->next()) {
        interval.data_wait += train_loader->last_wait_seconds();
        const double local_loss = train_step(*batch);
        ++step;
        cursor = batch->cursor_after;
        interval_samples += batch->global_batch;
        const bool last_step = step == max_steps || (epoch + 1 == epochs && !train_loader->sampler().has_next());
        if (step % log_every == 0 || last_step) {
          record(interval_metrics(local_loss, batch->targets.size(0), seconds_since(interval_start), interval_samples));
          interval_start = Clock::now();
          interval_samples = 0;
        }
        if (save_every > 0 && step % save_every == 0) save();
        if (preemption_requested()) {
          result.preempted = true;
          stop = true;
          break;
        }
        if (step >= max_steps) {
          stop = true;
          break;
        }
      }
      const bool epoch_complete = !train_loader->sampler().has_next();
      if (epoch_complete && test_loader && config.get_bool("train.eval_every_epoch")) {
        last_eval = evaluate();
        record({{"eval/loss", last_eval->loss}, {"eval/accuracy", last_eval->accuracy}});
      }
      if (epoch_complete) ++result.epochs;
      if (stop && !epoch_complete) break;  // keep (epoch, cursor) pointing at the next sample
    }
    if (store && (save_every == 0 || step % save_every != 0)) save();
    if (checkpointer) result.checkpoint = checkpointer->wait();
    checkpointer.reset();
    if (hub) hub->close(result.preempted ? "KILLED" : "FINISHED");
    hub.reset();
    result.steps = step;
    result.run_id = run_id;
    result.evaluated = last_eval.has_value();
    if (last_eval) result.eval = *last_eval;
    result.seconds = seconds_since(started);
    return result;
  }
};

Trainer::Trainer(const Config& config, const Runtime& runtime, distributed::Backend& backend)
    : impl_(std::make_unique<Impl>(config, runtime, backend)) {
  runtime.all_or_none("set-up", [&] { impl_->build(); });
}

Trainer::~Trainer() = default;

FitResult Trainer::fit(const std::string& resume) { return impl_->fit(resume); }

void Trainer::load_weights(const std::string& ref) {
  impl_->runtime.all_or_none("loading checkpoint " + ref, [&] {
    DPT_CHECK(impl_->store, "loading a checkpoint needs checkpoint.enabled = true and checkpoint.dir");
    impl_->load_model_tensors(impl_->store->load(ref).tensors.at("model"), ref);
  });
}

EvalResult Trainer::evaluate() { return impl_->evaluate(); }

std::vector<at::Tensor> Trainer::parameters() const { return impl_->params; }

std::int64_t Trainer::step() const { return impl_->step; }

}  // namespace dpt::train
