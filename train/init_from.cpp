// init_from: a published version's tensors into a new run's model (and optimizer), checked name by name.
#include "train/init_from.h"

#include <set>
#include <vector>

#include "checkpoint/lineage.h"
#include "core/check.h"
#include "train/optimizer_state.h"

namespace dpt::train {

checkpoint::CheckpointContents load_version(const checkpoint::CheckpointStore& store, const std::string& ref,
                                            std::ostream& out) {
  std::vector<std::string> skipped;
  checkpoint::CheckpointContents contents = store.load(ref, &skipped);
  for (const auto& line : skipped) out << "dptrain: skipping a damaged checkpoint: " << line << std::endl;
  return contents;
}

nlohmann::json init_from(const InitFrom& init, const std::string& default_store, const NamedTensorRefs& model,
                         const OptimizerStateLoader& load_optimizer, const std::string& model_name,
                         std::ostream& out) {
  const auto store = checkpoint::open_checkpoint_store(init.store.empty() ? default_store : init.store);
  const checkpoint::CheckpointContents contents = load_version(*store, init.ref, out);
  const std::string what = contents.version + " in " + contents.store;
  DPT_CHECK(contents.tensors.count("model"), "checkpoint ", what,
            " has no model tensors: it was not written by dptrain's trainer; --init-from another version");
  const checkpoint::NamedTensors& saved = contents.tensors.at("model");
  std::set<std::string> wanted;
  for (const auto& [name, tensor] : model) wanted.insert(name);
  // load_model_tensors names a tensor the model has and the checkpoint lacks, or one of another shape; a tensor
  // only the checkpoint has means another architecture, too.
  for (const auto& [name, tensor] : saved) {
    DPT_CHECK(wanted.count(name), "checkpoint ", what, " has tensor '", name, "' of shape ", tensor.sizes(),
              " that model '", model_name, "' lacks: it was saved from another model; --init-from needs the ",
              "parent's model.name and model.options");
  }
  load_model_tensors(saved, model, what, model_name);
  if (init.optimizer) {
    DPT_CHECK(contents.tensors.count("optimizer"), "checkpoint ", what,
              " has no optimizer state; leave out --init-optimizer to start with a fresh optimizer");
    load_optimizer(contents.tensors.at("optimizer"));
  }
  out << "dptrain: a new run from " << what << " (step " << contents.state.value("step", std::int64_t{-1})
      << " of run " << contents.state.value("run_id", std::string("?")) << "): its weights"
      << (init.optimizer ? " and optimizer state" : "") << ", a fresh schedule, step counter and data cursor"
      << std::endl;
  return checkpoint::parent_record(contents, "init-from");
}

}  // namespace dpt::train
