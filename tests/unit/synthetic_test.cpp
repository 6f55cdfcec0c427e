// data synth and import-text: files Hdf5Source reads back, the same bytes from the same seed, and token targets
// that are each position's next token, read as [N, T] targets through the loader's source.
#include "data/synthetic.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "data/dataset_digest.h"
#include "data/hdf5_source.h"

namespace fs = std::filesystem;

namespace dpt::data::test {

fs::path fresh_test_dir();  // hdf5_source_test.cpp

namespace {

std::vector<std::int64_t> all_indices(std::int64_t n) {
  std::vector<std::int64_t> indices(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) indices[static_cast<std::size_t>(i)] = i;
  return indices;
}

TEST(Synthetic, ImagesHaveTheShapeClassesAndSeedAsked) {
  const fs::path dir = fresh_test_dir();
  SynthOptions o;
  o.samples = 37;
  o.shape = {3, 8, 5};
  o.classes = 4;
  o.seed = 7;
  write_synthetic(o, (dir / "a.h5").string());
  write_synthetic(o, (dir / "b.h5").string());
  o.seed = 8;
  write_synthetic(o, (dir / "c.h5").string());
  const auto sha = [&](const char* name) {
    return dataset_digest({(dir / name).string()}).at("sha256").get<std::string>();
  };
  EXPECT_EQ(sha("a.h5"), sha("b.h5"));
  EXPECT_NE(sha("a.h5"), sha("c.h5"));
  Hdf5Source source((dir / "a.h5").string(), "inputs", "labels");
  EXPECT_EQ(source.size(), 37);
  EXPECT_EQ(source.sample_shape(), (std::vector<std::int64_t>{3, 8, 5}));
  const SampleBatch batch = source.read_sorted(all_indices(37));
  EXPECT_EQ(batch.inputs.scalar_type(), torch::kFloat);
  EXPECT_NEAR(batch.inputs.std().item<double>(), 1.0, 0.1);
  EXPECT_GE(batch.targets.min().item<std::int64_t>(), 0);
  EXPECT_LT(batch.targets.max().item<std::int64_t>(), 4);
  EXPECT_GT(batch.targets.max().item<std::int64_t>(), batch.targets.min().item<std::int64_t>());
  o.classes = 0;
  EXPECT_THROW(write_synthetic(o, (dir / "bad.h5").string()), Error);
}

TEST(Synthetic, TokenTargetsAreTheNextTokens) {
  const fs::path dir = fresh_test_dir();
  SynthOptions o;
  o.samples = 20;
  o.vocab = 50;
  o.context = 9;
  write_synthetic(o, (dir / "tokens.h5").string());
  Hdf5Source source((dir / "tokens.h5").string(), "inputs", "labels");
  const SampleBatch batch = source.read_sorted({3, 4, 11});
  EXPECT_EQ(batch.targets.sizes(), (std::vector<std::int64_t>{3, 9}));
  EXPECT_TRUE(torch::equal(batch.targets.narrow(1, 0, 8), batch.inputs.narrow(1, 1, 8).to(torch::kLong)));
  EXPECT_LT(batch.inputs.max().item<int>(), 50);
}

// Windows of context + 1 bytes every `stride` bytes, in file order; too little text is one clear error.
TEST(Synthetic, ImportTextCutsTheBytesIntoNextTokenWindows) {
  const fs::path dir = fresh_test_dir();
  std::ofstream(dir / "a.txt") << "abcdefghij";
  std::ofstream(dir / "b.txt") << "klmnopq";
  const std::string out = (dir / "text.h5").string();
  EXPECT_EQ(import_text({(dir / "a.txt").string(), (dir / "b.txt").string()}, out, 4, 3), 5);  // 17 bytes
  Hdf5Source source(out, "inputs", "labels");
  const SampleBatch batch = source.read_sorted(all_indices(5));
  const auto text = [](const torch::Tensor& row) {
    std::string s;
    for (std::int64_t i = 0; i < row.numel(); ++i) s += static_cast<char>(row[i].item<std::int64_t>());
    return s;
  };
  EXPECT_EQ(text(batch.inputs[0]), "abcd");
  EXPECT_EQ(text(batch.targets[0]), "bcde");
  EXPECT_EQ(text(batch.inputs[4]), "mnop");
  EXPECT_EQ(text(batch.targets[4]), "nopq");
  try {
    import_text({(dir / "b.txt").string()}, out, 64, 64);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("hold 7 bytes, fewer than one window of --context 64 + 1"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace dpt::data::test
