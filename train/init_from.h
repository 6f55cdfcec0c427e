// InitFrom: continual learning, a new run that starts from a published version's weights (and optionally its
// optimizer state) on the config's data, with a fresh schedule, step counter, data cursor and run id.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "train/train_state.h"

namespace dpt::train {

struct InitFrom {
  std::string ref;         // a version of `store`: latest, vN, an alias or a version directory ("": a fresh run)
  std::string store;       // the store that holds it ("": checkpoint.dir)
  bool optimizer = false;  // also take the optimizer's state (Adam's moments, SGD's momentum)
};

// The version `ref` names, every file verified; for "latest", each damaged newer version skipped is one line on
// `out`.
checkpoint::CheckpointContents load_version(const checkpoint::CheckpointStore& store, const std::string& ref,
                                            std::ostream& out);

// Loads the version `init.ref` names (every file verified) into `model`, and with init.optimizer its optimizer
// state through `load_optimizer` (whole, or this rank's shards with ddp.zero = 1): the checkpoint must hold exactly the model's tensors, by name and shape, else a dpt::Error names
// the first tensor that differs (both shapes for a shape). Says on `out` what it started from and returns the
// parent record for the new run's manifests (reason "init-from"). `default_store` is checkpoint.dir.
nlohmann::json init_from(const InitFrom& init, const std::string& default_store, const NamedTensorRefs& model,
                         const OptimizerStateLoader& load_optimizer, const std::string& model_name,
                         std::ostream& out);

}  // namespace dpt::train
