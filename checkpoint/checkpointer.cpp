// Checkpointer: publish + retention + `best`, on the caller's thread or on one background thread.
#include "checkpoint/checkpointer.h"

#include <mpi.h>
#include <torch/version.h>

#include <iostream>
#include <utility>

#include "core/check.h"

#ifndef DPTRAIN_GIT_COMMIT
#define DPTRAIN_GIT_COMMIT "unknown"
#endif

namespace dpt::checkpoint {

CheckpointerOptions CheckpointerOptions::from_config(const Config& config) {
  CheckpointerOptions options;
  options.dir = config.get_string("checkpoint.dir");
  options.async = config.get_bool("checkpoint.async");
  options.retention = {config.get_int("checkpoint.keep_last"), config.get_int("checkpoint.keep_every")};
  options.best_metric = config.get_string("checkpoint.best_metric");
  options.best_is_max = config.get_string("checkpoint.best_mode") == "max";
  options.stop_on_error = config.get_string("checkpoint.on_error") == "stop";
  return options;
}

at::Tensor host_tensor(const at::Tensor& tensor, bool copy) {
  const at::Tensor detached = tensor.detach();
  if (!detached.is_cpu()) return detached.to(at::kCPU);
  return copy ? detached.clone() : detached;
}

nlohmann::json build_info() {
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(mpi, &length);  // callable before MPI_Init
  std::string mpi_text(mpi, static_cast<std::size_t>(length));
  mpi_text = mpi_text.substr(0, mpi_text.find_first_of(",\n"));
  return {{"git_commit", DPTRAIN_GIT_COMMIT},
          {"libtorch", TORCH_VERSION},
          {"hdf5", DPTRAIN_HDF5_VERSION},
          {"mpi", mpi_text}};
}

Checkpointer::Checkpointer(CheckpointerOptions options, std::function<void(const PublishedCheckpoint&)> on_published)
    : options_(std::move(options)),
      on_published_(std::move(on_published)),
      store_(open_checkpoint_store(options_.dir)) {
  store_->check_writable();
  lock_ = store_->lock_writer();
}

Checkpointer::~Checkpointer() {
  join_worker();
  if (worker_error_) {
    try {
      std::rethrow_exception(worker_error_);
    } catch (const std::exception& e) {
      std::cerr << "dptrain: warning: checkpoint save failed: " << e.what() << std::endl;
    }
  }
}

void Checkpointer::join_worker() {
  if (worker_.joinable()) worker_.join();
}

void Checkpointer::handle(std::exception_ptr error) {
  if (!error) return;
  if (options_.stop_on_error) std::rethrow_exception(error);
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::cerr << "dptrain: warning: checkpoint save failed, training continues (checkpoint.on_error = "
              << "\"continue\"): " << e.what() << std::endl;
  }
}

void Checkpointer::save(CheckpointContents contents) {
  wait();
  if (!options_.async) {
    try {
      publish(contents);
    } catch (...) {
      handle(std::current_exception());
    }
    return;
  }
  worker_ = std::thread([this, owned = std::move(contents)] {
    try {
      publish(owned);
    } catch (...) {
      worker_error_ = std::current_exception();
    }
  });
}

std::string Checkpointer::wait() {
  join_worker();
  std::exception_ptr error = std::exchange(worker_error_, nullptr);
  handle(error);
  return last_version_;
}

void Checkpointer::publish(const CheckpointContents& contents) {
  const std::string version = store_->publish(contents);
  last_version_ = version;
  if (!options_.best_metric.empty()) update_best(version, contents.state);
  store_->gc(options_.retention);
  if (!on_published_) return;
  PublishedCheckpoint published;
  published.version = version;
  published.store = store_->root();
  if (contents.state.is_object() && contents.state.contains("step") && contents.state["step"].is_number_integer()) {
    published.step = contents.state["step"].get<std::int64_t>();
  }
  published.manifest = store_->manifest(version);
  published.manifest_sha256 = sha256_hex(published.manifest);
  published.aliases = store_->aliases();
  on_published_(published);
}

void Checkpointer::update_best(const std::string& version, const nlohmann::json& state) {
  const auto metric_of = [&](const nlohmann::json& saved) -> const nlohmann::json* {
    if (!saved.is_object() || !saved.contains("metrics")) return nullptr;
    const auto& metrics = saved["metrics"];
    if (!metrics.is_object() || !metrics.contains(options_.best_metric)) return nullptr;
    return metrics[options_.best_metric].is_number() ? &metrics[options_.best_metric] : nullptr;
  };
  const nlohmann::json* value = metric_of(state);
  if (!value) return;
  const auto aliases = store_->aliases();
  const auto best = aliases.find("best");
  if (best != aliases.end()) {
    nlohmann::json previous;
    try {
      previous = nlohmann::json::parse(store_->manifest(best->second));
    } catch (const Error&) {
      // The old best is gone or unreadable: the new version replaces it.
    }
    const nlohmann::json* old_value = previous.contains("state") ? metric_of(previous["state"]) : nullptr;
    if (old_value) {
      const double now = value->get<double>();
      const double then = old_value->get<double>();
      if (options_.best_is_max ? now <= then : now >= then) return;
    }
  }
  store_->set_alias("best", version);
}

std::vector<ConfigKey> config_keys() {
  using namespace config_key;
  return {
      flag("checkpoint.enabled", true, "save checkpoints at all"),
      text("checkpoint.dir", "checkpoints", "checkpoint store directory"),
      integer("checkpoint.every_steps", 0, 0, 9.2e18, "save every N steps (0: only at the end)"),
      integer("checkpoint.keep_last", 0, 0, 1e9, "keep only the newest K versions (0: keep all)"),
      integer("checkpoint.keep_every", 0, 0, 1e9, "also keep every version whose number is a multiple of M (0: off)"),
      flag("checkpoint.async", false, "copy tensors to host memory at the step, write and publish in the background"),
      text("checkpoint.best_metric", "", "metric at save time that picks the `best` alias, e.g. eval/accuracy"),
      text("checkpoint.best_mode", "max", "whether a higher or lower best_metric is better", {"max", "min"}),
      text("checkpoint.on_error", "stop", "a failed save stops training or warns and continues",
           {"stop", "continue"}),
  };
}

}  // namespace dpt::checkpoint
