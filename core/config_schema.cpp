// ConfigSchema: the keys a Config accepts, added part by part by the libraries that own them; core's own part
// (run.*, runtime.*) and the builders every part uses.
#include "core/config.h"

#include "core/check.h"

namespace dpt {

ConfigSchema& ConfigSchema::add(const std::vector<ConfigKey>& keys) {
  for (const auto& key : keys) {
    DPT_CHECK(!find(key.name), "internal: config key '", key.name, "' is defined by two parts of the schema");
    keys_.push_back(key);
  }
  return *this;
}

const ConfigKey* ConfigSchema::find(const std::string& name) const {
  for (const auto& key : keys_) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

std::shared_ptr<const ConfigSchema> make_schema(std::initializer_list<std::vector<ConfigKey>> parts) {
  auto schema = std::make_shared<ConfigSchema>();
  for (const auto& part : parts) schema->add(part);
  return schema;
}

namespace config_key {

ConfigKey flag(std::string name, bool fallback, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Bool, fallback, std::move(help), -kNoLimit, kNoLimit, {}, false};
}

ConfigKey integer(std::string name, std::int64_t fallback, double min, double max, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Int, fallback, std::move(help), min, max, {}, false};
}

ConfigKey number(std::string name, double fallback, double min, double max, std::string help) {
  return ConfigKey{std::move(name), ConfigType::Float, fallback, std::move(help), min, max, {}, false};
}

ConfigKey text(std::string name, std::string fallback, std::string help, std::vector<std::string> choices) {
  return ConfigKey{std::move(name), ConfigType::String, std::move(fallback), std::move(help),
                   -kNoLimit,      kNoLimit,           std::move(choices),  false};
}

ConfigKey required_text(std::string name, std::string help) {
  ConfigKey key = text(std::move(name), "", std::move(help));
  key.required = true;
  return key;
}

ConfigKey text_list(std::string name, std::vector<std::string> fallback, std::string help,
                    std::vector<std::string> choices) {
  return ConfigKey{std::move(name), ConfigType::StringList, std::move(fallback), std::move(help),
                   -kNoLimit,      kNoLimit,               std::move(choices),  false};
}

}  // namespace config_key

std::vector<ConfigKey> runtime_config_keys() {
  using namespace config_key;
  return {
      text("run.name", "", "human-readable run name; the run id is generated"),
      integer("run.seed", 0, 0, 9.2e18, "seed of model init, shuffling and every RNG"),
      text("run.output_dir", "runs", "metrics go to <output_dir>/<run-id>/"),
      integer("runtime.threads", 0, 0, 4096,
              "torch/OpenBLAS threads per rank (0: this rank's share of the CPUs it may use)"),
      text("runtime.device", "cpu", "where the model runs (cuda: GPU local_rank % visible GPUs)",
           {"cpu", "cuda", "auto"}),
      flag("runtime.all_ranks_print", false, "let every rank print, not only rank 0"),
      flag("runtime.bind_cores", true,
           "pin each rank to its own runtime.threads CPUs when the launcher left the node's ranks on the same CPUs"),
  };
}

}  // namespace dpt
