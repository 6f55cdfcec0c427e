// TensorBoard sink: scalar summaries in a TensorFlow event file, written by our own small TFRecord writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "tracking/sink.h"

namespace dpt::tracking {

// CRC-32C (Castagnoli), and the masked form that TFRecord framing stores: ((crc >> 15 | crc << 17) + 0xa282ead8).
std::uint32_t crc32c(const void* data, std::size_t size);
std::uint32_t masked_crc32c(const void* data, std::size_t size);

// Writes `dir`/events.out.tfevents.<unix seconds>.<host>: a file_version event ("brain.Event:2"), then per
// record one Event {wall_time, step, summary{value{tag, simple_value}}} with every value of the record as a
// float32 scalar (NaN and +-Inf included: TensorBoard reads them as such). Each event is one TFRecord:
// length (uint64 LE), masked CRC32C of the length, the event bytes, masked CRC32C of the bytes. No protobuf
// library is involved. Flushed on flush() and close(). Throws dpt::Error naming the file when it cannot be
// created.
std::unique_ptr<Sink> make_tensorboard_sink(const std::string& dir);

}  // namespace dpt::tracking
