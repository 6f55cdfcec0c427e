// MpiBackend: collectives over MPI on host tensors, issued in submission order by one communication thread;
// all-reduces through shared memory when every rank runs on one node, hierarchically across nodes (shared memory
// within each node, MPI between one leader per node).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <mpi.h>

#include "distributed/backend.h"

namespace dpt::distributed {

// How the MPI backend all-reduces: Auto picks Shm when every rank runs on one node, Hierarchical when the ranks
// span nodes and some node has several, else Mpi (one flat MPI_Allreduce).
enum class AllreducePath { Auto, Mpi, Shm, Hierarchical };

// "auto", "mpi", "shm", "hierarchical" (ddp.allreduce).
const std::vector<std::string>& allreduce_path_names();
AllreducePath allreduce_path_from_name(const std::string& name);
std::string name_of(AllreducePath path);

class MpiBackend final : public Backend {
 public:
  // Duplicates `comm` (collective over it). A wait() longer than timeout_s throws a dpt::Error naming the
  // collective and what the other ranks are doing: those of this node from the progress board, those on other
  // nodes by asking them over TCP (PeerProbe), so that a cut link or a dead host is named. Shared-memory
  // all-reduces use 2 x shared_memory_bytes per rank (ShmAllreduce; 0: none, MPI_Allreduce). `node` holds the
  // ranks of `comm` that share this rank's node; MPI_COMM_NULL: as the launcher placed them
  // (MPI_COMM_TYPE_SHARED). A forced path that cannot work here (Shm across nodes) is an error.
  explicit MpiBackend(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = 300.0,
                      std::size_t shared_memory_bytes = kDefaultSharedMemoryBytes,
                      AllreducePath path = AllreducePath::Auto, MPI_Comm node = MPI_COMM_NULL);
  ~MpiBackend() override;

  static constexpr std::size_t kDefaultSharedMemoryBytes = std::size_t{16} << 20;

  std::string name() const override { return "mpi"; }
  // "mpi (hierarchical all-reduce; 4 ranks on 2 nodes (node0: ranks 0-1; node1: ranks 2-3))".
  std::string describe() const override;
  // Whether all-reduces go through shared memory; when they were asked to and cannot, why not.
  bool uses_shared_memory() const;
  const std::string& shared_memory_unavailable() const { return shared_memory_unavailable_; }
  // The path all-reduces take (never Auto), and the ranks' placement, e.g. "4 ranks on 2 nodes (node0: ranks
  // 0-1; node1: ranks 2-3)".
  AllreducePath allreduce_path() const;
  int nodes() const;
  std::string placement() const;
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  // Meets the other ranks in an MPI_Ibarrier polled at intervals before the all-reduce (see Shared).
  std::shared_ptr<Work> allreduce_overlapped(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;
  // Through shared memory when all-reduces are (the Shm path), else MPI_Reduce_scatter_block / MPI_Allgather.
  std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op) override;
  // Meets the other ranks first, as allreduce_overlapped does.
  std::shared_ptr<Work> reduce_scatter_overlapped(at::Tensor& flat, ReduceOp op) override;
  std::shared_ptr<Work> all_gather(at::Tensor& flat) override;

 private:
  class MpiWork;
  struct Shared;
  std::shared_ptr<Work> submit(std::string what, std::function<void(Shared&)> op);
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op, bool rendezvous);
  std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op, bool rendezvous);

  int rank_ = 0;
  int world_size_ = 1;
  double timeout_s_;
  std::string shared_memory_unavailable_;
  std::uint64_t submitted_ = 0;
  // Everything the communication thread touches, owned jointly with it: a backend destroyed while its thread
  // is stuck in a collective (a rank hangs, and the job is ending) leaves the thread behind instead of waiting.
  std::shared_ptr<Shared> shared_;
  std::thread comm_thread_;
};

}  // namespace dpt::distributed
