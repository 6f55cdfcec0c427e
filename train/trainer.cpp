// Trainer: one training step = Loader.next -> forward -> backward -> GradientReducer -> clip -> optimizer step
// -> lr schedule -> metrics -> periodic checkpoint. Every rank runs the same steps in the same order.
#include "train/trainer.h"

#include <chrono>
#include <cstring>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_store.h"
#include "core/check.h"
#include "data/hdf5_source.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "distributed/gradient_reducer.h"
#include "tracking/metric_hub.h"
#include "tracking/sinks.h"
#include "train/model_registry.h"

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
  if (name == "adam") {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr).weight_decay(wd));
  }
  if (name == "adamw") {
    return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(lr).weight_decay(wd));
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
  std::unique_ptr<distributed::GradientReducer> reducer;
  std::unique_ptr<data::Loader> train_loader;
  std::unique_ptr<data::Loader> test_loader;
  std::unique_ptr<checkpoint::CheckpointStore> store;
  std::unique_ptr<tracking::MetricHub> hub;
  torch::Device device = torch::kCPU;

  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::int64_t cursor = 0;  // global samples of `epoch` already consumed
  std::string run_id;
  std::optional<EvalResult> last_eval;
  double last_loss = std::nan("");

  Impl(const Config& c, const Runtime& r, distributed::Backend& b) : config(c), runtime(r), backend(b) {}

  void build() {
    device = choose_device();
    torch::manual_seed(static_cast<std::uint64_t>(config.get_int("run.seed")));
    model = ModelRegistry::global().create(config.get_string("model.name"), config.options("model"));
    module = model.ptr();
    module->to(device);
    for (auto& p : module->parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    optimizer = make_optimizer(config, params);
    reducer = std::make_unique<distributed::GradientReducer>(params, backend);

    const data::Normalization norm{config.get_float("data.scale"), config.get_float("data.mean"),
                                   config.get_float("data.std")};
    const auto seed = static_cast<std::uint64_t>(config.get_int("run.seed"));
    const int prefetch = static_cast<int>(config.get_int("data.prefetch"));
    auto train_source = std::make_shared<data::Hdf5Source>(
        config.get_string("data.train"), config.get_string("data.inputs"), config.get_string("data.targets"));
    data::Sampler train_sampler(train_source->size(), config.get_int("train.batch_size"), backend.rank(),
                                backend.world_size(), seed, config.get_bool("data.shuffle"),
                                config.get_bool("data.drop_last"));
    DPT_CHECK(train_sampler.steps_per_epoch() > 0, "data.train has ", train_source->size(),
              " samples, fewer than one global batch of ", backend.world_size(), " x ",
              config.get_int("train.batch_size"), " with data.drop_last = true: lower train.batch_size");
    train_loader = std::make_unique<data::Loader>(train_source, train_sampler, norm, prefetch);
    if (!config.get_string("data.test").empty()) {
      auto test_source = std::make_shared<data::Hdf5Source>(
          config.get_string("data.test"), config.get_string("data.inputs"), config.get_string("data.targets"));
      data::Sampler test_sampler(test_source->size(), std::max<std::int64_t>(256, config.get_int("train.batch_size")),
                                 backend.rank(), backend.world_size(), seed, false, false);
      test_loader = std::make_unique<data::Loader>(test_source, test_sampler, norm, prefetch);
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

  std::vector<torch::Tensor> state_tensors() const {
    std::vector<torch::Tensor> all = module->parameters();
    for (auto& b : module->buffers()) all.push_back(b);
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

  // One optimizer step on this rank's share of the global batch. Returns the local mean loss.
  double train_step(const data::Batch& batch) {
    const double lr = learning_rate();
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    reducer->zero_grad();
    const std::int64_t n = batch.targets.size(0);
    double loss_value = 0.0;
    if (n > 0) {
      torch::Tensor inputs = batch.inputs.to(device);
      torch::Tensor targets = batch.targets.to(device);
      torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(inputs), targets);
      loss.backward();
      loss_value = loss.item<double>();
    }
    reducer->synchronize(static_cast<double>(n) / static_cast<double>(batch.global_batch));
    const double clip = config.get_float("train.grad_clip");
    if (clip > 0) torch::nn::utils::clip_grad_norm_(params, clip);
    optimizer->step();
    return loss_value;
  }

  // Sums (loss * samples, samples) over ranks: the mean loss of the whole global batch.
  double global_mean(double local_mean, std::int64_t local_n) {
    at::Tensor t = at::tensor({local_mean * static_cast<double>(local_n), static_cast<double>(local_n)}, at::kDouble);
    backend.allreduce(t, distributed::ReduceOp::Sum)->wait();
    const double count = t[1].item<double>();
    return count > 0 ? t[0].item<double>() / count : 0.0;
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

  checkpoint::CheckpointContents snapshot() const {
    checkpoint::CheckpointContents contents;
    checkpoint::NamedTensors model_tensors;
    for (const auto& item : module->named_parameters()) model_tensors.emplace_back(item.key(), item.value().detach().cpu());
    for (const auto& item : module->named_buffers()) model_tensors.emplace_back(item.key(), item.value().detach().cpu());
    contents.tensors["model"] = std::move(model_tensors);
    contents.tensors["rng"] = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
    std::ostringstream optimizer_bytes;
    torch::save(*optimizer, optimizer_bytes);
    contents.blobs["optimizer.pt"] = optimizer_bytes.str();
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
                      {"run_id", run_id},
                      {"model", config.get_string("model.name")},
                      {"config", config.to_json()},
                      {"metrics", metrics},
                      {"libtorch", TORCH_VERSION}};
    return contents;
  }

  std::string save() {
    if (!store || backend.rank() != 0) return "";
    const std::string version = store->publish(snapshot());
    const auto keep = config.get_int("checkpoint.keep_last");
    if (keep > 0) store->keep_last(static_cast<int>(keep));
    return version;
  }

  void load_model_tensors(const checkpoint::NamedTensors& tensors, const std::string& ref) {
    std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
    torch::NoGradGuard no_grad;
    auto load_into = [&](const std::string& name, torch::Tensor target) {
      auto it = by_name.find(name);
      DPT_CHECK(it != by_name.end(), "checkpoint ", ref, " has no tensor '", name, "' for model '",
                config.get_string("model.name"), "': it was saved from a different model");
      DPT_CHECK(it->second.sizes() == target.sizes(), "checkpoint ", ref, " tensor '", name, "' has shape ",
                it->second.sizes(), " but the model expects ", target.sizes());
      target.copy_(it->second);
    };
    for (const auto& item : module->named_parameters()) load_into(item.key(), item.value());
    for (const auto& item : module->named_buffers()) load_into(item.key(), item.value());
  }

  void resume_from(const std::string& ref) {
    DPT_CHECK(store, "--resume needs checkpoints: checkpoint.enabled is false");
    const checkpoint::CheckpointContents contents = store->load(ref);
    load_model_tensors(contents.tensors.at("model"), ref);
    std::istringstream optimizer_bytes(contents.blobs.at("optimizer.pt"));
    torch::load(*optimizer, optimizer_bytes);
    if (contents.tensors.count("rng")) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(contents.tensors.at("rng").front().second);
    }
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
                  << " thread(s)/rank | model " << config.get_string("model.name") << " (" << numel
                  << " parameters) | " << sampler.num_samples() << " samples, global batch "
                  << sampler.world_size() * sampler.batch_per_rank() << ", " << total_steps() << " steps" << std::endl;
  }

  FitResult fit(const std::string& resume) {
    const auto started = Clock::now();
    FitResult result;
    runtime.all_or_none("resume", [&] {
      if (backend.rank() == 0) run_id = tracking::new_run_id();
      if (!resume.empty()) resume_from(resume);
    });
    run_id = broadcast_string(backend, run_id);
    distributed::GradientReducer::broadcast_from_root(state_tensors(), backend);

    if (backend.rank() == 0 && !config.get_strings("tracking.sinks").empty()) {
      tracking::RunInfo run{run_id, config.get_string("run.name"), config.get_string("run.output_dir") + "/" + run_id,
                            config.to_json()};
      hub = std::make_unique<tracking::MetricHub>(
          run, tracking::make_sinks(config.get_strings("tracking.sinks"), run, runtime.out(), total_steps()));
    }
    announce();

    const std::int64_t epochs = config.get_int("train.epochs");
    const std::int64_t max_steps = total_steps();
    const std::int64_t log_every = config.get_int("tracking.log_every");
    const std::int64_t save_every = config.get_int("checkpoint.every_steps");
    auto interval_start = Clock::now();
    std::int64_t interval_samples = 0;
    double interval_wait = 0.0;
    bool stop = step >= max_steps;
    for (; epoch < epochs && !stop; ++epoch, cursor = 0) {
      train_loader->start_epoch(epoch, cursor);
      while (auto batch = train_loader->next()) {
        interval_wait += train_loader->last_wait_seconds();
        const double local_loss = train_step(*batch);
        ++step;
        cursor = batch->cursor_after;
        interval_samples += batch->global_batch;
        if (step % log_every == 0 || step == max_steps) {
          last_loss = global_mean(local_loss, batch->targets.size(0));
          const double elapsed = seconds_since(interval_start);
          record({{"train/loss", last_loss},
                  {"train/samples_per_s", static_cast<double>(interval_samples) / elapsed},
                  {"train/lr", learning_rate()},
                  {"train/data_wait_fraction", interval_wait / elapsed}});
          interval_start = Clock::now();
          interval_samples = 0;
          interval_wait = 0.0;
        }
        if (save_every > 0 && step % save_every == 0) result.checkpoint = save();
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
    if (store && (save_every == 0 || step % save_every != 0)) result.checkpoint = save();
    if (hub) hub->close("FINISHED");
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
