// make_loader: the data library's part of the config (data.*) and the loaders a config describes, over its HDF5
// files or over a Source the program brings.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "data/loader.h"
#include "data/source.h"

namespace dpt::data {

// data.*: files, dataset names, normalisation, shuffling, the last batch, caching, prefetch.
std::vector<ConfigKey> config_keys();

// A split's samples and, when they come from data.<split> files, those files (for the checkpoint's lineage).
struct SplitSource {
  std::shared_ptr<Source> source;  // null: the split has no files (data.test left empty)
  std::vector<std::string> files;
};

// Opens split "train" or "test" of the config as HDF5 (data.inputs / data.targets datasets); the training split
// is held in memory when it fits data.cache_mb.
SplitSource open_split(const Config& config, const std::string& split);

// How a loader shards its source: `training` shuffles by data.shuffle and treats the short last batch by
// data.last_batch; evaluation reads in file order and splits the last batch unevenly.
struct LoaderShard {
  std::int64_t batch_per_rank = 1;
  int rank = 0;
  int world_size = 1;
  bool training = true;
  bool pin_memory = false;  // batches in page-locked memory, for a copy to a CUDA device
  std::int64_t batches_per_step = 1;  // loader batches of one optimizer step (see Sampler)
};

std::unique_ptr<Loader> make_loader(const Config& config, std::shared_ptr<Source> source, const LoaderShard& shard);

}  // namespace dpt::data
