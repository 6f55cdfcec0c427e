// Config: defaults, overrides, and the errors a user gets for typos, wrong types and out-of-range values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <torch/optim/sgd.h>

#include "core/check.h"
#include "core/config.h"
#include "train/model_registry.h"
#include "train/train_options.h"

namespace dpt {
namespace {

const char* kMinimal = R"(
[data]
train = "train.h5"
)";

// The whole schema, as `dptrain train` reads a config.
Config parse(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  return Config::parse(train::config_schema(), toml, overrides);
}

// Runs `fn`, expecting a dpt::Error whose message contains every fragment.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<const char*> fragments) {
  try {
    fn();
    FAIL() << "expected a dpt::Error";
  } catch (const Error& e) {
    for (const char* f : fragments) EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
  }
}

TEST(Config, DefaultsFillUnsetKeys) {
  const Config c = parse(kMinimal);
  EXPECT_EQ(c.get_string("data.train"), "train.h5");
  EXPECT_EQ(c.get_int("train.batch_size"), 64);
  EXPECT_EQ(c.get_string("model.name"), "fashion_cnn");
  EXPECT_TRUE(c.get_bool("data.shuffle"));
  EXPECT_EQ(c.get_strings("tracking.sinks"), (std::vector<std::string>{"console", "jsonl", "tensorboard"}));
}

TEST(Config, OverridesWinOverTheFileAndParseTomlValues) {
  const Config c = parse(kMinimal, {"train.batch_size=32", "train.lr=3e-4", "data.shuffle=false",
                                            "data.test=some/dir/test.h5", "tracking.sinks=[\"jsonl\"]",
                                            "run.name=123"});
  EXPECT_EQ(c.get_int("train.batch_size"), 32);
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 3e-4);
  EXPECT_FALSE(c.get_bool("data.shuffle"));
  EXPECT_EQ(c.get_string("data.test"), "some/dir/test.h5");
  EXPECT_EQ(c.get_strings("tracking.sinks"), std::vector<std::string>{"jsonl"});
  EXPECT_EQ(c.get_string("run.name"), "123");
}

TEST(Config, IntegerAcceptedWhereANumberIsExpected) {
  const Config c = parse(std::string(kMinimal) + "[train]\nlr = 1\n");
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 1.0);
}

TEST(Config, UnknownKeyIsRejectedWithASuggestion) {
  expect_error([] { parse(std::string(kMinimal) + "[train]\nbach_size = 3\n"); },
               {"unknown config key 'train.bach_size'", "did you mean 'train.batch_size'"});
  expect_error([] { parse(kMinimal, {"trian.lr=1"}); }, {"unknown config key 'trian.lr'", "--set"});
}

TEST(Config, WrongTypeNamesKeyAndExpectedType) {
  expect_error([] { parse(std::string(kMinimal) + "[train]\nbatch_size = \"64\"\n"); },
               {"'train.batch_size'", "must be an integer", "64"});
  expect_error([] { parse(kMinimal, {"data.shuffle=3"}); }, {"'data.shuffle'", "boolean"});
}

TEST(Config, OutOfRangeAndBadChoiceAreRejected) {
  expect_error([] { parse(kMinimal, {"train.batch_size=0"}); }, {"'train.batch_size'", "out of range"});
  expect_error([] { parse(kMinimal, {"train.lr=-1"}); }, {"'train.lr'", "out of range"});
  expect_error([] { parse(kMinimal, {"train.optimizer=lamb"}); }, {"'train.optimizer'", "adam, adamw, sgd"});
}

TEST(Config, RequiredKeyAndSyntaxErrors) {
  expect_error([] { parse("[train]\nepochs = 1\n"); }, {"must set 'data.train'"});
  expect_error([] { parse("[train\n"); }, {"not valid TOML", "line 1"});
  expect_error([] { parse(kMinimal, {"noequals"}); }, {"key=value"});
  expect_error([] { Config::load(train::config_schema(), "/nonexistent/config.toml"); }, {"cannot read config file '/nonexistent/config.toml'"});
}

TEST(Config, FreeFormModelOptionsPassThrough) {
  const Config c = parse(std::string(kMinimal) + "[model]\noptions.hidden = 128\n", {"model.options.act=\"gelu\""});
  const auto options = c.options("model");
  EXPECT_EQ(options.at("hidden").get<int>(), 128);
  EXPECT_EQ(options.at("act").get<std::string>(), "gelu");
}

TEST(Config, JsonAndTomlRoundTripKeepEveryValue) {
  const Config c = parse(kMinimal, {"train.batch_size=17", "model.options.hidden=5"});
  const Config from_json = Config::from_json(train::config_schema(), c.to_json());
  EXPECT_EQ(from_json.to_json(), c.to_json());
  const Config from_toml = parse(c.to_toml());
  EXPECT_EQ(from_toml.to_json(), c.to_json());
}

TEST(ConfigSchema, EachLibraryOwnsItsKeysAndTheirNames) {
  const auto schema = train::config_schema();
  for (const char* key : {"run.seed", "runtime.device", "data.train", "ddp.compression", "ddp.backend",
                          "train.optimizer", "train.loss", "checkpoint.dir", "tracking.sinks"}) {
    EXPECT_NE(schema->find(key), nullptr) << key;
  }
  // A name registered before the schema is assembled is a valid choice; one registered twice is an error.
  train::optimizers().add("sgd_plain", [](std::vector<torch::Tensor> params, const train::OptimizerSettings& s)
                                           -> std::unique_ptr<torch::optim::Optimizer> {
    return std::make_unique<torch::optim::SGD>(std::move(params), torch::optim::SGDOptions(s.lr));
  });
  EXPECT_EQ(parse(kMinimal, {"train.optimizer=sgd_plain"}).get_string("train.optimizer"), "sgd_plain");
  EXPECT_THROW(ConfigSchema().add(runtime_config_keys()).add(runtime_config_keys()), Error);
}

TEST(ConfigSchema, AMistypedNameSuggestsTheClosestOne) {
  expect_error([] { parse(kMinimal, {"train.optimizer=adamm"}); }, {"did you mean 'adam'"});
  expect_error([] { parse(kMinimal, {"tracking.sinks=[\"tensorbord\"]"}); }, {"did you mean 'tensorboard'"});
  expect_error([] { parse(kMinimal, {"ddp.compression=bf61"}); }, {"did you mean 'bf16'"});
  expect_error([] { parse(kMinimal, {"train.loss=mse2"}); }, {"did you mean 'mse'"});
  expect_error([] { train::ModelRegistry::global().create("fashion_nn", nlohmann::json::object()); },
               {"unknown model 'fashion_nn'", "did you mean 'fashion_cnn'"});
}

}  // namespace
}  // namespace dpt
