// PeerProbe: a listening socket served by one thread (poll over it and a wake-up pipe), and a client that connects
// to many ranks at once with non-blocking sockets, every wait bounded by one deadline.
#include "distributed/peer_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/error.h"
#include "distributed/deadline.h"

namespace dpt::distributed {
namespace {

using detail::Clock;

// What one rank tells the others at start: fixed-size, so that one MPI_Allgather carries it.
struct Card {
  std::array<char, 64> host{};
  std::array<char, INET6_ADDRSTRLEN> address{};
  std::int32_t port = 0;
};

template <std::size_t N>
void copy_text(std::array<char, N>& to, const std::string& from) {
  std::strncpy(to.data(), from.c_str(), N - 1);
}

// A status line longer than this is cut: the account quotes it, it is not a transport.
constexpr std::size_t kMaxAnswer = 512;

sockaddr_in ipv4(const std::string& address, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  DPT_CHECK(::inet_pton(AF_INET, address.c_str(), &a.sin_addr) == 1, "peer probe: '", address,
            "' is not an IPv4 address");
  return a;
}

}  // namespace

PeerProbe::PeerProbe(MPI_Comm comm, const std::function<std::string()>& address,
                     std::function<std::string()> status)
    : status_(std::move(status)) {
  Card card;
  copy_text(card.host, error_host());
  // Why this rank cannot listen ("" once it does); it joins the exchange below either way.
  const auto listen_on = [&]() -> std::string {
    std::string where;
    try {
      where = address();
      copy_text(card.address, where);
      sockaddr_in bound = ipv4(where, 0);
      socklen_t length = sizeof(bound);
      listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&bound), sizeof(bound)) != 0 ||
          ::listen(listener_, 64) != 0 ||
          ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &length) != 0 ||
          ::pipe2(wake_, O_CLOEXEC) != 0) {
        return "cannot listen on " + where + ": " + std::strerror(errno);
      }
      card.port = ntohs(bound.sin_port);
      return "";
    } catch (const Error& e) {
      return e.message();
    }
  };
  const std::string why_not = listen_on();
  int ranks = 1;
  MPI_Comm_size(comm, &ranks);
  std::vector<Card> cards(static_cast<std::size_t>(ranks));
  DPT_CHECK_MPI(MPI_Allgather(&card, sizeof(Card), MPI_BYTE, cards.data(), sizeof(Card), MPI_BYTE, comm));
  for (const Card& c : cards) {
    hosts_.emplace_back(c.host.data());
    addresses_.emplace_back(c.address.data());
    ports_.push_back(c.port);
  }
  if (!why_not.empty()) {
    if (listener_ >= 0) ::close(listener_);
    DPT_THROW("peer probe: ", why_not);
  }
  thread_ = std::thread([this] { serve(); });
}

PeerProbe::~PeerProbe() {
  if (thread_.joinable()) {
    const char stop = 0;
    while (::write(wake_[1], &stop, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (const int fd : {listener_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void PeerProbe::serve() {
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{listener_, POLLIN, 0}, pollfd{wake_[0], POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    // The line fits the socket's send buffer: one write, and the asker reads it until we close.
    const std::string line = status_().substr(0, kMaxAnswer);
    const ssize_t written = ::send(client, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    static_cast<void>(written);
    ::close(client);
  }
}

std::vector<PeerProbe::Answer> PeerProbe::ask(const std::vector<int>& ranks, double timeout_s) const {
  struct Pending {
    Answer answer;
    int fd = -1;
    bool connected = false;
  };
  std::vector<Pending> pending;
  for (const int rank : ranks) {
    Pending p;
    p.answer.rank = rank;
    const auto r = static_cast<std::size_t>(rank);
    p.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const sockaddr_in to = ipv4(addresses_.at(r), ports_.at(r));
    if (p.fd < 0 || (::connect(p.fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 &&
                     errno != EINPROGRESS)) {
      p.answer.text = std::strerror(errno);
      if (p.fd >= 0) ::close(p.fd);
      p.fd = -1;
    }
    pending.push_back(std::move(p));
  }
  const auto deadline = detail::deadline_after(timeout_s);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Pending*> owners;
    for (Pending& p : pending) {
      if (p.fd < 0) continue;
      fds.push_back(pollfd{p.fd, static_cast<short>(p.connected ? POLLIN : POLLOUT), 0});
      owners.push_back(&p);
    }
    if (fds.empty()) break;
    const int ready = ::poll(fds.data(), fds.size(), detail::millis_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      Pending& p = *owners[i];
      if (fds[i].revents == 0) continue;
      if (!p.connected) {
        int error = 0;
        socklen_t length = sizeof(error);
        ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error == 0) {
          p.connected = true;
          continue;
        }
        p.answer.text = std::strerror(error);
      } else {
        char chunk[256];
        const ssize_t n = ::recv(p.fd, chunk, sizeof(chunk), 0);
        if (n > 0 && p.answer.text.size() < kMaxAnswer) {
          p.answer.text.append(chunk, static_cast<std::size_t>(n));
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        p.answer.reached = n == 0 || p.answer.text.size() >= kMaxAnswer;
        if (!p.answer.reached) p.answer.text = std::strerror(errno);
      }
      ::close(p.fd);
      p.fd = -1;
    }
  }
  std::vector<Answer> answers;
  for (Pending& p : pending) {
    if (p.fd >= 0) {
      ::close(p.fd);
      p.answer.reached = false;
      p.answer.text = "no answer within " + std::to_string(static_cast<int>(timeout_s)) + " s";
    }
    answers.push_back(std::move(p.answer));
  }
  return answers;
}

}  // namespace dpt::distributed
