// `dptrain ckpt`: inspect, verify, compare, trace the lineage of, tag, export and garbage-collect the versions of a
// checkpoint store.
#include "cli/ckpt_commands.h"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>

#include "checkpoint/checkpoint_store.h"
#include "checkpoint/durable_file.h"
#include "checkpoint/lineage.h"
#include "core/check.h"

namespace dpt::cli {
namespace {

namespace fs = std::filesystem;

struct CkptArgs {
  std::string dir = "checkpoints";
  std::vector<std::string> refs;
  std::string out;
  checkpoint::RetentionPolicy retention;
  bool json = false;
};

using checkpoint::json_text;

void list(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  const auto versions = store->list();
  if (versions.empty()) {
    std::cout << "no checkpoints in " << args.dir << "\n";
    return;
  }
  std::map<std::string, std::string> aliases_of;
  for (const auto& [alias, version] : store->aliases()) {
    aliases_of[version] += (aliases_of[version].empty() ? "" : ",") + alias;
  }
  std::cout << std::left << std::setw(10) << "version" << std::setw(10) << "step" << std::setw(24) << "created"
            << std::setw(16) << "aliases" << "path\n";
  for (const auto& v : versions) {
    std::cout << std::setw(10) << v.name << std::setw(10) << v.step << std::setw(24) << v.created << std::setw(16)
              << (aliases_of.count(v.name) ? aliases_of[v.name] : "-") << v.path << "\n";
  }
}

void show(const CkptArgs& args) {
  std::cout << checkpoint::open_checkpoint_store(args.dir)->manifest(args.refs.at(0));
}

void verify(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  std::vector<std::string> refs = args.refs;
  if (refs.empty()) {
    for (const auto& version : store->list()) refs.push_back(version.name);
  }
  std::size_t damaged = 0;
  for (const auto& ref : refs) {
    try {
      store->verify(ref);
      std::cout << "ok       " << ref << "\n";
    } catch (const Error& e) {
      ++damaged;
      std::cout << "DAMAGED  " << ref << ": " << e.message() << "\n";
    }
  }
  DPT_CHECK(damaged == 0, damaged, " of ", refs.size(), " checkpoint versions in ", args.dir,
            " failed verification (listed above); resume from one marked ok");
}

// Keys whose values differ between two JSON objects, with both values, as "key: a -> b" lines.
void print_differences(const nlohmann::json& a, const nlohmann::json& b) {
  for (const auto& change : checkpoint::json_changes(a, b)) {
    std::cout << "  " << change.key << ": " << json_text(change.before) << " -> " << json_text(change.after) << "\n";
  }
}

void diff(const CkptArgs& args) {
  DPT_CHECK(args.refs.size() == 2, "ckpt diff takes two versions, e.g. dptrain ckpt diff v3 latest");
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  const checkpoint::CheckpointContents a = store->load(args.refs[0]);
  const checkpoint::CheckpointContents b = store->load(args.refs[1]);
  std::cout << args.refs[0] << " -> " << args.refs[1] << "\nstate:\n";
  print_differences(a.state, b.state);
  std::cout << "tensors (max |a - b| of those that changed):\n";
  for (const auto& [stem, tensors] : a.tensors) {
    std::map<std::string, at::Tensor> other;
    if (b.tensors.count(stem)) other.insert(b.tensors.at(stem).begin(), b.tensors.at(stem).end());
    for (const auto& [name, tensor] : tensors) {
      const auto it = other.find(name);
      if (it == other.end() || it->second.sizes() != tensor.sizes() || it->second.dtype() != tensor.dtype()) {
        std::cout << "  " << stem << "/" << name << ": only in " << args.refs[0] << " or of another shape\n";
      } else if (!at::equal(tensor, it->second)) {
        const double change = (tensor.to(at::kDouble) - it->second.to(at::kDouble)).abs().max().item<double>();
        std::cout << "  " << stem << "/" << name << ": " << change << "\n";
      }
    }
  }
}

// One generation as lines: version, store and where it came from; step, epoch and run ids; data; commit; the
// config keys that changed from its parent.
void print_generation(const nlohmann::json& generation) {
  const auto text = [](const nlohmann::json& value) { return value.is_null() ? std::string("?") : json_text(value); };
  std::cout << text(generation["version"]) << "  " << text(generation["store"]);
  if (!generation["problem"].is_null()) {
    std::cout << "\n  MISSING OR DAMAGED: " << text(generation["problem"]) << "\n";
    return;
  }
  const nlohmann::json& parent = generation["parent"];
  if (parent.is_object()) {
    std::cout << "  (parent " << text(parent.value("version", nlohmann::json())) << " in "
              << text(parent.value("store", nlohmann::json())) << ", by --" << text(parent.value("reason", nlohmann::json()))
              << ")\n";
  } else {
    std::cout << "  (the first version: a fresh run)\n";
  }
  std::cout << "  step " << text(generation["step"]) << ", epoch " << text(generation["epoch"]) << " | run "
            << text(generation["run_id"]);
  if (generation["tracking_runs"].is_object()) {
    for (const auto& item : generation["tracking_runs"].items()) {
      std::cout << " | " << item.key() << " run " << text(item.value());
    }
  }
  std::cout << "\n";
  const nlohmann::json& data = generation["data"];
  if (data.contains("files")) {
    for (const auto& file : data["files"]) {
      std::cout << "  data   " << text(file["path"]) << " sha256 " << text(file["sha256"]) << " md5 " << text(file["md5"])
                << "\n";
    }
  }
  std::cout << "  commit " << text(generation["git_commit"]) << "\n";
  if (!parent.is_object()) return;
  const nlohmann::json& changes = generation["config_changes"];
  std::cout << "  config changes from " << text(parent.value("version", nlohmann::json())) << ":"
            << (changes.empty() ? " none" : "") << "\n";
  for (const auto& change : changes) {
    std::cout << "    " << text(change["key"]) << ": " << json_text(change["before"]) << " -> "
              << json_text(change["after"]) << "\n";
  }
}

void lineage(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  const nlohmann::json chain = checkpoint::lineage_json(checkpoint::trace_lineage(*store, args.refs.at(0)));
  if (args.json) {
    std::cout << chain.dump(2) << "\n";
    return;
  }
  std::cout << "lineage of " << args.refs.at(0) << ": " << chain.size() << " generation(s), newest first\n";
  for (const auto& generation : chain) print_generation(generation);
}

void tag(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  store->set_alias(args.refs.at(1), args.refs.at(0));
  std::cout << args.refs.at(1) << " -> " << store->aliases().at(args.refs.at(1)) << "\n";
}

void export_version(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  const checkpoint::VerifiedVersion version = store->read(args.refs.at(0));
  DPT_CHECK(version.files.count("model.safetensors"), "checkpoint ", version.name, " in ", args.dir,
            " has no model.safetensors; it was not written by dptrain's trainer");
  std::error_code ec;
  fs::create_directories(args.out, ec);
  DPT_CHECK(!ec, "cannot create the export directory ", args.out, ": ", ec.message(),
            "; pick a writable --out directory");
  const nlohmann::json& state = version.manifest.at("state");
  checkpoint::write_file_atomic(args.out + "/model.safetensors", version.files.at("model.safetensors"));
  checkpoint::write_file_atomic(args.out + "/config.json", state.value("config", nlohmann::json::object()).dump(2));
  checkpoint::write_file_atomic(args.out + "/manifest.json", version.manifest.dump(2));
  std::cout << "exported " << version.name << " (step " << state.value("step", -1) << ", model "
            << state.value("model", std::string("?")) << ") to " << args.out
            << ": model.safetensors, config.json, manifest.json\n";
}

void gc(const CkptArgs& args) {
  const auto store = checkpoint::open_checkpoint_store(args.dir);
  const auto lock = store->lock_writer();
  const auto removed = store->gc(args.retention);
  std::cout << "removed " << removed.size() << " version(s)";
  for (const auto& name : removed) std::cout << " " << name;
  std::cout << "; " << store->list().size() << " kept in " << args.dir << "\n";
}

}  // namespace

void add_ckpt_commands(CLI::App& app, const Runtime& runtime) {
  auto args = std::make_shared<CkptArgs>();
  const auto on_main = [&runtime, args](void (*command)(const CkptArgs&)) {
    return [&runtime, args, command] {
      if (runtime.is_main()) command(*args);
    };
  };
  auto* ckpt = app.add_subcommand("ckpt", "Checkpoint store tools");
  ckpt->require_subcommand(1);
  ckpt->footer("REF: latest (the newest version), vN (e.g. v3), an alias (best, a tag) or a version directory.");
  const auto add = [&](const char* name, const char* help, void (*command)(const CkptArgs&)) {
    auto* sub = ckpt->add_subcommand(name, help);
    sub->add_option("--dir", args->dir, "Checkpoint store directory (checkpoint.dir)")->capture_default_str();
    sub->callback(on_main(command));
    return sub;
  };
  add("list", "List the versions with step, creation time and aliases", list);
  add("show", "Print a version's manifest (state, config, metrics, files with sha256 and md5)", show)
      ->add_option("REF", args->refs, "Version")
      ->required()
      ->expected(1);
  add("verify", "Check every file of the given versions (default: all) against its size and sha256", verify)
      ->add_option("REF", args->refs, "Versions");
  add("diff", "Compare two versions: state and config keys, and the tensors that changed", diff)
      ->add_option("REF", args->refs, "Two versions, e.g. v3 latest")
      ->required()
      ->expected(2);
  auto* lineage_command = add("lineage",
                              "The chain of versions back to the first one: for each generation its run ids, data "
                              "digests, commit, and the config keys that changed from its parent (reads manifests "
                              "only; a missing or damaged parent is named)",
                              lineage);
  lineage_command->add_option("REF", args->refs, "Version")->required()->expected(1);
  lineage_command->add_flag("--json", args->json, "Print the chain as JSON (an array, newest first)");
  auto* tag_command = add("tag", "Point an alias (a tag, or best) at a version; aliased versions are never collected",
                          tag);
  tag_command->add_option("REF NAME", args->refs, "Version, then the alias (letters, digits, '_' and '-')")
      ->required()
      ->expected(2);
  auto* export_command = add("export",
                             "Write a self-contained directory for deployment: model.safetensors, config.json, "
                             "manifest.json (load it in Python with examples/export_load.py)",
                             export_version);
  export_command->add_option("REF", args->refs, "Version")->required()->expected(1);
  export_command->add_option("--out,-o", args->out, "Output directory")->required();
  auto* gc_command = add("gc",
                         "Remove versions the retention keeps no longer, and unreferenced blobs; aliased versions "
                         "and versions a reader holds open stay. Fails while a training job writes the store",
                         gc);
  gc_command->add_option("--keep-last", args->retention.keep_last, "Keep the newest K versions (0: all)")
      ->capture_default_str();
  gc_command->add_option("--keep-every", args->retention.keep_every,
                         "Also keep every version whose number is a multiple of M (0: off)")
      ->capture_default_str();
}

}  // namespace dpt::cli
