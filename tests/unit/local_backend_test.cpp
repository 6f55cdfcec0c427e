// LocalBackend: a world of one keeps tensors unchanged and completes at once.
#include <gtest/gtest.h>

#include "core/check.h"
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

}  // namespace
}  // namespace dpt::distributed
