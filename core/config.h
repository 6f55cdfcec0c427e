// Config: a TOML file plus `--set a.b=c` overrides, checked against dptrain's key schema before any work starts.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dpt {

using ConfigValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>>;

enum class ConfigType { Bool, Int, Float, String, StringList };

// One documented key: its type, default, allowed range or choices, and a help line.
struct ConfigKey {
  std::string name;  // dotted: "train.batch_size"
  ConfigType type;
  ConfigValue default_value;
  std::string help;
  double min = -1e300;  // inclusive bounds for Int and Float
  double max = 1e300;
  std::vector<std::string> choices;  // allowed values for String keys (empty: any)
  bool required = false;
};

// The keys a Config accepts, assembled from the parts each library owns (train::config_schema() has them all).
// Tables named `*.options` (model.options) are free-form and passed through.
class ConfigSchema {
 public:
  // Adds a library's keys; a name that is already there is an internal error (two owners of one key).
  ConfigSchema& add(const std::vector<ConfigKey>& keys);
  const std::vector<ConfigKey>& keys() const { return keys_; }
  const ConfigKey* find(const std::string& name) const;

 private:
  std::vector<ConfigKey> keys_;
};

// A schema of these parts, e.g. make_schema({runtime_config_keys(), tracking::config_keys()}).
std::shared_ptr<const ConfigSchema> make_schema(std::initializer_list<std::vector<ConfigKey>> parts);

// Builders for a library's keys: type, default, range or choices, and one line of help.
namespace config_key {
constexpr double kNoLimit = 1e300;
ConfigKey flag(std::string name, bool fallback, std::string help);
ConfigKey integer(std::string name, std::int64_t fallback, double min, double max, std::string help);
ConfigKey number(std::string name, double fallback, double min, double max, std::string help);
ConfigKey text(std::string name, std::string fallback, std::string help, std::vector<std::string> choices = {});
ConfigKey required_text(std::string name, std::string help);
ConfigKey text_list(std::string name, std::vector<std::string> fallback, std::string help,
                    std::vector<std::string> choices = {});
}  // namespace config_key

// core's own part of the schema: run.* and runtime.*.
std::vector<ConfigKey> runtime_config_keys();

class Config {
 public:
  // Reads a TOML file, applies overrides ("a.b=c", the value in TOML syntax or a bare string), validates.
  static Config load(std::shared_ptr<const ConfigSchema> schema, const std::string& path,
                     const std::vector<std::string>& overrides = {});
  // The same from TOML text; `source` names it in error messages.
  static Config parse(std::shared_ptr<const ConfigSchema> schema, const std::string& toml_text,
                      const std::vector<std::string>& overrides = {}, const std::string& source = "<config>");
  // A config rebuilt from its resolved JSON form (as stored in checkpoints).
  static Config from_json(std::shared_ptr<const ConfigSchema> schema, const nlohmann::json& resolved);

  bool get_bool(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  // Free-form values under a `*.options` table, e.g. options("model") -> {"hidden": "256"} as JSON.
  nlohmann::json options(const std::string& table) const;

  // Every key with its resolved value (defaults filled in), as JSON and as TOML text.
  nlohmann::json to_json() const;
  std::string to_toml() const;
  const std::string& source() const { return source_; }

 private:
  const ConfigValue& at(const std::string& key, ConfigType type) const;

  std::shared_ptr<const ConfigSchema> schema_;
  std::map<std::string, ConfigValue> values_;
  std::map<std::string, std::string> free_form_;  // "model.options.hidden" -> JSON text of the value
  std::string source_;
};

// Help text listing every key with type, default and range; used by `dptrain train --help-config`.
std::string config_reference(const ConfigSchema& schema);

}  // namespace dpt
