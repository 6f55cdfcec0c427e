// LocalBackend: a world of one keeps tensors unchanged and completes at once.
#include <gtest/gtest.h>

#include "core/check.h"
#include "distributed/gradient_reducer.h"
#include "distributed/local_backend.h"

namespace dpt::distributed {
namespace {

TEST(LocalBackend, CollectivesAreIdentity) {
  LocalBackend backend;
  at::Tensor t = at::arange(5, at::kFloat);
  auto work = backend.allreduce(t, ReduceOp::Avg);
  EXPECT_TRUE(work->is_done());
  work->wait();
  EXPECT_TRUE(at::equal(t, at::arange(5, at::kFloat)));
  backend.broadcast(t, 0)->wait();
  at::Tensor gathered = at::empty({1, 5});
  backend.allgather(t, gathered)->wait();
  EXPECT_TRUE(at::equal(gathered[0], t));
  EXPECT_THROW(backend.broadcast(t, 1), Error);
}

TEST(GradientReducer, GradientsAreViewsIntoOneBufferAndSurviveBackward) {
  LocalBackend backend;
  at::Tensor w = at::randn({3, 4}).requires_grad_(true);
  at::Tensor b = at::randn({4}).requires_grad_(true);
  GradientReducer reducer({w, b}, backend);
  EXPECT_EQ(reducer.numel(), 16);
  for (int round = 0; round < 2; ++round) {
    reducer.zero_grad();
    at::Tensor x = at::randn({2, 3});
    (at::matmul(x, w) + b).sum().backward();
    reducer.synchronize(1.0);
    EXPECT_TRUE(at::allclose(b.grad(), at::full({4}, 2.0f)));
    EXPECT_TRUE(at::allclose(w.grad(), x.sum(0).unsqueeze(1).expand({3, 4})));
  }
}

TEST(GradientReducer, ReplacedGradientIsDetected) {
  LocalBackend backend;
  at::Tensor w = at::randn({3}).requires_grad_(true);
  GradientReducer reducer({w}, backend);
  reducer.zero_grad();
  w.mutable_grad() = at::zeros({3});
  EXPECT_THROW(reducer.synchronize(1.0), Error);
}

}  // namespace
}  // namespace dpt::distributed
