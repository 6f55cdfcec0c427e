// Lineage: the parent each version's manifest records (the version its run started from, and why), and the chain
// of generations back to the first version.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_store.h"

namespace dpt::checkpoint {

// What a manifest's state records as "parent" for a run that started from the loaded version `parent`:
// {"store": its store's root, "version", "manifest_sha256", "reason": "resume" or "init-from"}. A fresh run
// records null.
nlohmann::json parent_record(const CheckpointContents& parent, const std::string& reason);

// One key whose value differs between two JSON objects: its dotted path ("train.lr"), the values before and
// after ("(absent)" for a key on one side only).
struct JsonChange {
  std::string key;
  nlohmann::json before;
  nlohmann::json after;
};

// Every differing key of `before` and `after`, nested objects compared key by key, in key order.
std::vector<JsonChange> json_changes(const nlohmann::json& before, const nlohmann::json& after);

// A value as one short text: strings without quotes, anything else as compact JSON.
std::string json_text(const nlohmann::json& value);

// One generation of a lineage: a version and what its manifest says, or why it could not be read.
struct Generation {
  std::string version;          // "v000003"
  std::string store;            // the root of the store that holds it
  std::string manifest_sha256;  // of its manifest's bytes ("" when unreadable)
  nlohmann::json state;         // the manifest's state (null when unreadable)
  std::string problem;          // "" when read; else why not (missing, damaged, changed since the child recorded it)
  std::vector<JsonChange> config_changes;  // from its parent's config to its own (none for the first version)
};

// The chain from the version `ref` names in `store` back to the first version (one that records no parent),
// newest first. Reads manifests only. A parent that is missing, unreadable, or whose manifest no longer has the
// sha256 its child recorded ends the chain as a Generation with a `problem`; a `ref` that names no version is
// a dpt::Error.
std::vector<Generation> trace_lineage(const CheckpointStore& store, const std::string& ref);

// The chain as `dptrain ckpt lineage --json` prints it: an array of generations, newest first.
nlohmann::json lineage_json(const std::vector<Generation>& chain);

}  // namespace dpt::checkpoint
