// Trainer: the training loop. Owns the step order (load, forward, backward, reduce, step, log, checkpoint)
// and holds no I/O formats itself: data, checkpoints and metrics go through their own libraries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/config.h"
#include "core/runtime.h"
#include "distributed/backend.h"
#include "distributed/make_backend.h"
#include "train/run_parts.h"
#include "train/train_state.h"

namespace dpt::train {

struct FitResult {
  std::int64_t steps = 0;      // optimizer steps taken in total (including those before a resume)
  std::int64_t epochs = 0;     // completed epochs
  bool evaluated = false;      // whether `eval` holds a result
  EvalResult eval;             // last evaluation on data.test
  double seconds = 0.0;        // wall time of this fit() call
  std::string run_id;
  std::string checkpoint;      // last version saved ("" when checkpoints are off, and on ranks other than 0)
  bool preempted = false;      // stopped early by SIGTERM/SIGUSR1/SIGINT after saving (see preemption.h)
};

class Trainer {
 public:
  // Builds the model, optimizer, data and checkpoint store on every rank; a failure on any rank becomes the
  // same clear error on all ranks (see Runtime::all_or_none). Control traffic goes through backends.control,
  // the model's tensors through backends.gradients, on backends.device; data is sharded by their rank and size.
  Trainer(const Config& config, const Runtime& runtime, distributed::Backends backends, TrainerParts parts = {});
  // One backend in both roles, the model where runtime.device says (CPU tensors, or a world of one).
  Trainer(const Config& config, const Runtime& runtime, distributed::Backend& backend, TrainerParts parts = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains until train.epochs or train.max_steps. `resume` = "" starts fresh; "latest", "vN" or a path resumes.
  FitResult fit(const std::string& resume = "");
  // Loads a checkpoint's model weights (no optimizer state) for evaluation.
  void load_weights(const std::string& checkpoint_ref);
  // Loss (and, for a classification loss, accuracy) on the test data, sharded over the ranks and combined.
  EvalResult evaluate();

  // Trainable parameters in registration order (tests compare them across ranks and runs).
  std::vector<at::Tensor> parameters() const;
  std::int64_t step() const;
  // Bytes of optimizer state this rank holds (with ddp.zero = 1 about 1/N of what ddp.zero = 0 holds).
  std::int64_t optimizer_state_bytes() const;
  // Whether `tensor` shares memory with the model: a parameter, a buffer or a gradient bucket (tests check that
  // the gradient backend sees nothing else).
  bool holds_model_storage(const at::Tensor& tensor) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::train
