// TcpStore: the server (one thread polling a listening socket and its connections) and the client (blocking
// requests on a non-blocking socket, every wait bounded by poll() against the operation's deadline).
//
// Protocol: a message is a big-endian u32 frame length and the frame: u8 code, u32 timeout in ms, u32 count,
// then `count` strings, each a u32 length and its bytes. Requests: SET key value -> OK; GET key -> OK value, or
// MISSING key once the timeout passes; WAIT keys... -> OK, or MISSING and the keys still unset.
#include "distributed/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <thread>

#include "core/check.h"
#include "distributed/deadline.h"

namespace dpt::distributed {
namespace {

using detail::Clock;
using detail::millis_until;
using detail::wait_for;

enum Code : std::uint8_t { kSet = 1, kGet = 2, kWait = 3, kOk = 100, kMissing = 101 };

// A larger frame is garbage (not a dptrain client) or a value far beyond what a rendezvous carries.
constexpr std::uint32_t kMaxFrame = std::uint32_t{1} << 30;

// How long a client waits for an answer beyond the operation's timeout: the server answers MISSING at its own
// deadline, which starts when the request arrives.
constexpr double kAnswerGraceS = 2.0;

struct Message {
  std::uint8_t code = 0;
  std::uint32_t timeout_ms = 0;
  std::vector<std::string> strings;
};

void put_u32(std::string& out, std::uint32_t v) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                         static_cast<char>(v)};
  out.append(bytes, 4);
}

std::uint32_t get_u32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

std::string encode(const Message& m) {
  std::string frame(1, static_cast<char>(m.code));
  put_u32(frame, m.timeout_ms);
  put_u32(frame, static_cast<std::uint32_t>(m.strings.size()));
  for (const auto& s : m.strings) {
    put_u32(frame, static_cast<std::uint32_t>(s.size()));
    frame += s;
  }
  std::string message;
  put_u32(message, static_cast<std::uint32_t>(frame.size()));
  return message + frame;
}

// False when the frame is malformed.
bool decode(const char* p, std::size_t n, Message& m) {
  if (n < 9) return false;
  m.code = static_cast<std::uint8_t>(p[0]);
  m.timeout_ms = get_u32(p + 1);
  const std::uint32_t count = get_u32(p + 5);
  std::size_t at = 9;
  m.strings.clear();
  for (std::uint32_t i = 0; i < count; ++i) {
    if (n - at < 4) return false;
    const std::uint32_t length = get_u32(p + at);
    at += 4;
    if (n - at < length) return false;
    m.strings.emplace_back(p + at, length);
    at += length;
  }
  return at == n;
}

std::string errno_text(int error) { return std::strerror(error); }

using AddrInfo = std::unique_ptr<addrinfo, decltype(&freeaddrinfo)>;

AddrInfo resolve(const TcpAddress& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
  DPT_CHECK(rc == 0, "TCP store ", address.str(), ": cannot resolve host '", address.host, "' (", gai_strerror(rc),
            "): use an address or a host name that every process resolves");
  return AddrInfo(found, &freeaddrinfo);
}

bool connected_to_itself(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t local_length = sizeof(local), peer_length = sizeof(peer);
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0 &&
         ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0 && local_length == peer_length &&
         std::memcmp(&local, &peer, local_length) == 0;
}

int open_socket(const addrinfo& ai) {
  return ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
}

}  // namespace

TcpAddress TcpAddress::parse(const std::string& address) {
  const auto colon = address.rfind(':');
  TcpAddress parsed;
  std::size_t used = 0;
  try {
    if (colon != std::string::npos) parsed.port = std::stoi(address.substr(colon + 1), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DPT_CHECK(colon != std::string::npos && colon > 0 && used > 0 && used == address.size() - colon - 1 &&
                parsed.port >= 0 && parsed.port <= 65535,
            "TCP store address '", address, "' is not host:port (e.g. 127.0.0.1:29500, [::1]:29500; port 0 lets the ",
            "hosting process pick a free port)");
  parsed.host = address.substr(0, colon);
  if (parsed.host.size() > 2 && parsed.host.front() == '[' && parsed.host.back() == ']') {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  return parsed;
}

std::string TcpAddress::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool TcpAddress::is_own() const {
  const AddrInfo found = resolve(TcpAddress{host, 0}, true);
  for (const addrinfo* ai = found.get(); ai; ai = ai->ai_next) {
    const int fd = open_socket(*ai);
    if (fd < 0) continue;
    const bool bound = ::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    ::close(fd);
    if (bound) return true;
  }
  return false;
}

// The server thread holds every value; a GET or WAIT that cannot be answered yet parks its connection until a
// SET completes it or its timeout passes. Clients send one request at a time, so a parked connection reads on
// but handles nothing more until it is answered.
class TcpStore::Server {
 public:
  explicit Server(const TcpAddress& address) {
    const AddrInfo found = resolve(address, true);
    int error = 0;
    for (const addrinfo* ai = found.get(); ai && listen_fd_ < 0; ai = ai->ai_next) {
      const int fd = open_socket(*ai);
      if (fd < 0) {
        error = errno;
        continue;
      }
      // A job restarted on the same fixed port must not wait for the previous server's TIME_WAIT sockets.
      const int on = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
        listen_fd_ = fd;
      } else {
        error = errno;
        ::close(fd);
      }
    }
    DPT_CHECK(listen_fd_ >= 0, "TCP store ", address.str(), ": cannot listen (", errno_text(error), "): the port ",
              "is in use or the host is not an address of this machine (", error_host(), "); pick another port, or ",
              "port 0 for a free one");
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                              : reinterpret_cast<sockaddr_in&>(bound).sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      ::close(listen_fd_);
      DPT_THROW("TCP store ", address.str(), ": cannot create the server's wake-up pipe (", errno_text(errno), ")");
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Server() {
    const char stop = 1;
    while (::write(wake_[1], &stop, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (const auto& c : connections_) ::close(c.fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  int port() const { return port_; }

 private:
  struct Connection {
    int fd = -1;
    std::string in;
    std::string out;
    bool parked = false;
    Message request;
    Clock::time_point deadline;
    bool closed = false;
  };

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.assign({{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}});
      auto next_deadline = Clock::time_point::max();
      for (const auto& c : connections_) {
        fds.push_back({c.fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
        if (c.parked) next_deadline = std::min(next_deadline, c.deadline);
      }
      const int timeout = next_deadline == Clock::time_point::max() ? -1 : millis_until(next_deadline);
      if (::poll(fds.data(), fds.size(), timeout) < 0) {
        if (errno == EINTR) continue;
        return;  // cannot happen with valid descriptors; clients then fail by their own timeouts
      }
      if (fds[0].revents) return;
      for (std::size_t i = 0; i < connections_.size(); ++i) {
        if (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) receive(connections_[i]);
        if (fds[i + 2].revents & POLLOUT) flush(connections_[i]);
      }
      if (fds[1].revents & POLLIN) accept_all();
      answer_parked();
      for (std::size_t i = connections_.size(); i-- > 0;) {
        if (connections_[i].closed) {
          ::close(connections_[i].fd);
          connections_.erase(connections_.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      connections_.emplace_back();
      connections_.back().fd = fd;
    }
  }

  void receive(Connection& c) {
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        c.in.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c.closed = true;
      break;
    }
    handle_requests(c);
  }

  // Handles the complete requests `c` has sent, until one must wait. A malformed one closes the connection.
  void handle_requests(Connection& c) {
    while (!c.parked && !c.closed && c.in.size() >= 4) {
      const std::uint32_t length = get_u32(c.in.data());
      if (length > kMaxFrame) {
        c.closed = true;
        return;
      }
      if (c.in.size() < 4 + std::size_t{length}) return;
      Message request;
      const bool valid = decode(c.in.data() + 4, length, request);
      c.in.erase(0, 4 + std::size_t{length});
      if (!valid || (request.code == kSet && request.strings.size() != 2) ||
          (request.code == kGet && request.strings.size() != 1) || (request.code != kSet && request.code != kGet &&
                                                                    request.code != kWait)) {
        c.closed = true;
        return;
      }
      if (request.code == kSet) {
        values_[request.strings[0]] = std::move(request.strings[1]);
        reply(c, Message{kOk, 0, {}});
        continue;
      }
      c.parked = true;
      c.deadline = Clock::now() + std::chrono::milliseconds(request.timeout_ms);
      c.request = std::move(request);
    }
  }

  // Answers every parked request whose keys are all set, or whose timeout has passed; an answer lets that
  // connection's next request through, which may be a SET that completes others, hence the loop.
  void answer_parked() {
    for (bool answered = true; answered;) {
      answered = false;
      const auto now = Clock::now();
      for (auto& c : connections_) {
        if (!c.parked || c.closed) continue;
        std::vector<std::string> missing;
        for (const auto& key : c.request.strings) {
          if (!values_.count(key)) missing.push_back(key);
        }
        if (!missing.empty() && now < c.deadline) continue;
        Message answer{missing.empty() ? kOk : kMissing, 0, std::move(missing)};
        if (c.request.code == kGet && answer.code == kOk) answer.strings = {values_[c.request.strings[0]]};
        c.parked = false;
        reply(c, answer);
        handle_requests(c);
        answered = true;
      }
    }
  }

  void reply(Connection& c, const Message& answer) {
    c.out += encode(answer);
    flush(c);
  }

  void flush(Connection& c) {
    while (!c.out.empty() && !c.closed) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.closed = true;
        return;
      }
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};  // the destructor writes a byte to stop the thread
  std::vector<Connection> connections_;
  std::map<std::string, std::string> values_;
  std::thread thread_;
};

struct TcpStore::Reply {
  bool ok;
  std::vector<std::string> strings;
};

TcpStore::TcpStore(const std::string& address, bool host_server, double timeout_s)
    : Store(timeout_s), address_(TcpAddress::parse(address)) {
  if (host_server) {
    server_ = std::make_unique<Server>(address_);
    address_.port = server_->port();
  }
  DPT_CHECK(address_.port > 0, "TCP store ", address_.str(), ": port 0 only lets the hosting process pick a port; ",
            "the others connect to the address it reports");
  std::lock_guard<std::mutex> lock(mutex_);
  connect();
}

TcpStore::~TcpStore() {
  if (socket_ >= 0) ::close(socket_);
}

void TcpStore::connect() {
  const auto deadline = detail::deadline_after(timeout_s());
  const AddrInfo found = resolve(address_, false);
  int last_error = 0;
  // A refused connection is the normal state before the hosting process has started its server: retry.
  detail::poll_until(deadline, [&] {
    for (const addrinfo* ai = found.get(); ai; ai = ai->ai_next) {
      const int fd = open_socket(*ai);
      if (fd < 0) {
        last_error = errno;
        continue;
      }
      int error = 0;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        error = errno;
        if (error == EINPROGRESS) {
          socklen_t length = sizeof(error);
          error = wait_for(fd, POLLOUT, deadline) ? 0 : ETIMEDOUT;
          if (!error) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        }
      }
      // Retrying a local port with no server can connect a socket to itself (its ephemeral port chosen equal
      // to the server's); that is a refusal too.
      if (!error && connected_to_itself(fd)) error = ECONNREFUSED;
      if (!error) {
        const int on = 1;  // requests are small and each waits for its answer: no Nagle delay
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        socket_ = fd;
        return true;
      }
      last_error = error;
      ::close(fd);
    }
    return false;
  });
  DPT_CHECK(socket_ >= 0, name(), ": cannot connect within ", timeout_s(), " s (", errno_text(last_error),
            "): is the process hosting the server (rank 0) running, and does this address reach it from ",
            error_host(), "?");
}

TcpStore::Reply TcpStore::request(int op, const std::vector<std::string>& strings, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double timeout_ms = std::min(timeout_s() * 1000.0, double{std::numeric_limits<std::uint32_t>::max()});
  const auto deadline = detail::deadline_after(timeout_s() + kAnswerGraceS);
  if (socket_ < 0) connect();
  const std::string message =
      encode(Message{static_cast<std::uint8_t>(op), static_cast<std::uint32_t>(timeout_ms), strings});
  DPT_CHECK(message.size() - 4 <= kMaxFrame, name(), ": ", what, " sends ", message.size(), " bytes; a request ",
            "must stay under 1 GiB");

  // The reply, read into `in` until its frame is complete; a broken or silent connection throws (and is closed,
  // since it would be out of step with the next request).
  std::string in;
  const auto fail = [&](const std::string& why) {
    ::close(socket_);
    socket_ = -1;
    DPT_THROW(name(), ": ", why);
  };
  const auto broke = [&](int error) {
    fail("the connection to the server broke during the " + what + " (" +
         (error ? errno_text(error) : std::string("closed by the server")) +
         "): the process hosting it (rank 0) has exited or crashed; look for its error");
  };
  for (std::size_t sent = 0; sent < message.size();) {
    if (!wait_for(socket_, POLLOUT, deadline)) {
      fail(::dpt::detail::concat("cannot send the ", what, " within ", timeout_s() + kAnswerGraceS,
                                 " s: the process hosting the server (rank 0) hangs or the network drops packets"));
    }
    const ssize_t n = ::send(socket_, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) broke(errno);
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  while (in.size() < 4 || in.size() < 4 + std::size_t{get_u32(in.data())}) {
    if (!wait_for(socket_, POLLIN, deadline)) {
      fail(::dpt::detail::concat("no answer from the server to the ", what, " within ", timeout_s() + kAnswerGraceS,
                                 " s: the process hosting it (rank 0) hangs or the network drops packets"));
    }
    char buffer[65536];
    const ssize_t n = ::recv(socket_, buffer, sizeof(buffer), 0);
    if (n == 0) broke(0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) broke(errno);
    if (n > 0) in.append(buffer, static_cast<std::size_t>(n));
    if (in.size() >= 4 && get_u32(in.data()) > kMaxFrame) fail("the server's answer to " + what + " is garbage");
  }
  Message answer;
  if (in.size() != 4 + std::size_t{get_u32(in.data())} || !decode(in.data() + 4, in.size() - 4, answer) ||
      (answer.code != kOk && answer.code != kMissing)) {
    fail("the server's answer to " + what + " is garbage: is " + address_.str() + " a dptrain TCP store?");
  }
  return Reply{answer.code == kOk, std::move(answer.strings)};
}

void TcpStore::set(const std::string& key, const std::string& value) {
  request(kSet, {key, value}, "set of key '" + key + "'");
}

std::string TcpStore::get(const std::string& key) {
  Reply reply = request(kGet, {key}, "get of key '" + key + "'");
  DPT_CHECK(reply.ok && reply.strings.size() == 1, name(), ": no value for key '", key, "' within ", timeout_s(),
            " s: is the process that sets it (rank 0 for the NCCL id) running, and using this store?");
  return std::move(reply.strings[0]);
}

void TcpStore::wait(const std::vector<std::string>& keys) {
  const Reply reply = request(kWait, keys, "wait for " + std::to_string(keys.size()) + " key(s)");
  if (reply.ok) return;
  std::string missing;
  for (const auto& key : reply.strings) missing += (missing.empty() ? "'" : ", '") + key + "'";
  DPT_THROW(name(), ": key(s) ", missing, " were not set within ", timeout_s(), " s: are the processes that set ",
            "them running, and using this store?");
}

}  // namespace dpt::distributed
