// Reducer and ThreadBackend: bucket layout, rebuild order, accumulation, unused parameters, compression,
// timeouts and ZeRO-1's shards, with ranks as threads of this process.
#include "distributed/reducer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <tuple>

#include "core/check.h"
#include "distributed/local_backend.h"
#include "distributed/thread_backend.h"

namespace dpt::distributed {
namespace {

// Deterministic values without a shared RNG (ranks are threads).
at::Tensor fill(std::vector<std::int64_t> shape, double phase) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return at::sin(at::arange(n, at::kFloat) * 0.7 + phase).reshape(shape);
}

// Linear(6, 5) - ReLU - Linear(5, 3), plus an optional head that some tests leave out of the loss.
struct TinyNet {
  at::Tensor w1 = fill({5, 6}, 0.1).requires_grad_(true);
  at::Tensor b1 = fill({5}, 0.2).requires_grad_(true);
  at::Tensor w2 = fill({3, 5}, 0.3).requires_grad_(true);
  at::Tensor b2 = fill({3}, 0.4).requires_grad_(true);
  at::Tensor head = fill({3}, 0.5).requires_grad_(true);

  std::vector<Reducer::NamedParameter> named() const {
    return {{"fc1.weight", w1}, {"fc1.bias", b1}, {"fc2.weight", w2}, {"fc2.bias", b2}, {"head.scale", head}};
  }
  at::Tensor loss(const at::Tensor& x, const at::Tensor& y, bool use_head = true) const {
    at::Tensor logits = at::linear(at::relu(at::linear(x, w1, b1)), w2, b2);
    if (use_head) logits = logits * head;
    return at::nll_loss(at::log_softmax(logits, 1), y);
  }
  std::vector<at::Tensor> grads() const {
    return {w1.grad().clone(), b1.grad().clone(), w2.grad().clone(), b2.grad().clone(), head.grad().clone()};
  }
};

at::Tensor inputs(std::int64_t begin, std::int64_t n) {
  return at::cos(at::arange(begin * 6, (begin + n) * 6, at::kFloat) * 0.11).reshape({n, 6});
}
at::Tensor targets(std::int64_t begin, std::int64_t n) { return at::arange(begin, begin + n, at::kLong).remainder(3); }

// One optimizer step's gradients on `rank` of `world`, each rank holding `per_rank` samples in `micro` micro-batches.
std::vector<at::Tensor> ddp_gradients(Backend& backend, TinyNet& net, Reducer& reducer, std::int64_t per_rank,
                                      std::int64_t micro) {
  reducer.zero_grad();
  const std::int64_t start = backend.rank() * per_rank;
  for (std::int64_t i = 0; i < micro; ++i) {
    const std::int64_t size = per_rank / micro;
    reducer.prepare_for_backward({0, 1.0 / backend.world_size(), i == micro - 1});
    (net.loss(inputs(start + i * size, size), targets(start + i * size, size)) / static_cast<double>(micro)).backward();
  }
  reducer.finish();
  return net.grads();
}

void expect_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double rtol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_LE((a[i] - b[i]).norm().item<double>(), rtol * b[i].norm().item<double>() + 1e-7) << "tensor " << i;
  }
}

TEST(ThreadBackend, AllreduceGivesEveryRankTheSameSum) {
  ThreadBackend::run(3, [](ThreadBackend& backend) {
    at::Tensor t = at::full({4}, static_cast<float>(backend.rank() + 1));
    backend.allreduce(t, ReduceOp::Sum)->wait();
    EXPECT_TRUE(at::equal(t, at::full({4}, 6.0f)));
    at::Tensor all = at::empty({3, 4});
    backend.allgather(t, all)->wait();
    EXPECT_TRUE(at::equal(all, at::full({3, 4}, 6.0f)));
  });
}

TEST(ThreadBackend, MismatchedCollectivesFailOnEveryRank) {
  EXPECT_THROW(ThreadBackend::run(2,
                                  [](ThreadBackend& backend) {
                                    at::Tensor t = at::zeros({backend.rank() + 1});
                                    backend.allreduce(t, ReduceOp::Sum)->wait();
                                  }),
               Error);
}

// After finish() every gradient lies in bucket memory, the parameters' slices back to back, the same memory in
// every round; between zero_grad() and backward the gradients are undefined (nothing zeroes the buckets).
TEST(Reducer, GradientsAreViewsIntoBucketsAndSurviveRounds) {
  LocalBackend backend;
  TinyNet net;
  Reducer reducer(net.named(), backend);
  const void* bucket_memory = nullptr;
  for (int round = 0; round < 3; ++round) {
    reducer.zero_grad();
    EXPECT_FALSE(net.b2.grad().defined());
    reducer.prepare_for_backward({round, 1.0});
    net.loss(inputs(0, 8), targets(0, 8)).backward();
    reducer.finish();
    std::vector<std::pair<const char*, std::size_t>> spans;
    for (const auto& [name, p] : net.named()) {
      spans.emplace_back(static_cast<const char*>(p.grad().data_ptr()), p.grad().nbytes());
    }
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) {
      EXPECT_EQ(spans[i].first, spans[i - 1].first + spans[i - 1].second) << "gradients are not one bucket";
    }
    if (round == 0) bucket_memory = spans.front().first;
    EXPECT_EQ(spans.front().first, bucket_memory) << "round " << round << ": the buckets moved";
    TinyNet plain;
    plain.loss(inputs(0, 8), targets(0, 8)).backward();
    expect_close(net.grads(), plain.grads(), 1e-6);
  }
}

TEST(Reducer, BucketsFollowReverseRegistrationWithASmallFirstBucket) {
  LocalBackend backend;
  // 400, 200, 200, 1200 and 40 bytes; first bucket 400 bytes, the others 1000.
  std::vector<Reducer::NamedParameter> params;
  for (std::int64_t n : {100, 50, 50, 300, 10})
    params.emplace_back("p" + std::to_string(params.size()), at::zeros({n}).requires_grad_(true));
  ReducerOptions options;
  options.first_bucket_mb = 400.0 / (1024 * 1024);
  options.bucket_cap_mb = 1000.0 / (1024 * 1024);
  Reducer reducer(params, backend, options);
  const std::vector<std::vector<std::size_t>> expected = {{4}, {3}, {2, 1, 0}};
  EXPECT_EQ(reducer.bucket_parameters(), expected);
}

// Rank r builds its loss terms in its own order, so autograd finishes the parameters in a different order on
// each rank; after the first step every rank must use rank 0's order.
void rank_ordered_step(Backend& backend, Reducer& reducer, const std::vector<at::Tensor>& params, bool reversed) {
  reducer.zero_grad();
  reducer.prepare_for_backward({0, 1.0 / backend.world_size()});
  at::Tensor loss = at::zeros({});
  for (std::size_t k = 0; k < params.size(); ++k) {
    const at::Tensor& p = params[reversed ? params.size() - 1 - k : k];
    loss = loss + (p * p).sum();
  }
  loss.backward();
  reducer.finish();
  reducer.zero_grad();
}

std::vector<Reducer::NamedParameter> four_params() {
  std::vector<Reducer::NamedParameter> params;
  for (int i = 0; i < 4; ++i) params.emplace_back("p" + std::to_string(i), fill({8}, i).requires_grad_(true));
  return params;
}

std::vector<at::Tensor> tensors_of(const std::vector<Reducer::NamedParameter>& named) {
  std::vector<at::Tensor> out;
  for (const auto& [name, t] : named) out.push_back(t);
  return out;
}

TEST(Reducer, RebuiltBucketsUseRankZerosReadyOrderOnEveryRank) {
  ReducerOptions one_per_bucket;
  one_per_bucket.first_bucket_mb = one_per_bucket.bucket_cap_mb = 1e-6;
  // Each order on its own, in a world of one: they differ, or this test could not fail.
  std::vector<std::vector<std::vector<std::size_t>>> alone;
  for (bool reversed : {false, true}) {
    LocalBackend local;
    auto params = four_params();
    Reducer reducer(params, local, one_per_bucket);
    rank_ordered_step(local, reducer, tensors_of(params), reversed);
    alone.push_back(reducer.bucket_parameters());
  }
  ASSERT_NE(alone[0], alone[1]);

  std::vector<std::vector<std::vector<std::size_t>>> layouts(2);
  ThreadBackend::run(2, [&](ThreadBackend& backend) {
    auto params = four_params();
    Reducer reducer(params, backend, one_per_bucket);
    rank_ordered_step(backend, reducer, tensors_of(params), backend.rank() == 1);
    layouts[static_cast<std::size_t>(backend.rank())] = reducer.bucket_parameters();
    rank_ordered_step(backend, reducer, tensors_of(params), backend.rank() == 1);  // still in step after rebuild
  });
  EXPECT_EQ(layouts[0], alone[0]);
  EXPECT_EQ(layouts[1], alone[0]);
}

TEST(Reducer, AccumulatedMicroStepsEqualOneLargeStep) {
  // 2 ranks x 3 micro-batches of 4 == 2 ranks x one batch of 12 == one process over all 24 samples.
  std::vector<std::vector<at::Tensor>> accumulated(2), whole(2);
  ThreadBackend::run(2, [&](ThreadBackend& backend) {
    TinyNet a, b;
    Reducer ra(a.named(), backend), rb(b.named(), backend);
    accumulated[static_cast<std::size_t>(backend.rank())] = ddp_gradients(backend, a, ra, 12, 3);
    whole[static_cast<std::size_t>(backend.rank())] = ddp_gradients(backend, b, rb, 12, 1);
  });
  TinyNet reference;
  reference.loss(inputs(0, 24), targets(0, 24)).backward();
  for (int r = 0; r < 2; ++r) {
    expect_close(accumulated[r], reference.grads(), 1e-5);
    expect_close(whole[r], reference.grads(), 1e-5);
  }
}

TEST(Reducer, UnusedParameterIsAnErrorNamingItOnEveryRank) {
  std::mutex mutex;
  std::vector<std::string> messages;
  ThreadBackend::run(
      2,
      [&](ThreadBackend& backend) {
        TinyNet net;
        Reducer reducer(net.named(), backend);
        reducer.zero_grad();
        reducer.prepare_for_backward({5, 0.5});
        net.loss(inputs(0, 4), targets(0, 4), /*use_head=*/backend.rank() == 0).backward();
        try {
          reducer.finish();
        } catch (const Error& e) {
          std::lock_guard<std::mutex> lock(mutex);
          messages.push_back(e.message());
        }
      },
      /*timeout_s=*/20);
  ASSERT_EQ(messages.size(), 2u) << "every rank must take the same decision";
  for (const auto& m : messages) {
    EXPECT_NE(m.find("'head.scale' (on 1 of 2 ranks)"), std::string::npos) << m;
    EXPECT_NE(m.find("step 5"), std::string::npos) << m;
    EXPECT_NE(m.find("ddp.find_unused_parameters"), std::string::npos) << m;
  }
}

TEST(Reducer, UnusedParameterCountsAsZeroWhenAllowed) {
  std::vector<at::Tensor> head_grads(2);
  ThreadBackend::run(2, [&](ThreadBackend& backend) {
    TinyNet net;
    ReducerOptions options;
    options.find_unused_parameters = true;
    Reducer reducer(net.named(), backend, options);
    for (int step = 0; step < 2; ++step) {  // the second step runs on the rebuilt buckets
      reducer.zero_grad();
      reducer.prepare_for_backward({step, 0.5});
      net.loss(inputs(4 * backend.rank(), 4), targets(4 * backend.rank(), 4), backend.rank() == 0).backward();
      reducer.finish();
    }
    head_grads[static_cast<std::size_t>(backend.rank())] = net.head.grad().clone();
  });
  TinyNet reference;
  (reference.loss(inputs(0, 4), targets(0, 4)) * 0.5).backward();  // rank 0's half; rank 1 adds zeros
  EXPECT_TRUE(at::allclose(head_grads[0], reference.head.grad(), 1e-5, 1e-7));
  EXPECT_TRUE(at::equal(head_grads[0], head_grads[1]));
}

// Gradients of three ranks all-reduced as 16-bit values. Stated tolerance (relative L2 error against float32):
// bfloat16 (8 significant bits) below 2^-7, float16 (11 bits) below 2^-10: each value is rounded once when
// sent and once per reduction step, about 2^-9 (bf16) or 2^-12 (fp16) relative each.
void expect_compression_within(Compression compression, double tolerance) {
  std::vector<at::Tensor> exact(3), compressed(3);
  ThreadBackend::run(3, [&](ThreadBackend& backend) {
    for (Compression c : {Compression::None, compression}) {
      at::Tensor w = at::zeros({4096}).requires_grad_(true);
      ReducerOptions options;
      options.compression = c;
      Reducer reducer({{"w", w}}, backend, options);
      reducer.zero_grad();
      reducer.prepare_for_backward({0, 1.0 / 3});
      (w * fill({4096}, backend.rank()) * 100.0).sum().backward();
      reducer.finish();
      (c == Compression::None ? exact : compressed)[static_cast<std::size_t>(backend.rank())] = w.grad().clone();
    }
  });
  const double error = (compressed[0] - exact[0]).norm().item<double>() / exact[0].norm().item<double>();
  EXPECT_LT(error, tolerance);
  EXPECT_GT(error, 0.0) << "the gradients did not travel in 16 bits";
  EXPECT_TRUE(at::equal(compressed[0], compressed[1]) && at::equal(compressed[0], compressed[2]));
}

TEST(Reducer, Bf16CompressionStaysWithinTolerance) { expect_compression_within(Compression::BFloat16, 1.0 / 128); }
TEST(Reducer, Fp16CompressionStaysWithinTolerance) { expect_compression_within(Compression::Float16, 1.0 / 1024); }

TEST(ThreadBackend, ReduceScatterAndAllGatherShardTheSum) {
  ThreadBackend::run(3, [](ThreadBackend& backend) {
    at::Tensor t = at::arange(6, at::kFloat) + static_cast<float>(backend.rank());
    const at::Tensor sum = at::arange(6, at::kFloat) * 3 + 3;
    backend.reduce_scatter(t, ReduceOp::Sum)->wait();
    EXPECT_TRUE(at::equal(t.narrow(0, 2 * backend.rank(), 2), sum.narrow(0, 2 * backend.rank(), 2)));
    backend.all_gather(t)->wait();
    EXPECT_TRUE(at::equal(t, sum));
    at::Tensor uneven = at::zeros({4});
    EXPECT_THROW(backend.reduce_scatter(uneven, ReduceOp::Sum), Error);
  });
}

// ddp.zero = 1 over 3 ranks, with one bucket (56 elements, padded to 57) and with a bucket per parameter: the ranks'
// pieces cover every parameter element once; each piece's gradient is the all-reduced one; the shards' sums of
// squares add up to the whole gradient's; parameters stepped by their owners reach every rank; gather_shards
// assembles whole per-parameter tensors from the pieces.
void expect_zero_shards(double bucket_mb) {
  std::vector<std::vector<at::Tensor>> replicated(3);
  std::vector<std::vector<std::tuple<std::size_t, std::int64_t, std::int64_t>>> covered(3);
  ThreadBackend::run(3, [&](ThreadBackend& backend) {
    const auto rank = static_cast<std::size_t>(backend.rank());
    ReducerOptions options;
    options.first_bucket_mb = options.bucket_cap_mb = bucket_mb;
    TinyNet plain;
    Reducer plain_reducer(plain.named(), backend, options);
    replicated[rank] = ddp_gradients(backend, plain, plain_reducer, 4, 1);
    options.zero = true;
    TinyNet net;
    Reducer reducer(net.named(), backend, options);
    ddp_gradients(backend, net, reducer, 4, 1);
    const std::vector<at::Tensor> params = {net.w1, net.b1, net.w2, net.b2, net.head};
    double shard_squares = 0;
    for (const at::Tensor& g : reducer.gradient_shards()) shard_squares += g.pow(2).sum().item<double>();
    at::Tensor squares = at::full({1}, shard_squares, at::kDouble);
    backend.allreduce(squares, ReduceOp::Sum)->wait();
    double whole_squares = 0;
    for (const at::Tensor& g : replicated[rank]) whole_squares += g.pow(2).sum().item<double>();
    EXPECT_NEAR(squares.item<double>(), whole_squares, 1e-6 * whole_squares);  // float32 sums
    std::vector<at::Tensor> positions;
    for (const auto& piece : reducer.shard_pieces()) {
      const std::int64_t n = piece.tensor.numel();
      covered[rank].emplace_back(piece.parameter, piece.offset, n);
      EXPECT_TRUE(at::allclose(piece.tensor.grad(), replicated[rank][piece.parameter].reshape({-1}).narrow(0, piece.offset, n)));
      // Each owner writes its elements' positions; everything else on this rank becomes -1.
      positions.push_back(at::arange(piece.offset, piece.offset + n, at::kFloat));
    }
    {
      at::NoGradGuard no_grad;
      for (const at::Tensor& p : params) p.fill_(-1);
      for (std::size_t k = 0; k < positions.size(); ++k) reducer.shard_pieces()[k].tensor.copy_(positions[k]);
    }
    reducer.gather_parameters();
    const std::vector<at::Tensor> whole = reducer.gather_shards(positions);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const at::Tensor expected = at::arange(params[i].numel(), at::kFloat).view(params[i].sizes());
      EXPECT_TRUE(at::equal(params[i], expected)) << "parameter " << i << " on rank " << rank;
      EXPECT_TRUE(at::equal(whole[i], expected)) << "gathered tensor " << i << " on rank " << rank;
    }
  });
  const std::vector<std::int64_t> sizes = {30, 5, 15, 3, 3};
  std::vector<std::int64_t> seen(sizes.size(), 0);
  for (const auto& pieces : covered) {
    for (const auto& [parameter, offset, n] : pieces) seen[parameter] += n;
  }
  EXPECT_EQ(seen, sizes);
}

TEST(Reducer, ZeroShardsOneBucketOverTheRanks) { expect_zero_shards(25.0); }
TEST(Reducer, ZeroShardsEveryBucketOverTheRanks) { expect_zero_shards(1e-6); }

TEST(Reducer, TimeoutNamesStepBucketAndBackend) {
  std::string message;
  ThreadBackend::run(
      2,
      [&](ThreadBackend& backend) {
        if (backend.rank() == 1) return;  // never joins
        TinyNet net;
        Reducer reducer(net.named(), backend);
        reducer.zero_grad();
        reducer.prepare_for_backward({7, 0.5});
        net.loss(inputs(0, 4), targets(0, 4)).backward();
        try {
          reducer.finish();
        } catch (const Error& e) {
          message = e.message();
        }
      },
      /*timeout_s=*/0.5);
  EXPECT_NE(message.find("step 7"), std::string::npos) << message;
  EXPECT_NE(message.find("gradient bucket 1 of 1"), std::string::npos) << message;
  EXPECT_NE(message.find("backend thread"), std::string::npos) << message;
  EXPECT_NE(message.find("rank(s) 1 never joined"), std::string::npos) << message;
}

}  // namespace
}  // namespace dpt::distributed
