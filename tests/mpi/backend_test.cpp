// MpiBackend's all-reduce over real MPI ranks, through shared memory (every rank of these tests runs on one node)
// and through MPI_Allreduce: exact sums for every dtype it reduces, sizes that do not split evenly over the ranks,
// tensors many times larger than the shared buffers, many collectives back to back, and the same result on
// every rank; its reduce-scatter and all-gather (ZeRO-1) through the same paths.
#include "distributed/mpi_backend.h"
#include "distributed/progress_board.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <ctime>
#include <thread>
#include <vector>

#include "core/error.h"
#include "mpi_test_env.h"

namespace dpt {
namespace {

constexpr std::size_t kSmallBuffer = 4096;  // bytes: a 100 000-element tensor takes tens of pieces

// Rank r's contribution: small integers, so that every dtype holds the exact sum.
torch::Tensor contribution(std::int64_t n, int rank, std::int64_t salt, torch::ScalarType dtype) {
  return ((torch::arange(n, torch::kLong) * 7 + rank * 3 + salt) % 11).to(dtype);
}

torch::Tensor expected_sum(std::int64_t n, int world, std::int64_t salt, torch::ScalarType dtype) {
  torch::Tensor sum = torch::zeros({n}, torch::kLong);
  for (int r = 0; r < world; ++r) sum += contribution(n, r, salt, torch::kLong);
  return sum.to(dtype);
}

// Every rank holds the same bytes as rank 0.
void expect_identical_on_every_rank(distributed::Backend& backend, const torch::Tensor& t, const std::string& what) {
  torch::Tensor bytes = t.contiguous().view(torch::kByte).flatten();
  torch::Tensor all = torch::empty({backend.world_size(), bytes.numel()}, torch::kByte);
  backend.allgather(bytes, all)->wait();
  for (int r = 1; r < backend.world_size(); ++r) {
    EXPECT_TRUE(torch::equal(all[r], all[0])) << what << ": rank " << r << " differs from rank 0";
  }
}

class MpiAllreduce : public ::testing::TestWithParam<std::size_t> {};

// Every dtype the backend reduces, at sizes that do not split evenly, each variant: exact, and the same on every rank.
void expect_exact_sums(distributed::MpiBackend& backend) {
  const int world = backend.world_size();
  const std::vector<torch::ScalarType> dtypes = {torch::kFloat,  torch::kDouble, torch::kBFloat16, torch::kHalf,
                                                 torch::kByte,   torch::kChar,   torch::kInt,      torch::kLong};
  const std::vector<std::int64_t> sizes = {1, world - 1, world + 1, 1000, 100003};
  std::int64_t salt = 0;
  for (const auto dtype : dtypes) {
    for (const std::int64_t n : sizes) {
      for (const bool overlapped : {false, true}) {
        const std::string what = std::string(c10::toString(dtype)) + " x " + std::to_string(n) +
                                 (overlapped ? " (overlapped)" : "");
        torch::Tensor t = contribution(n, backend.rank(), ++salt, dtype);
        auto work = overlapped ? backend.allreduce_overlapped(t, distributed::ReduceOp::Sum)
                               : backend.allreduce(t, distributed::ReduceOp::Sum);
        work->wait();
        EXPECT_TRUE(torch::equal(t, expected_sum(n, world, salt, dtype))) << what;
        expect_identical_on_every_rank(backend, t, what);
      }
    }
  }
}

// `count` all-reduces submitted all at once, then waited for: the pieces of consecutive collectives reuse the two
// buffers in turn.
void expect_back_to_back_sums(distributed::MpiBackend& backend, int count, std::int64_t first_size) {
  std::vector<torch::Tensor> tensors;
  std::vector<std::shared_ptr<distributed::Work>> works;
  for (int i = 0; i < count; ++i) {
    tensors.push_back(contribution(first_size + 997 * i, backend.rank(), i, torch::kFloat));
    works.push_back(backend.allreduce_overlapped(tensors.back(), distributed::ReduceOp::Sum));
  }
  for (int i = 0; i < count; ++i) {
    works[i]->wait();
    EXPECT_TRUE(torch::equal(tensors[i], expected_sum(first_size + 997 * i, backend.world_size(), i, torch::kFloat)))
        << "collective " << i;
  }
}

TEST_P(MpiAllreduce, SumsEveryDtypeExactlyAtAnySize) {
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, GetParam());
  EXPECT_EQ(backend.uses_shared_memory(), GetParam() > 0) << backend.shared_memory_unavailable();
  EXPECT_EQ(backend.allreduce_path(), distributed::AllreducePath::Shm);
  expect_exact_sums(backend);
}

// The ranks as if on two nodes (the even ones and the odd ones: nodes of unequal size, ranks not in node order):
// MPI_COMM_SPLIT by rank % 2 stands in for the launcher's placement, the collectives are real.
MPI_Comm even_and_odd_nodes() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &node);
  return node;
}

// Hierarchical: the nodes' sums in shared memory (or MPI within the node without it), the leaders' over MPI, the
// result broadcast in the node: exact for every dtype, identical everywhere, across many back-to-back collectives
// that reuse the buffers in turn; chosen by auto for ranks on several nodes; placement names the nodes.
TEST_P(MpiAllreduce, HierarchicalAcrossNodesSumsExactly) {
  MPI_Comm node = even_and_odd_nodes();
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, GetParam(), distributed::AllreducePath::Auto, node);
  MPI_Comm_free(&node);
  const int world = backend.world_size();
  EXPECT_EQ(backend.nodes(), 2);
  EXPECT_EQ(backend.allreduce_path(),
            world > 2 ? distributed::AllreducePath::Hierarchical : distributed::AllreducePath::Mpi);
  EXPECT_THAT(backend.describe(), ::testing::HasSubstr(std::to_string(world) + " ranks on 2 nodes ("));
  EXPECT_THAT(backend.describe(), ::testing::HasSubstr(world > 2 ? "ranks 0, 2" : "ranks 0"));
  expect_exact_sums(backend);
  expect_back_to_back_sums(backend, 20, 3000);
}

TEST(MpiAllreduceHierarchical, ForcedOnOneNodeEqualsSharedMemoryAndShmAcrossNodesIsRefused) {
  distributed::MpiBackend forced(MPI_COMM_WORLD, 60.0, kSmallBuffer, distributed::AllreducePath::Hierarchical);
  EXPECT_EQ(forced.nodes(), 1);
  expect_exact_sums(forced);
  MPI_Comm node = even_and_odd_nodes();
  std::string message;
  try {
    distributed::MpiBackend shm(MPI_COMM_WORLD, 60.0, kSmallBuffer, distributed::AllreducePath::Shm, node);
  } catch (const Error& e) {
    message = e.message();
  }
  MPI_Comm_free(&node);
  EXPECT_THAT(message, ::testing::HasSubstr("ddp.allreduce = \"shm\" needs every rank on one node, but the"));
}

TEST_P(MpiAllreduce, AveragesAndKeepsOrderAcrossManyCollectives) {
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, GetParam());
  const int world = backend.world_size();
  expect_back_to_back_sums(backend, 40, 1000);
  torch::Tensor avg = contribution(5000, backend.rank(), 1, torch::kDouble);
  backend.allreduce(avg, distributed::ReduceOp::Avg)->wait();
  EXPECT_TRUE(torch::allclose(avg, expected_sum(5000, world, 1, torch::kDouble) / world, 0, 1e-12));
}

// Random floats: shared memory and MPI_Allreduce agree (to rounding: they may add the ranks in another order).
// A rank that reaches a gradient bucket's all-reduce first waits for the others without taking a core from its
// training thread: its process uses a small fraction of the CPU while the other ranks are late. A thread that
// spins through the wait uses all of it; polling with pauses uses some 2 % on a quiet machine and up to 10 % on
// one busy with other tests (each MPI_Test takes longer there), so the bound is a quarter.
TEST_P(MpiAllreduce, WaitingForALateRankCostsNoCpu) {
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, GetParam());
  const auto cpu_seconds = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
  };
  constexpr auto kLate = std::chrono::milliseconds(400);
  torch::Tensor t = contribution(1 << 18, backend.rank(), 5, torch::kFloat);
  std::shared_ptr<distributed::Work> work;
  double used = 0.0;
  // The others arrive well after rank 0's measured wait has ended, so the sum itself is never inside it.
  MPI_Barrier(MPI_COMM_WORLD);
  if (backend.rank() == 0) {
    const double start = cpu_seconds();
    work = backend.allreduce_overlapped(t, distributed::ReduceOp::Sum);
    std::this_thread::sleep_for(kLate);  // the training thread would compute here
    used = cpu_seconds() - start;
  } else {
    std::this_thread::sleep_for(kLate + std::chrono::milliseconds(300));
    work = backend.allreduce_overlapped(t, distributed::ReduceOp::Sum);
  }
  work->wait();
  EXPECT_TRUE(torch::equal(t, expected_sum(1 << 18, backend.world_size(), 5, torch::kFloat)));
  EXPECT_LT(used, 0.25 * std::chrono::duration<double>(kLate).count()) << "CPU seconds used while waiting";
}

// A collective that times out names the ranks that have not reached it and the last collective each of them ran
// (the ranks post their progress in shared memory); when the others join later, the collective still completes.
// Rank 0 all-reduces a second time while the other ranks hold back until its wait has timed out; `check` gets the
// error's message and how long the wait took. Then the others join, and the collective completes on every rank.
void time_out_on_rank_0(distributed::MpiBackend& backend,
                        const std::function<void(const std::string&, std::chrono::steady_clock::duration)>& check) {
  torch::Tensor first = torch::ones({1000});
  backend.allreduce(first, distributed::ReduceOp::Sum)->wait();
  torch::Tensor late = torch::ones({10});
  if (backend.rank() == 0) {
    auto work = backend.allreduce_overlapped(late, distributed::ReduceOp::Sum);
    std::string message;
    const auto start = std::chrono::steady_clock::now();
    try {
      work->wait();
    } catch (const Error& e) {
      message = e.message();
    }
    check(message, std::chrono::steady_clock::now() - start);
    MPI_Barrier(MPI_COMM_WORLD);  // tells the other ranks that the timeout has been seen
    work->wait();
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
    backend.allreduce_overlapped(late, distributed::ReduceOp::Sum)->wait();
  }
  EXPECT_TRUE(torch::equal(late, torch::full({10}, static_cast<float>(backend.world_size()))));
}

TEST_P(MpiAllreduce, ATimeoutNamesTheRanksThatHaveNotReachedIt) {
  int thread_level = 0;
  MPI_Query_thread(&thread_level);
  ASSERT_EQ(thread_level, MPI_THREAD_MULTIPLE) << "the test meets on MPI_COMM_WORLD beside the backend's thread";
  distributed::MpiBackend backend(MPI_COMM_WORLD, 1.0, GetParam());
  time_out_on_rank_0(backend, [&](const std::string& message, std::chrono::steady_clock::duration took) {
    EXPECT_LT(took, std::chrono::seconds(5));
    EXPECT_THAT(message, ::testing::HasSubstr("MPI allreduce of 40 bytes (collective #2) did not complete within 1 s"));
    for (int r = 1; r < backend.world_size(); ++r) {
      EXPECT_THAT(message, ::testing::HasSubstr("rank " + std::to_string(r) +
                                                " has not reached it (its last: #1, allreduce of 4000 bytes, finished)"));
    }
  });
}

// Across nodes, the rank that times out asks the ranks of the other node where they are (over TCP; here on the
// loopback, as every rank shares this machine): they are named with their host and what they last ran.
TEST(MpiAllreduceHierarchical, ATimeoutNamesTheRanksOnOtherNodes) {
  MPI_Comm node = even_and_odd_nodes();
  distributed::MpiBackend backend(MPI_COMM_WORLD, 1.0, kSmallBuffer, distributed::AllreducePath::Auto, node);
  MPI_Comm_free(&node);
  time_out_on_rank_0(backend, [&](const std::string& message, std::chrono::steady_clock::duration took) {
    EXPECT_LT(took, std::chrono::seconds(5)) << "the probe of the other node is bounded";
    EXPECT_THAT(message, ::testing::HasSubstr("did not complete within 1 s"));
    EXPECT_THAT(message, ::testing::HasSubstr("rank 1 on " + error_host() +
                                              " has not reached it (its last: #1, allreduce of 4000 bytes, finished)"));
    EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr("cannot be seen")));
  });
}

// The board's account of every other rank, from the progress each rank posts: not started, not reached, in it
// too, a different collective under the same number, past it, and this rank's own thread held up earlier.
TEST(ProgressBoard, SaysWhatEveryOtherRankIsDoing) {
  auto board = distributed::ProgressBoard::create(MPI_COMM_WORLD, MPI_COMM_WORLD);
  ASSERT_NE(board, nullptr);
  int rank = 0;
  int world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const auto at_rank_0 = [&](std::uint64_t number, const std::string& what, const std::string& expected) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      EXPECT_THAT(board->whereabouts(number, what), ::testing::HasSubstr(expected));
    }
    MPI_Barrier(MPI_COMM_WORLD);
  };
  at_rank_0(1, "barrier", "rank 1 has not started any collective");
  board->started(1, "allreduce of 8 bytes");
  board->finished(1);
  if (rank == 1) board->started(2, "broadcast of 4 bytes from rank 0");
  if (rank != 1) board->started(2, "allreduce of 40 bytes");
  at_rank_0(2, "allreduce of 40 bytes",
            "rank 1's collective #2 is broadcast of 4 bytes from rank 0: the ranks issued different collectives");
  if (world > 2) at_rank_0(2, "allreduce of 40 bytes", "rank 2 is in it too");
  at_rank_0(4, "barrier", "this rank's communication thread is still in collective #2, allreduce of 40 bytes; "
                          "rank 1's collective #2 is broadcast");
  if (rank == 0) board->finished(2);
  at_rank_0(3, "barrier", "rank 1 has not reached it (its last: #2, broadcast of 4 bytes from rank 0, still running)");
  if (rank == 1) {
    board->finished(2);
    board->started(3, "allgather of 16 bytes per rank");
  }
  at_rank_0(2, "allreduce of 40 bytes", "rank 1 is past it, in #3, allgather of 16 bytes per rank");
  if (rank == 1) board->finished(3);
  at_rank_0(3, "allgather of 16 bytes per rank", "rank 1 has finished it");
}

// Ranks on two nodes (here: the even and the odd ranks, as if they were): a board shows the ranks of its own
// node by their rank in the whole communicator, and counts the others as unseen.
TEST(ProgressBoard, ShowsTheRanksOfItsNodeAndCountsTheOthers) {
  int rank = 0;
  int world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &node);
  auto board = distributed::ProgressBoard::create(MPI_COMM_WORLD, node);
  MPI_Comm_free(&node);
  ASSERT_NE(board, nullptr);
  if (rank != 2) board->started(1, "barrier");
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const std::string text = board->whereabouts(1, "barrier");
    const int odd = world / 2;
    EXPECT_THAT(text, ::testing::HasSubstr(std::to_string(odd) + " rank(s) on other nodes cannot be seen"));
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("rank 1 ")));
    if (world > 2) {
      EXPECT_THAT(text, ::testing::HasSubstr("rank 2 has not started any collective"));
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// A reduce-scatter leaves each rank the sum of its shard; the all-gather that follows gives every rank every
// shard: together an exact all-reduce, for the dtypes gradients and parameters travel in, overlapped or not, at sizes
// of one element per rank up to many shared buffers, and averaged.
void expect_exact_sharded_sums(distributed::MpiBackend& backend) {
  const int world = backend.world_size();
  std::int64_t salt = 0;
  for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kHalf, torch::kInt}) {
    for (const std::int64_t shard : {std::int64_t{1}, std::int64_t{333}, std::int64_t{40001}}) {
      for (const bool overlapped : {false, true}) {
        const std::int64_t n = shard * world;
        const std::string what = std::string(c10::toString(dtype)) + " x " + std::to_string(n) +
                                 (overlapped ? " (overlapped)" : "");
        torch::Tensor t = contribution(n, backend.rank(), ++salt, dtype);
        const torch::Tensor sum = expected_sum(n, world, salt, dtype);
        (overlapped ? backend.reduce_scatter_overlapped(t, distributed::ReduceOp::Sum)
                    : backend.reduce_scatter(t, distributed::ReduceOp::Sum))
            ->wait();
        EXPECT_TRUE(torch::equal(t.narrow(0, backend.rank() * shard, shard), sum.narrow(0, backend.rank() * shard, shard)))
            << what << ": this rank's shard";
        backend.all_gather(t)->wait();
        EXPECT_TRUE(torch::equal(t, sum)) << what << ": all-gathered";
      }
    }
  }
  torch::Tensor t = torch::full({3 * world}, static_cast<float>(backend.rank() + 1));
  backend.reduce_scatter(t, distributed::ReduceOp::Avg)->wait();
  EXPECT_FLOAT_EQ(t[backend.rank() * 3].item<float>(), (world + 1) / 2.0F) << "averaged";
  torch::Tensor uneven = torch::zeros({world + 1});
  EXPECT_THROW(backend.reduce_scatter(uneven, distributed::ReduceOp::Sum), Error);
}

TEST_P(MpiAllreduce, ReduceScatterAndAllGatherAreExactShardsOfTheSum) {
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, GetParam());
  expect_exact_sharded_sums(backend);
}

TEST(MpiAllreduceHierarchical, ReduceScatterAndAllGatherAcrossNodesAreExact) {
  MPI_Comm node = even_and_odd_nodes();
  distributed::MpiBackend backend(MPI_COMM_WORLD, 60.0, kSmallBuffer, distributed::AllreducePath::Auto, node);
  MPI_Comm_free(&node);
  expect_exact_sharded_sums(backend);
}

TEST(MpiAllreduceSharedMemory, AgreesWithMpiAllreduceOnRandomValues) {
  distributed::MpiBackend shm(MPI_COMM_WORLD, 60.0, kSmallBuffer);
  distributed::MpiBackend mpi(MPI_COMM_WORLD, 60.0, 0);
  ASSERT_TRUE(shm.uses_shared_memory()) << shm.shared_memory_unavailable();
  torch::manual_seed(shm.rank() + 1);
  torch::Tensor a = torch::randn({300001});
  torch::Tensor b = a.clone();
  shm.allreduce(a, distributed::ReduceOp::Sum)->wait();
  mpi.allreduce(b, distributed::ReduceOp::Sum)->wait();
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-6));
  expect_identical_on_every_rank(shm, a, "random floats");
}

INSTANTIATE_TEST_SUITE_P(Transports, MpiAllreduce,
                         ::testing::Values(std::size_t{0}, kSmallBuffer,
                                           distributed::MpiBackend::kDefaultSharedMemoryBytes),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return info.param == 0 ? std::string("MpiAllreduce")
                                                  : "SharedMemory" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace dpt
