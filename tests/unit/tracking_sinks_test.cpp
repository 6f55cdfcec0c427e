// Tests of the TensorBoard and Prometheus sinks: event-file framing and content, exposition text, the endpoint.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "tracking/prometheus_sink.h"
#include "tracking/sinks.h"
#include "tracking/tensorboard_sink.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("dptrain_sinks_test_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  return dir;
}

// A decoded tensorflow.Event, as far as the sink writes it.
struct Event {
  double wall_time = 0;
  std::int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

// Minimal protobuf reader for the wire types the sink uses; fails the test on anything else.
class ProtoReader {
 public:
  explicit ProtoReader(const std::string& bytes) : bytes_(bytes) {}
  bool done() const { return at_ >= bytes_.size(); }
  std::uint64_t varint() {
    std::uint64_t value = 0;
    for (int shift = 0; at_ < bytes_.size(); shift += 7) {
      const auto byte = static_cast<unsigned char>(bytes_[at_++]);
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
    }
    return value;
  }
  std::string take(std::size_t n) {
    std::string out = bytes_.substr(at_, n);
    at_ += n;
    return out;
  }
  std::string bytes_field() { return take(varint()); }

 private:
  std::string bytes_;
  std::size_t at_ = 0;
};

Event decode_event(const std::string& bytes) {
  Event event;
  ProtoReader in(bytes);
  while (!in.done()) {
    const std::uint64_t key = in.varint();
    switch (key) {
      case (1 << 3) | 1: std::memcpy(&event.wall_time, in.take(8).data(), 8); break;
      case (2 << 3) | 0: event.step = static_cast<std::int64_t>(in.varint()); break;
      case (3 << 3) | 2: event.file_version = in.bytes_field(); break;
      case (5 << 3) | 2: {
        ProtoReader summary(in.bytes_field());
        while (!summary.done()) {
          EXPECT_EQ(summary.varint(), (1u << 3) | 2u);
          ProtoReader value(summary.bytes_field());
          EXPECT_EQ(value.varint(), (1u << 3) | 2u);
          std::string tag = value.bytes_field();
          EXPECT_EQ(value.varint(), (2u << 3) | 5u);
          float number = 0;
          std::memcpy(&number, value.take(4).data(), 4);
          event.values.emplace_back(tag, number);
        }
        break;
      }
      default: ADD_FAILURE() << "unexpected field key " << key; return event;
    }
  }
  return event;
}

// Splits a TFRecord file, checking both masked CRCs of every record.
std::vector<Event> read_events(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Event> events;
  std::size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_LE(at + 12, bytes.size()) << "truncated record header";
    std::uint64_t length = 0;
    std::uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(bytes.data() + at, 8));
    const std::string data = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size()));
    events.push_back(decode_event(data));
    at += 12 + length + 4;
  }
  return events;
}

TEST(TensorBoardSink, Crc32cMatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
  const std::uint32_t crc = crc32c("", 0);
  EXPECT_EQ(masked_crc32c("", 0), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TensorBoardSink, WritesFramedEventsWithEveryScalarIncludingNanAndInf) {
  const fs::path dir = fresh_dir("tb");
  auto sink = make_tensorboard_sink(dir.string());
  sink->write({MetricRecord{10, 0, 1764219662.5, {{"train/loss", 0.25}, {"train/lr", kNan}}},
               MetricRecord{20, 1, 1764219663.5, {{"train/grad_norm", kInf}, {"eval/accuracy", -kInf}}}});
  sink->close("FINISHED");

  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename().string().rfind("events.out.tfevents.", 0), 0u);
  const std::vector<Event> events = read_events(files[0]);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[1].step, 10);
  EXPECT_DOUBLE_EQ(events[1].wall_time, 1764219662.5);
  ASSERT_EQ(events[1].values.size(), 2u);
  EXPECT_EQ(events[1].values[0].first, "train/loss");
  EXPECT_EQ(events[1].values[0].second, 0.25f);
  EXPECT_EQ(events[1].values[1].first, "train/lr");
  EXPECT_TRUE(std::isnan(events[1].values[1].second));
  EXPECT_EQ(events[2].step, 20);
  ASSERT_EQ(events[2].values.size(), 2u);
  EXPECT_EQ(events[2].values[0], std::make_pair(std::string("eval/accuracy"), -std::numeric_limits<float>::infinity()));
  EXPECT_EQ(events[2].values[1], std::make_pair(std::string("train/grad_norm"), std::numeric_limits<float>::infinity()));
  fs::remove_all(dir);
}

TEST(PrometheusSink, RendersGaugesCounterLabelsAndSpecialValues) {
  RunInfo run{"run-1", "my \"run\"\\x", "", {}, {}, 3};
  const std::string text =
      render_prometheus(run, 42, 2, {{"train/loss", 0.5}, {"train/lr", kNan}, {"a-b", kInf}, {"c", -kInf}});
  EXPECT_NE(text.find("# TYPE dptrain_steps_total counter\ndptrain_steps_total{run_id=\"run-1\",rank=\"3\"} 42\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE dptrain_train_loss gauge\ndptrain_train_loss{run_id=\"run-1\",rank=\"3\"} 0.5\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("dptrain_train_lr{run_id=\"run-1\",rank=\"3\"} NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dptrain_a_b{run_id=\"run-1\",rank=\"3\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dptrain_c{run_id=\"run-1\",rank=\"3\"} -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dptrain_epoch{run_id=\"run-1\",rank=\"3\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("run_name=\"my \\\"run\\\"\\\\x\"} 1\n"), std::string::npos) << text;
}

// One HTTP/1.1 request to 127.0.0.1:port; returns the whole response, or "" when nothing listens.
std::string http_get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, static_cast<std::size_t>(n));
  }
  close(fd);
  return response;
}

TEST(PrometheusSink, ServesTheLatestValuesUntilClosed) {
  RunInfo run{"run-2", "", "", {}, {}, 0};
  auto sink = make_prometheus_sink(run, PrometheusOptions{"127.0.0.1", 0});
  const int port = sink->port();
  ASSERT_GT(port, 0);
  EXPECT_NE(http_get(port, "/metrics").find("dptrain_steps_total{run_id=\"run-2\",rank=\"0\"} 0\n"), std::string::npos);
  sink->write({MetricRecord{5, 0, 0, {{"train/loss", 1.5}}}, MetricRecord{7, 0, 0, {{"train/loss", 0.75}}}});
  const std::string response = http_get(port, "/metrics");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(response.find("dptrain_steps_total{run_id=\"run-2\",rank=\"0\"} 7\n"), std::string::npos) << response;
  EXPECT_NE(response.find("dptrain_train_loss{run_id=\"run-2\",rank=\"0\"} 0.75\n"), std::string::npos) << response;
  EXPECT_EQ(http_get(port, "/other").rfind("HTTP/1.1 404", 0), 0u);
  sink->close("FINISHED");
  EXPECT_EQ(http_get(port, "/metrics"), "");
}

TEST(PrometheusSink, APortInUseIsAClearError) {
  RunInfo run{"run-3", "", "", {}, {}, 0};
  auto first = make_prometheus_sink(run, PrometheusOptions{"127.0.0.1", 0});
  try {
    make_prometheus_sink(run, PrometheusOptions{"127.0.0.1", first->port()});
    FAIL() << "a second listener on the same port was accepted";
  } catch (const dpt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first->port())), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tracking.prometheus.port"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_prometheus_sink(run, PrometheusOptions{"localhost:1", 0}), dpt::Error);
}

TEST(MakeSinks, OtherRanksGetOnlyTheirPrometheusEndpointOnPortPlusRank) {
  RunInfo run{"run-4", "", "", {}, {}, 1};
  const int free_port = make_prometheus_sink(run, PrometheusOptions{"127.0.0.1", 0})->port();  // closed again
  const Config config =
      Config::parse(make_schema({tracking::config_keys()}), "[tracking]\nsinks = [\"console\", \"jsonl\", \"tensorboard\", \"prometheus\"]\n",
                    {"tracking.prometheus.port=" + std::to_string(free_port - 1)});
  const fs::path dir = fresh_dir("ranks");
  run.dir = dir.string();
  std::ostringstream console;
  auto sinks = make_sinks(config.get_strings("tracking.sinks"), run, console, 10, &config);
  ASSERT_EQ(sinks.size(), 1u);
  EXPECT_EQ(sinks[0]->name(), "prometheus");
  EXPECT_EQ(static_cast<PrometheusSink&>(*sinks[0]).port(), free_port);
  EXPECT_FALSE(fs::exists(dir));  // rank 1 writes no files
}

#ifndef DPTRAIN_HAS_MLFLOW
// A build without libcurl still knows the sink's name, so that selecting it says which option brings it back.
TEST(MakeSinks, MlflowInABuildWithoutItIsOneErrorNamingTheOption) {
  const Config config = Config::parse("[data]\ntrain = \"t.h5\"\n[tracking]\nsinks = [\"console\", \"mlflow\"]\n");
  const RunInfo run{"run-5", "", fresh_dir("no-mlflow").string(), {}, {}, 0};
  std::ostringstream console;
  try {
    make_sinks(config.get_strings("tracking.sinks"), run, console, 10, &config);
    FAIL() << "the mlflow sink was built without MLflow support";
  } catch (const dpt::Error& e) {
    EXPECT_NE(e.message().find("tracking.sinks = [\"mlflow\"] needs the MLflow sink"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("-DDPTRAIN_WITH_MLFLOW=ON"), std::string::npos) << e.what();
  }
}
#endif

TEST(ParseTags, KeyValueAndBareLabels) {
  EXPECT_EQ(parse_tags({"team=vision", "baseline", "note=a=b"}),
            (std::map<std::string, std::string>{{"team", "vision"}, {"baseline", ""}, {"note", "a=b"}}));
  EXPECT_THROW(parse_tags({"=x"}), dpt::Error);
  EXPECT_THROW(parse_tags({"a=1", "a=2"}), dpt::Error);
}

}  // namespace
}  // namespace dpt::tracking
