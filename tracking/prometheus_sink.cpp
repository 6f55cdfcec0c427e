// Prometheus sink: renders the latest values as exposition text and serves them from a tiny HTTP/1.1 server.
#include "tracking/prometheus_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/check.h"

namespace dpt::tracking {
namespace {

std::string metric_name(const std::string& key) {
  std::string name = "dptrain_";
  for (const char c : key) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    name += keep ? c : '_';
  }
  return name;
}

std::string label_value(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string sample_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

// One listening socket and one thread that answers requests one at a time: a scrape every few seconds
// needs no more, and training never waits for it (the body is swapped in under a mutex).
class MetricsServer {
 public:
  MetricsServer(const PrometheusOptions& options) {
    const std::string where = options.bind + ":" + std::to_string(options.port);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(options.port));
    DPT_CHECK(inet_pton(AF_INET, options.bind.c_str(), &address.sin_addr) == 1, "tracking.prometheus.bind '",
              options.bind, "' is not an IPv4 address; use e.g. \"127.0.0.1\" or \"0.0.0.0\"");
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DPT_CHECK(fd_ >= 0, "cannot create a socket for the Prometheus endpoint: ", std::strerror(errno));
    const int on = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd_, 16) != 0) {
      const int error = errno;
      ::close(fd_);
      DPT_THROW("cannot listen on ", where, " for the Prometheus /metrics endpoint: ", std::strerror(error),
                "; choose another tracking.prometheus.port (each rank uses port + rank)");
    }
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~MetricsServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }

  void set_body(std::string body) {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = std::move(body);
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd waiting{fd_, POLLIN, 0};
      // Wakes up now and then to notice stop_; a scrape arriving meanwhile is answered at once.
      if (poll(&waiting, 1, 100) <= 0) continue;
      const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      answer(client);
      ::close(client);
    }
  }

  // Reads the request head (bounded in size and time, so a silent client cannot stall the endpoint).
  void answer(int client) {
    timeval timeout{2, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    std::string request;
    char buffer[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      const ssize_t got = recv(client, buffer, sizeof(buffer), 0);
      if (got <= 0) return;
      request.append(buffer, static_cast<std::size_t>(got));
    }
    const bool metrics = request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET /metrics?", 0) == 0;
    std::string body;
    if (metrics) {
      std::lock_guard<std::mutex> lock(mutex_);
      body = body_;
    } else {
      body = "dptrain serves only GET /metrics\n";
    }
    const std::string response = std::string(metrics ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
                                 "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    std::size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t n = send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string body_;
  std::thread thread_;
};

class PrometheusSinkImpl final : public PrometheusSink {
 public:
  PrometheusSinkImpl(const RunInfo& run, const PrometheusOptions& options)
      : run_(run), server_(std::make_unique<MetricsServer>(options)) {
    server_->set_body(render_prometheus(run_, step_, epoch_, latest_));
  }

  std::string name() const override { return "prometheus"; }
  int port() const override { return server_->port(); }

  void write(const std::vector<MetricRecord>& records) override {
    for (const MetricRecord& record : records) {
      step_ = std::max(step_, record.step);
      epoch_ = record.epoch;
      for (const auto& [key, value] : record.values) latest_[key] = value;
    }
    if (server_) server_->set_body(render_prometheus(run_, step_, epoch_, latest_));
  }

  void flush() override {}

  void close(const std::string&) override { server_.reset(); }

 private:
  RunInfo run_;
  std::int64_t step_ = 0;
  std::int64_t epoch_ = 0;
  std::map<std::string, double> latest_;
  std::unique_ptr<MetricsServer> server_;
};

}  // namespace

std::string render_prometheus(const RunInfo& run, std::int64_t step, std::int64_t epoch,
                              const std::map<std::string, double>& latest) {
  const std::string labels = "{run_id=\"" + label_value(run.id) + "\",rank=\"" + std::to_string(run.rank) + "\"}";
  std::string out;
  out += "# HELP dptrain_run_info The run this process belongs to (value always 1).\n";
  out += "# TYPE dptrain_run_info gauge\n";
  out += "dptrain_run_info{run_id=\"" + label_value(run.id) + "\",rank=\"" + std::to_string(run.rank) +
         "\",run_name=\"" + label_value(run.name) + "\"} 1\n";
  out += "# HELP dptrain_steps_total Optimizer steps taken, as of the last recorded metrics.\n";
  out += "# TYPE dptrain_steps_total counter\n";
  out += "dptrain_steps_total" + labels + " " + std::to_string(step) + "\n";
  out += "# TYPE dptrain_epoch gauge\n";
  out += "dptrain_epoch" + labels + " " + std::to_string(epoch) + "\n";
  for (const auto& [key, value] : latest) {
    const std::string name = metric_name(key);
    out += "# HELP " + name + " Latest value of " + key + ".\n";
    out += "# TYPE " + name + " gauge\n";
    out += name + labels + " " + sample_value(value) + "\n";
  }
  return out;
}

std::unique_ptr<PrometheusSink> make_prometheus_sink(const RunInfo& run, const PrometheusOptions& options) {
  return std::make_unique<PrometheusSinkImpl>(run, options);
}

}  // namespace dpt::tracking
