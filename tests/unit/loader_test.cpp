// Loader: batches follow the sampler, are normalised, equal with and without prefetch, and report I/O errors.
#include "data/loader.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/tensor_source.h"

namespace dpt::data {
namespace {

constexpr std::int64_t kSamples = 23;

// Sample i is an image filled with the value i, and its label is i % 10.
std::shared_ptr<TensorSource> numbered_images() {
  auto inputs = at::arange(kSamples, at::kByte).view({kSamples, 1, 1}).expand({kSamples, 3, 2}).contiguous();
  return std::make_shared<TensorSource>(inputs, at::arange(kSamples, at::kLong).remainder(10), "numbered");
}

// A source that records the indices it was asked for and fails on a chosen sample.
class RecordingSource : public Source {
 public:
  explicit RecordingSource(std::int64_t fail_at = -1) : inner_(numbered_images()), fail_at_(fail_at) {}
  std::int64_t size() const override { return inner_->size(); }
  std::vector<std::int64_t> sample_shape() const override { return inner_->sample_shape(); }
  SampleBatch read_sorted(const std::vector<std::int64_t>& sorted_indices) override {
    for (auto index : sorted_indices) {
      if (index == fail_at_) throw std::runtime_error("disk on fire at sample " + std::to_string(index));
    }
    requests.push_back(sorted_indices);
    return inner_->read_sorted(sorted_indices);
  }
  std::string describe() const override { return "recording"; }

  std::vector<std::vector<std::int64_t>> requests;

 private:
  std::shared_ptr<TensorSource> inner_;
  std::int64_t fail_at_;
};

Sampler make_sampler(int rank = 1, int world = 2) { return Sampler(kSamples, 3, rank, world, 5, true); }

std::vector<Batch> drain(Loader& loader) {
  std::vector<Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

TEST(Loader, BatchesFollowTheSamplerAndAreNormalised) {
  const Normalization norm{0.5, 2.0, 4.0};
  Loader loader(numbered_images(), make_sampler(), norm, 2);
  loader.start_epoch(1);
  Sampler reference = make_sampler();
  reference.set_epoch(1);
  for (const auto& batch : drain(loader)) {
    const StepSamples step = reference.next();
    const auto n = static_cast<std::int64_t>(step.indices.size());
    ASSERT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{n, 1, 3, 2}));
    EXPECT_EQ(batch.inputs.scalar_type(), at::kFloat);
    EXPECT_EQ(batch.targets.scalar_type(), at::kLong);
    for (std::int64_t k = 0; k < n; ++k) {
      const double value = static_cast<double>(step.indices[static_cast<std::size_t>(k)]);
      EXPECT_FLOAT_EQ(batch.inputs[k][0][2][1].item<float>(), static_cast<float>((value * 0.5 - 2.0) / 4.0));
      EXPECT_EQ(batch.targets[k].item<std::int64_t>(), step.indices[static_cast<std::size_t>(k)] % 10);
    }
    EXPECT_EQ(batch.global_batch, step.global_batch);
    EXPECT_EQ(batch.cursor_after, step.cursor_after);
    EXPECT_EQ(batch.epoch, 1);
  }
  EXPECT_FALSE(reference.has_next());
  EXPECT_EQ(loader.sampler().cursor(), kSamples);
}

TEST(Loader, ReadsEachStepOnceInSortedOrder) {
  auto source = std::make_shared<RecordingSource>();
  Loader loader(source, make_sampler(0, 1), Normalization{}, 0);
  const auto batches = drain(loader);
  ASSERT_EQ(source->requests.size(), batches.size());
  for (const auto& request : source->requests) EXPECT_TRUE(std::is_sorted(request.begin(), request.end()));
}

TEST(Loader, PrefetchZeroAndTwoGiveTheSameBatches) {
  Loader inline_loader(numbered_images(), make_sampler(), Normalization{1.0 / 255, 0.1, 0.3}, 0);
  Loader prefetching(numbered_images(), make_sampler(), Normalization{1.0 / 255, 0.1, 0.3}, 2);
  for (std::int64_t epoch : {0, 1}) {
    inline_loader.start_epoch(epoch, 6);
    prefetching.start_epoch(epoch, 6);
    const auto a = drain(inline_loader);
    const auto b = drain(prefetching);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), 3u);  // cursor 6 of 23 with a global batch of 6: 6, 6, 5 left
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(a[i].inputs.equal(b[i].inputs));
      EXPECT_TRUE(a[i].targets.equal(b[i].targets));
      EXPECT_EQ(a[i].cursor_after, b[i].cursor_after);
    }
  }
}

TEST(Loader, EndOfEpochIsNulloptUntilTheNextEpochStarts) {
  Loader loader(numbered_images(), make_sampler(), Normalization{}, 1);
  loader.start_epoch(0);
  EXPECT_EQ(drain(loader).size(), 4u);
  EXPECT_FALSE(loader.next().has_value());
  EXPECT_FALSE(loader.next().has_value());
  loader.start_epoch(1);
  EXPECT_TRUE(loader.next().has_value());
}

TEST(Loader, StartEpochDropsPrefetchedBatches) {
  Loader loader(numbered_images(), make_sampler(), Normalization{}, 3);
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next().has_value());
  loader.start_epoch(2, 12);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->epoch, 2);
  EXPECT_EQ(batch->cursor_after, 18);
}

TEST(Loader, AnErrorInTheIoThreadSurfacesFromNext) {
  Sampler sampler(kSamples, 4, 0, 1, 0, false);
  Loader loader(std::make_shared<RecordingSource>(9), sampler, Normalization{}, 2);
  loader.start_epoch(0);
  EXPECT_TRUE(loader.next().has_value());  // samples 0-3
  EXPECT_TRUE(loader.next().has_value());  // samples 4-7
  try {
    loader.next();  // samples 8-11 include 9
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("disk on fire at sample 9"), std::string::npos) << e.message();
  }
  EXPECT_THROW(loader.next(), Error);
}

TEST(Loader, OneDimensionalSamplesGetNoChannelAxis) {
  auto flat = std::make_shared<TensorSource>(at::ones({6, 5}, at::kDouble), at::zeros({6}, at::kInt));
  Loader loader(flat, Sampler(6, 6, 0, 1, 0, false), Normalization{}, 0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->inputs.sizes(), (std::vector<std::int64_t>{6, 5}));
}

}  // namespace
}  // namespace dpt::data
