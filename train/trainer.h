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

namespace dpt::train {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t samples = 0;
};

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
  // same clear error on all ranks (see Runtime::all_or_none). Shards by backend.rank()/world_size().
  Trainer(const Config& config, const Runtime& runtime, distributed::Backend& backend);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains until train.epochs or train.max_steps. `resume` = "" starts fresh; "latest", "vN" or a path resumes.
  FitResult fit(const std::string& resume = "");
  // Loads a checkpoint's model weights (no optimizer state) for evaluation.
  void load_weights(const std::string& checkpoint_ref);
  // Loss and accuracy on data.test, sharded over the ranks and combined.
  EvalResult evaluate();

  // Trainable parameters in registration order (tests compare them across ranks and runs).
  std::vector<at::Tensor> parameters() const;
  std::int64_t step() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dpt::train
