// ThreadBackend: ranks as threads of one process exchanging tensors in memory, so multi-rank logic (the Reducer)
// is unit-tested without mpirun.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/backend.h"

namespace dpt::distributed {

// The shared exchange of one world. A collective is the n-th call of every rank's backend; the last rank to
// arrive computes it for all (sums in rank order, so every rank gets bit-identical results).
class ThreadWorld {
 public:
  // A wait() longer than timeout_s throws, naming the ranks that never joined the collective.
  ThreadWorld(int world_size, double timeout_s);
  int world_size() const { return world_size_; }

 private:
  friend class ThreadBackend;
  friend class ThreadWork;
  struct Collective;

  // Registers rank's part of its `sequence`-th collective; returns when registered (never blocks on others).
  void join(int rank, std::uint64_t sequence, const std::string& what, std::vector<at::Tensor> tensors,
            std::function<void(std::vector<std::vector<at::Tensor>>&)> compute);
  void wait(std::uint64_t sequence, const std::string& what);

  int world_size_;
  double timeout_s_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::map<std::uint64_t, std::shared_ptr<Collective>> open_;
  std::map<std::uint64_t, std::string> failed_;  // collectives that completed with an error
};

class ThreadBackend final : public Backend {
 public:
  ThreadBackend(std::shared_ptr<ThreadWorld> world, int rank);

  std::string name() const override { return "thread"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_->world_size(); }
  // Sum/Avg of float32/float64/int32/int64, and of bfloat16/float16 accumulated in float32 then rounded once.
  std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) override;
  std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) override;
  std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) override;
  std::shared_ptr<Work> barrier() override;
  std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op) override;
  std::shared_ptr<Work> all_gather(at::Tensor& flat) override;

  // Runs body(backend) on world_size threads, one per rank, and rethrows the first rank's exception (lowest
  // rank first) once all threads have ended.
  static void run(int world_size, const std::function<void(ThreadBackend&)>& body, double timeout_s = 60.0);

 private:
  std::shared_ptr<Work> submit(std::string what, std::vector<at::Tensor> tensors,
                               std::function<void(std::vector<std::vector<at::Tensor>>&)> compute);

  std::shared_ptr<ThreadWorld> world_;
  int rank_;
  std::uint64_t submitted_ = 0;
};

}  // namespace dpt::distributed
