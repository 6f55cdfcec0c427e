// distributed::Backend: the collectives dptrain needs (all-reduce, reduce-scatter, broadcast, all-gather, barrier),
// each returning a Work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "core/check.h"

namespace dpt::distributed {

enum class ReduceOp { Sum, Avg };

// A collective in flight. wait() returns once the result is in the tensor, or throws dpt::Error.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool is_done() = 0;
};

// A Work that completed when it was created (world size 1, or a synchronous backend).
class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool is_done() override { return true; }
};

// The shard size of a sharded collective's flat tensor (see Backend::reduce_scatter), after checking that it has
// one: contiguous, and a length that divides by the world size.
inline std::int64_t shard_numel(const at::Tensor& flat, int world_size, const char* op) {
  DPT_CHECK(flat.is_contiguous() && flat.numel() % world_size == 0, op, " needs a contiguous tensor of a multiple of ",
            world_size, " elements (one equal shard per rank; pad it), got ", flat.numel());
  return flat.numel() / world_size;
}

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // The name and how it reaches the ranks, for the run's banner (e.g. the MPI backend's all-reduce path and the
  // ranks' nodes).
  virtual std::string describe() const { return name(); }
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In place over a contiguous tensor; every rank must issue collectives in the same order.
  virtual std::shared_ptr<Work> allreduce(at::Tensor& tensor, ReduceOp op) = 0;
  // The same all-reduce, for a caller that goes on computing before it waits (gradient buckets during backward).
  // Every rank must choose the same variant. A backend may issue it so that waiting for slower ranks costs no CPU.
  virtual std::shared_ptr<Work> allreduce_overlapped(at::Tensor& tensor, ReduceOp op) { return allreduce(tensor, op); }
  virtual std::shared_ptr<Work> broadcast(at::Tensor& tensor, int root) = 0;
  // `output` holds world_size() copies of `input`'s shape, stacked along a new leading axis, in rank order.
  virtual std::shared_ptr<Work> allgather(const at::Tensor& input, at::Tensor& output) = 0;
  virtual std::shared_ptr<Work> barrier() = 0;

  // Sharded collectives over a flat contiguous tensor of world_size() equal shards (shard r: elements
  // [r n / W, (r + 1) n / W); n must divide by W, callers pad), in place.
  // reduce_scatter: afterwards this rank's shard holds the reduction over the ranks of their values of that shard;
  // the other shards hold unspecified values. 16-bit tensors are summed in float32 and rounded once.
  virtual std::shared_ptr<Work> reduce_scatter(at::Tensor& flat, ReduceOp op) = 0;
  // The same reduce-scatter for a caller that computes before it waits (gradient buckets during backward).
  virtual std::shared_ptr<Work> reduce_scatter_overlapped(at::Tensor& flat, ReduceOp op) {
    return reduce_scatter(flat, op);
  }
  // all_gather: afterwards every shard r holds rank r's values of it, on every rank.
  virtual std::shared_ptr<Work> all_gather(at::Tensor& flat) = 0;
};

}  // namespace dpt::distributed
