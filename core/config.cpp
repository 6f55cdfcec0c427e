// Config parsing: TOML flattened to dotted keys, overrides applied, every key checked against the schema.
#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "core/check.h"
#include "core/registry.h"

namespace dpt {
namespace {

const char* type_name(ConfigType type) {
  switch (type) {
    case ConfigType::Bool: return "a boolean (true/false)";
    case ConfigType::Int: return "an integer";
    case ConfigType::Float: return "a number";
    case ConfigType::String: return "a string";
    case ConfigType::StringList: return "a list of strings";
  }
  return "?";
}

bool is_free_form(const std::string& name) {
  const auto pos = name.find(".options.");
  return pos != std::string::npos && pos > 0;
}

std::string suggestion(const ConfigSchema& schema, const std::string& name) {
  std::vector<std::string> names;
  for (const auto& key : schema.keys()) names.push_back(key.name);
  const std::string best = closest_name(name, names);
  return best.empty() ? "; run `dptrain train --help-config` for the list of keys" : "; did you mean '" + best + "'?";
}

std::string describe(const toml::node& node) {
  std::ostringstream out;
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  node.visit([&](const auto& v) { out << v; });
  return out.str();
}

// Converts one TOML node to the key's type, or throws naming the key and what it expected.
ConfigValue convert(const ConfigKey& key, const toml::node& node, const std::string& source) {
  auto wrong = [&]() -> ConfigValue {
    DPT_THROW("config key '", key.name, "' in ", source, " must be ", type_name(key.type), ", got ", describe(node));
  };
  switch (key.type) {
    case ConfigType::Bool:
      if (auto v = node.value_exact<bool>()) return *v;
      return wrong();
    case ConfigType::Int:
      if (auto v = node.value_exact<std::int64_t>()) return *v;
      return wrong();
    case ConfigType::Float:
      if (node.is_integer()) return static_cast<double>(*node.value_exact<std::int64_t>());
      if (auto v = node.value_exact<double>()) return *v;
      return wrong();
    case ConfigType::String:
      if (auto v = node.value_exact<std::string>()) return *v;
      return wrong();
    case ConfigType::StringList: {
      const auto* array = node.as_array();
      if (!array) return wrong();
      std::vector<std::string> items;
      for (const auto& item : *array) {
        auto v = item.value_exact<std::string>();
        if (!v) return wrong();
        items.push_back(*v);
      }
      return items;
    }
  }
  return wrong();
}

void check_range(const ConfigKey& key, const ConfigValue& value, const std::string& source) {
  auto out_of_range = [&](const std::string& shown) {
    std::ostringstream range;
    if (key.min > -1e299 && key.max < 1e299) {
      range << "between " << key.min << " and " << key.max;
    } else if (key.min > -1e299) {
      range << "at least " << key.min;
    } else {
      range << "at most " << key.max;
    }
    DPT_THROW("config key '", key.name, "' in ", source, " = ", shown, " is out of range: it must be ", range.str());
  };
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    if (static_cast<double>(*i) < key.min || static_cast<double>(*i) > key.max) out_of_range(std::to_string(*i));
  } else if (const auto* d = std::get_if<double>(&value)) {
    if (!std::isfinite(*d) || *d < key.min || *d > key.max) {
      std::ostringstream shown;
      shown << *d;
      out_of_range(shown.str());
    }
  }
  auto check_choice = [&](const std::string& s) {
    if (key.choices.empty() || std::find(key.choices.begin(), key.choices.end(), s) != key.choices.end()) return;
    std::string allowed;
    for (const auto& c : key.choices) allowed += (allowed.empty() ? "" : ", ") + c;
    const std::string best = closest_name(s, key.choices);
    DPT_THROW("config key '", key.name, "' in ", source, " = \"", s, "\" is not one of: ", allowed,
              best.empty() ? "" : "; did you mean '" + best + "'?");
  };
  if (const auto* s = std::get_if<std::string>(&value)) check_choice(*s);
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    for (const auto& s : *list) check_choice(s);
  }
}

// Flattens nested tables into dotted keys; arrays and scalars are leaves.
void flatten(const toml::table& table, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out) {
  for (const auto& [k, node] : table) {
    const std::string name = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      flatten(*sub, name, out);
    } else {
      out.emplace_back(name, &node);
    }
  }
}

std::string toml_error(const toml::parse_error& e) {
  std::ostringstream out;
  out << e.description() << " at line " << e.source().begin.line << ", column " << e.source().begin.column;
  return out.str();
}

// An override's value: TOML syntax when it parses (3, 1e-4, true, ["a"]), otherwise the bare text as a string.
toml::table parse_override_value(const std::string& text) {
  try {
    return toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    toml::table t;
    t.insert("v", text);
    return t;
  }
}

nlohmann::json toml_to_json(const toml::node& node) {
  if (const auto* array = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : *array) out.push_back(toml_to_json(item));
    return out;
  }
  if (const auto* table = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : *table) out[std::string(k.str())] = toml_to_json(v);
    return out;
  }
  if (auto v = node.value_exact<bool>()) return *v;
  if (auto v = node.value_exact<std::int64_t>()) return *v;
  if (auto v = node.value_exact<double>()) return *v;
  if (auto v = node.value_exact<std::string>()) return *v;
  return describe(node);
}

toml::array json_array_to_toml(const nlohmann::json& value);
toml::table json_object_to_toml(const nlohmann::json& value);

// Free-form option values go back to TOML with their JSON types (numbers stay numbers).
template <typename Fn>
auto visit_json_as_toml(const nlohmann::json& value, Fn&& fn) {
  if (value.is_boolean()) return fn(toml::value<bool>(value.get<bool>()));
  if (value.is_number_integer()) return fn(toml::value<std::int64_t>(value.get<std::int64_t>()));
  if (value.is_number()) return fn(toml::value<double>(value.get<double>()));
  if (value.is_array()) return fn(json_array_to_toml(value));
  if (value.is_object()) return fn(json_object_to_toml(value));
  return fn(toml::value<std::string>(value.is_string() ? value.get<std::string>() : value.dump()));
}

toml::array json_array_to_toml(const nlohmann::json& value) {
  toml::array out;
  for (const auto& item : value) visit_json_as_toml(item, [&](auto&& node) { out.push_back(std::move(node)); });
  return out;
}

toml::table json_object_to_toml(const nlohmann::json& value) {
  toml::table out;
  for (const auto& [k, item] : value.items()) {
    visit_json_as_toml(item, [&, key = k](auto&& node) { out.insert_or_assign(key, std::move(node)); });
  }
  return out;
}

nlohmann::json value_to_json(const ConfigValue& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

}  // namespace

Config Config::load(std::shared_ptr<const ConfigSchema> schema, const std::string& path,
                    const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  DPT_CHECK(in.good(), "cannot read config file '", path, "': check the path (relative paths start at the ",
            "current directory)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(std::move(schema), text.str(), overrides, path);
}

Config Config::parse(std::shared_ptr<const ConfigSchema> schema, const std::string& toml_text,
                     const std::vector<std::string>& overrides, const std::string& source) {
  DPT_CHECK(schema, "internal: Config::parse without a schema");
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    DPT_THROW("config ", source, " is not valid TOML: ", toml_error(e));
  }

  std::vector<toml::table> override_tables;
  override_tables.reserve(overrides.size());
  std::vector<std::pair<std::string, const toml::node*>> entries;
  flatten(root, "", entries);
  std::vector<std::string> origins(entries.size(), source);
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    DPT_CHECK(eq != std::string::npos && eq > 0, "--set '", o, "' must look like key=value, e.g. --set train.lr=3e-4");
    const std::string key = o.substr(0, eq);
    override_tables.push_back(parse_override_value(o.substr(eq + 1)));
    const toml::node* node = override_tables.back().get("v");
    const std::string origin = "--set " + key;
    auto existing = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == key; });
    if (existing != entries.end()) {
      existing->second = node;
      origins[existing - entries.begin()] = origin;
    } else {
      entries.emplace_back(key, node);
      origins.push_back(origin);
    }
  }

  Config config;
  config.source_ = source;
  config.schema_ = std::move(schema);
  for (const auto& key : config.schema_->keys()) config.values_[key.name] = key.default_value;
  std::vector<std::string> seen;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, node] = entries[i];
    if (is_free_form(name)) {
      config.free_form_[name] = toml_to_json(*node).dump();
      continue;
    }
    const ConfigKey* key = config.schema_->find(name);
    DPT_CHECK(key, "unknown config key '", name, "' in ", origins[i], suggestion(*config.schema_, name));
    ConfigValue value = key->type == ConfigType::String && origins[i] != source && !node->is_string()
                            ? ConfigValue(describe(*node))
                            : convert(*key, *node, origins[i]);
    check_range(*key, value, origins[i]);
    config.values_[name] = std::move(value);
    seen.push_back(name);
  }
  for (const auto& key : config.schema_->keys()) {
    if (!key.required) continue;
    const bool given = std::find(seen.begin(), seen.end(), key.name) != seen.end();
    DPT_CHECK(given && !std::get<std::string>(config.values_[key.name]).empty(), "config ", source,
              " must set '", key.name, "' (", key.help, ")");
  }
  return config;
}

Config Config::from_json(std::shared_ptr<const ConfigSchema> schema, const nlohmann::json& resolved) {
  DPT_CHECK(schema, "internal: Config::from_json without a schema");
  Config config;
  config.source_ = "<checkpoint>";
  config.schema_ = std::move(schema);
  for (const auto& key : config.schema_->keys()) {
    config.values_[key.name] = key.default_value;
    if (!resolved.contains(key.name)) continue;
    const auto& v = resolved.at(key.name);
    switch (key.type) {
      case ConfigType::Bool: config.values_[key.name] = v.get<bool>(); break;
      case ConfigType::Int: config.values_[key.name] = v.get<std::int64_t>(); break;
      case ConfigType::Float: config.values_[key.name] = v.get<double>(); break;
      case ConfigType::String: config.values_[key.name] = v.get<std::string>(); break;
      case ConfigType::StringList: config.values_[key.name] = v.get<std::vector<std::string>>(); break;
    }
  }
  for (const auto& [k, v] : resolved.items()) {
    if (is_free_form(k)) config.free_form_[k] = v.dump();
  }
  return config;
}

const ConfigValue& Config::at(const std::string& key, ConfigType type) const {
  const ConfigKey* schema_key = schema_ ? schema_->find(key) : nullptr;
  DPT_CHECK(schema_key && schema_key->type == type, "internal: config key '", key, "' read as ", type_name(type),
            " is not in the schema with that type");
  return values_.at(key);
}

bool Config::get_bool(const std::string& key) const { return std::get<bool>(at(key, ConfigType::Bool)); }
std::int64_t Config::get_int(const std::string& key) const {
  return std::get<std::int64_t>(at(key, ConfigType::Int));
}
double Config::get_float(const std::string& key) const { return std::get<double>(at(key, ConfigType::Float)); }
const std::string& Config::get_string(const std::string& key) const {
  return std::get<std::string>(at(key, ConfigType::String));
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return std::get<std::vector<std::string>>(at(key, ConfigType::StringList));
}

nlohmann::json Config::options(const std::string& table) const {
  nlohmann::json out = nlohmann::json::object();
  const std::string prefix = table + ".options.";
  for (const auto& [k, v] : free_form_) {
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = nlohmann::json::parse(v);
  }
  return out;
}

nlohmann::json Config::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : values_) out[k] = value_to_json(v);
  for (const auto& [k, v] : free_form_) out[k] = nlohmann::json::parse(v);
  return out;
}

std::string Config::to_toml() const {
  toml::table root;
  auto put = [&](const std::string& dotted, auto&& leaf) {
    toml::table* table = &root;
    std::size_t start = 0;
    for (auto dot = dotted.find('.'); dot != std::string::npos; dot = dotted.find('.', start)) {
      auto part = dotted.substr(start, dot - start);
      auto [it, inserted] = table->insert(part, toml::table{});
      table = it->second.as_table();
      start = dot + 1;
    }
    table->insert_or_assign(dotted.substr(start), std::move(leaf));
  };
  for (const auto& [k, v] : values_) {
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, std::vector<std::string>>) {
            toml::array array;
            for (const auto& s : x) array.push_back(s);
            put(k, std::move(array));
          } else {
            put(k, toml::value<X>(x));
          }
        },
        v);
  }
  for (const auto& [k, v] : free_form_) {
    visit_json_as_toml(nlohmann::json::parse(v), [&, key = k](auto&& node) { put(key, std::move(node)); });
  }
  std::ostringstream out;
  out << root;
  return out.str();
}

std::string config_reference(const ConfigSchema& schema) {
  std::ostringstream out;
  out << "Config keys (TOML tables; override any with --set key=value):\n";
  for (const auto& key : schema.keys()) {
    out << "  " << key.name << "  (" << type_name(key.type) << ", default " << value_to_json(key.default_value).dump()
        << (key.required ? ", required" : "") << ")\n      " << key.help << "\n";
  }
  out << "  model.options.*  (free-form) passed to the model factory\n";
  return out.str();
}

}  // namespace dpt
