// ThreadBackend: in-memory collectives between rank threads; the last rank to join a collective computes it.
#include "distributed/thread_backend.h"

#include <chrono>
#include <exception>
#include <thread>

#include "core/check.h"

namespace dpt::distributed {

struct ThreadWorld::Collective {
  std::string what;  // as issued by the first rank to join; every other rank must issue the same
  std::vector<std::vector<at::Tensor>> tensors;
  std::vector<bool> joined;
  int arrived = 0;
  std::string mismatch;
};

class ThreadWork final : public Work {
 public:
  ThreadWork(std::shared_ptr<ThreadWorld> world, std::uint64_t sequence, std::string what)
      : world_(std::move(world)), sequence_(sequence), what_(std::move(what)) {}

  void wait() override { world_->wait(sequence_, what_); }

  bool is_done() override {
    std::lock_guard<std::mutex> lock(world_->mutex_);
    return world_->open_.count(sequence_) == 0;
  }

 private:
  std::shared_ptr<ThreadWorld> world_;
  std::uint64_t sequence_;
  std::string what_;
};

namespace {

// The op's result over the ranks' `part` of their first tensor, in rank order; 16-bit inputs are summed in float32
// (the result is rounded once, when the caller copies it back).
at::Tensor reduce_in_rank_order(std::vector<std::vector<at::Tensor>>& all, ReduceOp op,
                                const std::function<at::Tensor(const at::Tensor&)>& part) {
  const at::ScalarType type = all[0][0].scalar_type();
  const bool narrow = type == at::kBFloat16 || type == at::kHalf;
  at::Tensor sum = narrow ? part(all[0][0]).to(at::kFloat) : part(all[0][0]).clone();
  for (std::size_t r = 1; r < all.size(); ++r) sum.add_(part(all[r][0]));
  if (op == ReduceOp::Avg) sum.div_(static_cast<double>(all.size()));
  return sum;
}

std::string describe_tensor(const char* op, const at::Tensor& tensor) {
  return std::string(op) + " of " + std::to_string(tensor.numel()) + " " +
         std::string(c10::toString(tensor.scalar_type()));
}

}  // namespace

ThreadWorld::ThreadWorld(int world_size, double timeout_s) : world_size_(world_size), timeout_s_(timeout_s) {
  DPT_CHECK(world_size >= 1, "a thread world needs at least one rank, got ", world_size);
}

void ThreadWorld::join(int rank, std::uint64_t sequence, const std::string& what, std::vector<at::Tensor> tensors,
                       std::function<void(std::vector<std::vector<at::Tensor>>&)> compute) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& slot = open_[sequence];
    if (!slot) {
      slot = std::make_shared<Collective>();
      slot->what = what;
      slot->tensors.resize(static_cast<std::size_t>(world_size_));
      slot->joined.assign(static_cast<std::size_t>(world_size_), false);
    }
    Collective& c = *slot;
    if (what != c.what && c.mismatch.empty()) {
      c.mismatch = "rank " + std::to_string(rank) + " issued " + what + " while another rank issued " + c.what +
                   ": ranks must issue the same collectives in the same order";
    }
    c.tensors[static_cast<std::size_t>(rank)] = std::move(tensors);
    c.joined[static_cast<std::size_t>(rank)] = true;
    if (++c.arrived < world_size_) return;
    std::string error = c.mismatch;
    if (error.empty()) {
      try {
        compute(c.tensors);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    if (!error.empty()) failed_[sequence] = error;
    open_.erase(sequence);
  }
  done_.notify_all();
}

void ThreadWorld::wait(std::uint64_t sequence, const std::string& what) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  if (!done_.wait_until(lock, deadline, [&] { return open_.count(sequence) == 0; })) {
    std::string missing;
    const Collective& c = *open_.at(sequence);
    for (int r = 0; r < world_size_; ++r) {
      if (!c.joined[static_cast<std::size_t>(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
    DPT_THROW("thread backend: ", what, " did not complete within ", timeout_s_, " s; rank(s) ", missing,
              " never joined it (died, hang, or issued fewer collectives)");
  }
  auto failed = failed_.find(sequence);
  if (failed != failed_.end()) DPT_THROW("thread backend: ", what, " failed: ", failed->second);
}

ThreadBackend::ThreadBackend(std::shared_ptr<ThreadWorld> world, int rank) : world_(std::move(world)), rank_(rank) {
  DPT_CHECK(rank >= 0 && rank < world_->world_size(), "rank ", rank, " is outside a thread world of ",
            world_->world_size());
}

std::shared_ptr<Work> ThreadBackend::submit(std::string what, std::vector<at::Tensor> tensors,
                                            std::function<void(std::vector<std::vector<at::Tensor>>&)> compute) {
  const std::uint64_t sequence = submitted_++;
  what += " (collective #" + std::to_string(sequence + 1) + ")";
  world_->join(rank_, sequence, what, std::move(tensors), std::move(compute));
  return std::make_shared<ThreadWork>(world_, sequence, what);
}

std::shared_ptr<Work> ThreadBackend::allreduce(at::Tensor& tensor, ReduceOp op) {
  DPT_CHECK(tensor.is_contiguous(), "the thread backend needs a contiguous tensor for allreduce");
  return submit(describe_tensor("allreduce", tensor), {tensor}, [op](std::vector<std::vector<at::Tensor>>& all) {
    const at::Tensor sum = reduce_in_rank_order(all, op, [](const at::Tensor& t) { return t; });
    for (auto& rank_tensors : all) rank_tensors[0].copy_(sum);
  });
}

std::shared_ptr<Work> ThreadBackend::reduce_scatter(at::Tensor& flat, ReduceOp op) {
  const std::int64_t shard = shard_numel(flat, world_size(), "reduce_scatter");
  return submit(describe_tensor("reduce-scatter", flat), {flat},
                [op, shard](std::vector<std::vector<at::Tensor>>& all) {
                  for (std::size_t r = 0; r < all.size(); ++r) {
                    const auto offset = static_cast<std::int64_t>(r) * shard;
                    all[r][0].narrow(0, offset, shard).copy_(reduce_in_rank_order(
                        all, op, [&](const at::Tensor& t) { return t.narrow(0, offset, shard); }));
                  }
                });
}

std::shared_ptr<Work> ThreadBackend::all_gather(at::Tensor& flat) {
  const std::int64_t shard = shard_numel(flat, world_size(), "all_gather");
  return submit(describe_tensor("all-gather", flat), {flat}, [shard](std::vector<std::vector<at::Tensor>>& all) {
    for (std::size_t r = 0; r < all.size(); ++r) {
      for (std::size_t k = 0; k < all.size(); ++k) {
        const auto offset = static_cast<std::int64_t>(k) * shard;
        if (k != r) all[r][0].narrow(0, offset, shard).copy_(all[k][0].narrow(0, offset, shard));
      }
    }
  });
}

std::shared_ptr<Work> ThreadBackend::broadcast(at::Tensor& tensor, int root) {
  DPT_CHECK(root >= 0 && root < world_size(), "broadcast root ", root, " is not a rank of this world of ",
            world_size());
  return submit("broadcast of " + std::to_string(tensor.nbytes()) + " bytes from rank " + std::to_string(root),
                {tensor}, [root](std::vector<std::vector<at::Tensor>>& all) {
                  for (auto& rank_tensors : all) {
                    if (!rank_tensors[0].is_same(all[root][0])) rank_tensors[0].copy_(all[root][0]);
                  }
                });
}

std::shared_ptr<Work> ThreadBackend::allgather(const at::Tensor& input, at::Tensor& output) {
  DPT_CHECK(output.numel() == input.numel() * world_size() && output.scalar_type() == input.scalar_type(),
            "allgather output must hold ", world_size(), " x ", input.numel(), " elements of ", input.toString());
  return submit("allgather of " + std::to_string(input.nbytes()) + " bytes per rank", {input, output},
                [](std::vector<std::vector<at::Tensor>>& all) {
                  for (auto& rank_tensors : all) {
                    at::Tensor out = rank_tensors[1].view({static_cast<std::int64_t>(all.size()), -1});
                    for (std::size_t r = 0; r < all.size(); ++r)
                      out[static_cast<std::int64_t>(r)].copy_(all[r][0].reshape({-1}));
                  }
                });
}

std::shared_ptr<Work> ThreadBackend::barrier() {
  return submit("barrier", {}, [](std::vector<std::vector<at::Tensor>>&) {});
}

void ThreadBackend::run(int world_size, const std::function<void(ThreadBackend&)>& body, double timeout_s) {
  auto world = std::make_shared<ThreadWorld>(world_size, timeout_s);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      try {
        ThreadBackend backend(world, r);
        body(backend);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace dpt::distributed
