// Lineage: parent records for manifests, and the walk from a version back through its parents' manifests.
#include "checkpoint/lineage.h"

#include <filesystem>
#include <set>
#include <utility>

#include "core/check.h"

namespace dpt::checkpoint {
namespace {

namespace fs = std::filesystem;

const nlohmann::json kAbsent = "(absent)";

void collect_changes(const std::string& prefix, const nlohmann::json& before, const nlohmann::json& after,
                     std::vector<JsonChange>& out) {
  std::set<std::string> keys;
  for (const auto* side : {&before, &after}) {
    if (side->is_object()) {
      for (const auto& item : side->items()) keys.insert(item.key());
    }
  }
  for (const auto& key : keys) {
    const nlohmann::json& left = before.is_object() && before.contains(key) ? before[key] : kAbsent;
    const nlohmann::json& right = after.is_object() && after.contains(key) ? after[key] : kAbsent;
    if (left == right) continue;
    if (left.is_object() && right.is_object()) {
      collect_changes(prefix + key + ".", left, right, out);
    } else {
      out.push_back({prefix + key, left, right});
    }
  }
}

const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json none;
  return object.is_object() && object.contains(key) ? object[key] : none;
}

// The version `location` names, read from its own store: a dpt::Error when it cannot be.
Generation read_generation(const std::string& store_root, const std::string& version) {
  const auto store = open_checkpoint_store(store_root);
  const std::string location = store->resolve(version);
  Generation out;
  out.version = fs::path(location).filename().string();
  // A version directory given by path may belong to another store: the one that holds it.
  out.store = fs::path(location).parent_path().parent_path().string();
  const std::string text = store->manifest(location);
  out.manifest_sha256 = sha256_hex(text);
  out.state = member(nlohmann::json::parse(text), "state");
  return out;
}

}  // namespace

nlohmann::json parent_record(const CheckpointContents& parent, const std::string& reason) {
  return {{"store", parent.store},
          {"version", parent.version},
          {"manifest_sha256", parent.manifest_sha256},
          {"reason", reason}};
}

std::vector<JsonChange> json_changes(const nlohmann::json& before, const nlohmann::json& after) {
  std::vector<JsonChange> out;
  collect_changes("", before, after, out);
  return out;
}

std::string json_text(const nlohmann::json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

std::vector<Generation> trace_lineage(const CheckpointStore& store, const std::string& ref) {
  std::vector<Generation> chain{read_generation(store.root(), ref)};
  std::set<std::pair<std::string, std::string>> seen{{chain.back().store, chain.back().version}};
  while (true) {
    const nlohmann::json& parent = member(chain.back().state, "parent");
    if (!parent.is_object()) break;
    const std::string root = member(parent, "store").is_string() ? parent["store"].get<std::string>() : "";
    const std::string version = member(parent, "version").is_string() ? parent["version"].get<std::string>() : "";
    const std::string recorded =
        member(parent, "manifest_sha256").is_string() ? parent["manifest_sha256"].get<std::string>() : "";
    Generation next;
    try {
      next = read_generation(root, version);
    } catch (const std::exception& e) {
      next.version = version;
      next.store = root;
      const auto* error = dynamic_cast<const Error*>(&e);
      next.problem = "cannot be read: " + (error ? error->message() : std::string(e.what()));
      chain.push_back(std::move(next));
      break;
    }
    if (next.manifest_sha256 != recorded) {
      next.problem = "its manifest has sha256 " + next.manifest_sha256 + ", not the " + recorded + " that " +
                     chain.back().version + " recorded: the version was replaced or changed since";
    } else if (!seen.insert({next.store, next.version}).second) {
      next.problem = "it is its own ancestor: the manifests form a cycle";
    }
    chain.back().config_changes = json_changes(member(next.state, "config"), member(chain.back().state, "config"));
    const bool stop = !next.problem.empty();
    chain.push_back(std::move(next));
    if (stop) break;
  }
  return chain;
}

nlohmann::json lineage_json(const std::vector<Generation>& chain) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& generation : chain) {
    const nlohmann::json& state = generation.state;
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& change : generation.config_changes) {
      changes.push_back({{"key", change.key}, {"before", change.before}, {"after", change.after}});
    }
    nlohmann::json data = nlohmann::json::object();
    const nlohmann::json& digest = member(state, "dataset_digest");
    if (digest.is_object()) {
      data["sha256"] = member(digest, "sha256");
      data["files"] = nlohmann::json::array();
      for (const auto& file : member(digest, "files")) {
        data["files"].push_back(
            {{"path", member(file, "path")}, {"sha256", member(file, "sha256")}, {"md5", member(file, "md5")}});
      }
    }
    out.push_back({{"version", generation.version},
                   {"store", generation.store},
                   {"manifest_sha256", generation.manifest_sha256},
                   {"problem", generation.problem.empty() ? nlohmann::json() : nlohmann::json(generation.problem)},
                   {"parent", member(state, "parent")},
                   {"step", member(state, "step")},
                   {"epoch", member(state, "epoch")},
                   {"run_id", member(state, "run_id")},
                   {"tracking_runs", member(state, "tracking_runs")},
                   {"data", data},
                   {"git_commit", member(member(state, "build"), "git_commit")},
                   {"config_changes", changes}});
  }
  return out;
}

}  // namespace dpt::checkpoint
