// The data.* keys and the loaders they describe.
#include "data/make_loader.h"

#include "core/check.h"
#include "data/data_files.h"
#include "data/hdf5_source.h"
#include "data/sampler.h"
#include "data/tensor_source.h"

namespace dpt::data {

std::vector<ConfigKey> config_keys() {
  using namespace config_key;
  return {
      required_text("data.train", "HDF5 file of the training split, or a glob (\"data/train-*.h5\": name order)"),
      text_list("data.train_files", {}, "more training files or globs, read after data.train"),
      text("data.test", "", "HDF5 file or glob with the evaluation split (empty: no evaluation)"),
      text_list("data.test_files", {}, "more evaluation files or globs, read after data.test"),
      text("data.inputs", "images", "dataset name of the inputs inside the HDF5 files"),
      text("data.targets", "labels", "dataset name of the integer class targets"),
      number("data.scale", 1.0 / 255.0, -kNoLimit, kNoLimit, "inputs are multiplied by this first"),
      number("data.mean", 0.0, -kNoLimit, kNoLimit, "then the mean is subtracted"),
      number("data.std", 1.0, 1e-12, kNoLimit, "then divided by std"),
      flag("data.shuffle", true, "shuffle the global sample order each epoch"),
      text("data.last_batch", "uneven",
           "a short final global batch: split unevenly over ranks, dropped, or padded from the epoch's start",
           {"uneven", "drop_last", "pad"}),
      integer("data.cache_mb", 0, 0, 1e9,
              "hold the whole training split in memory when it fits in this many MiB per rank (0: off)"),
      integer("data.prefetch", 2, 0, 64, "batches the loader thread reads ahead (0: read inline)"),
  };
}

SplitSource open_split(const Config& config, const std::string& split) {
  SplitSource out;
  out.files = split_files(config, split);
  if (out.files.empty()) return out;
  out.source = std::make_shared<Hdf5Source>(out.files, config.get_string("data.inputs"),
                                            config.get_string("data.targets"));
  if (split == "train") out.source = cache_in_memory(out.source, config.get_int("data.cache_mb") << 20);
  return out;
}

std::unique_ptr<Loader> make_loader(const Config& config, std::shared_ptr<Source> source, const LoaderShard& shard) {
  DPT_CHECK(source, "make_loader needs a data source");
  const Normalization norm{config.get_float("data.scale"), config.get_float("data.mean"), config.get_float("data.std")};
  const auto seed = static_cast<std::uint64_t>(config.get_int("run.seed"));
  const bool shuffle = shard.training && config.get_bool("data.shuffle");
  const LastBatch last = shard.training ? parse_last_batch(config.get_string("data.last_batch")) : LastBatch::Uneven;
  Sampler sampler(source->size(), shard.batch_per_rank, shard.rank, shard.world_size, seed, shuffle, last,
                  shard.batches_per_step);
  return std::make_unique<Loader>(std::move(source), std::move(sampler), norm,
                                  static_cast<int>(config.get_int("data.prefetch")), shard.pin_memory);
}

}  // namespace dpt::data
