// TensorBoard sink: TFRecord framing with masked CRC32C around hand-encoded tensorflow.Event protobufs.
#include "tracking/tensorboard_sink.h"

#include <unistd.h>

#include <array>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "tracking/file_sink.h"

namespace dpt::tracking {
namespace {

std::array<std::uint32_t, 256> crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    table[i] = crc;
  }
  return table;
}

// The few protobuf wire encodings an Event needs (proto3, fields written in number order).
class ProtoWriter {
 public:
  void varint(std::uint64_t value) {
    while (value >= 0x80) {
      bytes_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    bytes_.push_back(static_cast<char>(value));
  }
  void tag(int field, int wire_type) { varint(static_cast<std::uint64_t>(field) << 3 | static_cast<unsigned>(wire_type)); }
  void fixed64_field(int field, double value) {
    tag(field, 1);
    little_endian(&value, sizeof(value));
  }
  void fixed32_field(int field, float value) {
    tag(field, 5);
    little_endian(&value, sizeof(value));
  }
  void varint_field(int field, std::int64_t value) {
    tag(field, 0);
    varint(static_cast<std::uint64_t>(value));
  }
  void bytes_field(int field, const std::string& value) {
    tag(field, 2);
    varint(value.size());
    bytes_ += value;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  // Protobuf fixed-width fields are little-endian, as are the hosts LibTorch runs on.
  void little_endian(const void* value, std::size_t size) { bytes_.append(static_cast<const char*>(value), size); }
  std::string bytes_;
};

// tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5.
// Summary: value = 1 (repeated). Summary.Value: tag = 1 (string), simple_value = 2 (float).
std::string event(double wall_time, std::int64_t step, const MetricRecord* record) {
  ProtoWriter out;
  out.fixed64_field(1, wall_time);
  out.varint_field(2, step);
  if (!record) {
    out.bytes_field(3, "brain.Event:2");
    return out.bytes();
  }
  ProtoWriter summary;
  for (const auto& [name, value] : record->values) {
    ProtoWriter item;
    item.bytes_field(1, name);
    item.fixed32_field(2, static_cast<float>(value));
    summary.bytes_field(1, item.bytes());
  }
  out.bytes_field(5, summary.bytes());
  return out.bytes();
}

std::string event_file_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  return "events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host;
}

class TensorBoardSink final : public FileSink {
 public:
  explicit TensorBoardSink(const std::string& dir)
      : FileSink((std::filesystem::path(dir) / event_file_name()).string(), "TensorBoard event file",
                 std::ios::binary) {
    append_record(event(static_cast<double>(std::time(nullptr)), 0, nullptr));
    check_stream("write to");
  }

  std::string name() const override { return "tensorboard"; }

  void write(const std::vector<MetricRecord>& records) override {
    for (const MetricRecord& record : records) append_record(event(record.time, record.step, &record));
    check_stream("write to");
  }

 private:
  // TFRecord framing: length, masked CRC32C of the length bytes, data, masked CRC32C of the data.
  void append_record(const std::string& data) {
    const std::uint64_t length = data.size();
    char header[12];
    std::memcpy(header, &length, 8);
    const std::uint32_t length_crc = masked_crc32c(header, 8);
    std::memcpy(header + 8, &length_crc, 4);
    const std::uint32_t data_crc = masked_crc32c(data.data(), data.size());
    out().write(header, sizeof(header));
    out().write(data.data(), static_cast<std::streamsize>(data.size()));
    out().write(reinterpret_cast<const char*>(&data_crc), 4);
  }
};

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size) {
  static const std::array<std::uint32_t, 256> table = crc32c_table();
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xffu] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

std::uint32_t masked_crc32c(const void* data, std::size_t size) {
  const std::uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::unique_ptr<Sink> make_tensorboard_sink(const std::string& dir) { return std::make_unique<TensorBoardSink>(dir); }

}  // namespace dpt::tracking
