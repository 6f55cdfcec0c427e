// MetricHub: a bounded queue filled by the training loop and drained to the sinks by one background thread.
#include "tracking/metric_hub.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <utility>

namespace dpt::tracking {
namespace {

struct SinkSlot {
  std::unique_ptr<Sink> sink;
  bool disabled = false;
};

// What the queue holds: a metric record, or a published checkpoint (then `record` is unused).
struct Entry {
  MetricRecord record;
  std::optional<PublishedCheckpoint> checkpoint;
};

// A drained batch cut where checkpoints are, so that each sink sees records and checkpoints in queue order.
struct Segment {
  std::vector<MetricRecord> records;
  std::optional<PublishedCheckpoint> checkpoint;  // after the records
};

std::vector<Segment> segments(std::deque<Entry>& queue) {
  std::vector<Segment> out(1);
  for (Entry& entry : queue) {
    if (entry.checkpoint) {
      out.back().checkpoint = std::move(entry.checkpoint);
      out.emplace_back();
    } else {
      out.back().records.push_back(std::move(entry.record));
    }
  }
  return out;
}

// One write to stderr per message, so that lines from several threads do not interleave.
void report(const std::string& message) { std::cerr << ("dptrain: metrics: " + message + "\n") << std::flush; }

}  // namespace

struct MetricHub::State {
  std::vector<SinkSlot> sinks;  // touched by the drain thread only
  std::size_t capacity = 0;

  std::mutex mutex;
  std::condition_variable work;  // the drain thread waits for records, a flush request or stop
  std::condition_variable done;  // flush() and close() wait for the drain thread
  std::deque<Entry> queue;
  std::size_t in_flight = 0;       // entries the drain thread is writing now
  std::uint64_t recorded = 0;      // records accepted so far, later-dropped ones included
  std::uint64_t flush_wanted = 0;  // flush() asks: everything up to this many recorded
  std::uint64_t flushed = 0;       // everything up to this many recorded is written and flushed
  std::int64_t dropped = 0;
  std::string busy_sink;  // the sink the drain thread is in now, for close()'s deadline report
  std::map<std::string, std::string> backend_run_ids;  // what the sinks said after their last write
  std::string status;
  bool stop = false;
  bool abandon = false;  // close() gave up waiting: discard what is still queued
  bool sinks_closed = false;

  // Never waits for a sink: if the queue is full the oldest entry is dropped and counted.
  void enqueue(Entry entry) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (stop) {
        ++dropped;
        return;
      }
      if (queue.size() >= capacity) {
        queue.pop_front();
        ++dropped;
      }
      queue.push_back(std::move(entry));
      ++recorded;
    }
    work.notify_one();
  }

  void set_busy(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex);
    busy_sink = name;
  }

  // Calls one sink; its first exception disables it, so a broken sink is reported once, not every step.
  template <typename Call>
  void call(SinkSlot& slot, const char* what, Call&& fn) {
    if (slot.disabled) return;
    const std::string name = slot.sink->name();
    set_busy(name);
    try {
      fn(*slot.sink);
    } catch (const std::exception& e) {
      slot.disabled = true;
      report("sink '" + name + "' failed in " + what + " and is disabled for the rest of the run: " + e.what());
    } catch (...) {
      slot.disabled = true;
      report("sink '" + name + "' failed in " + what + " and is disabled for the rest of the run");
    }
    set_busy("");
  }

  void drain() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      work.wait(lock, [&] { return !queue.empty() || flush_wanted > flushed || stop; });
      if (abandon) queue.clear();
      const bool last = stop;  // nothing is queued after stop, so this batch is the last
      const std::uint64_t flush_target = flush_wanted;
      const bool flush_now = flush_target > flushed;
      const std::vector<Segment> batch = segments(queue);
      in_flight = queue.size();
      queue.clear();
      lock.unlock();

      for (SinkSlot& slot : sinks) {
        for (const Segment& segment : batch) {
          if (!segment.records.empty()) call(slot, "write", [&](Sink& sink) { sink.write(segment.records); });
          if (segment.checkpoint) call(slot, "checkpoint", [&](Sink& sink) { sink.checkpoint(*segment.checkpoint); });
        }
        if (flush_now) call(slot, "flush", [](Sink& sink) { sink.flush(); });
        const std::string id = slot.sink->backend_run_id();
        if (!id.empty()) {
          std::lock_guard<std::mutex> ids_lock(mutex);
          backend_run_ids[slot.sink->name()] = id;
        }
      }
      if (last) {
        for (SinkSlot& slot : sinks) call(slot, "close", [&](Sink& sink) { sink.close(status); });
      }

      lock.lock();
      in_flight = 0;
      flushed = std::max(flushed, flush_target);
      sinks_closed = last;
      done.notify_all();
      if (last) return;
    }
  }
};

MetricHub::MetricHub(RunInfo run, std::vector<std::unique_ptr<Sink>> sinks, MetricHubOptions options)
    : run_(std::move(run)), state_(std::make_shared<State>()) {
  state_->capacity = std::max<std::size_t>(options.capacity, 1);
  for (auto& sink : sinks) {
    if (sink) state_->sinks.push_back(SinkSlot{std::move(sink)});
  }
  drain_ = std::thread([state = state_] { state->drain(); });
}

// A hub destroyed while an exception unwinds belongs to a run that failed.
MetricHub::~MetricHub() { close(std::uncaught_exceptions() > 0 ? "FAILED" : "FINISHED"); }

std::map<std::string, std::string> MetricHub::backend_run_ids() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->backend_run_ids;
}

void MetricHub::record(MetricRecord record) { state_->enqueue(Entry{std::move(record), std::nullopt}); }

void MetricHub::checkpoint(PublishedCheckpoint published) { state_->enqueue(Entry{{}, std::move(published)}); }

void MetricHub::flush() {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  const std::uint64_t target = s.recorded;
  if (s.stop || s.flushed >= target) return;
  s.flush_wanted = std::max(s.flush_wanted, target);
  s.work.notify_one();
  s.done.wait(lock, [&] { return s.flushed >= target || s.sinks_closed; });
}

void MetricHub::close(const std::string& status, double deadline_s) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.stop) return;
  s.stop = true;
  s.status = status;
  s.work.notify_one();

  // Clamped so that a huge or infinite deadline cannot overflow the clock.
  const double wait_s = std::clamp(deadline_s, 0.0, 1e6);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(wait_s));
  const bool finished = s.done.wait_until(lock, deadline, [&] { return s.sinks_closed; });
  const std::size_t unwritten = finished ? 0 : s.queue.size() + s.in_flight;
  const std::string busy = s.busy_sink;
  const std::int64_t dropped = s.dropped;
  if (!finished) s.abandon = true;
  lock.unlock();

  if (dropped > 0) {
    report(std::to_string(dropped) + " records were dropped before reaching the sinks (queue of " +
           std::to_string(s.capacity) + " full: a sink is slower than training)");
  }
  if (finished) {
    drain_.join();
    return;
  }
  std::ostringstream seconds;
  seconds << wait_s;
  const std::string who = busy.empty() ? "the sinks" : "sink '" + busy + "'";
  report(std::to_string(unwritten) + " records were not written before closing the run as " + status + ": " + who +
         " did not finish within " + seconds.str() + " s and is left to finish in the background");
  // The drain thread owns the sinks through the shared state; it closes them if the busy sink ever returns.
  drain_.detach();
}

const RunInfo& MetricHub::run() const { return run_; }

std::int64_t MetricHub::dropped() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->dropped;
}

}  // namespace dpt::tracking
