// reachable_ipv4_address: getifaddrs, then the rules of choose_address.
#include "distributed/host_address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "core/check.h"

namespace dpt::distributed {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// The address in host byte order; false when `text` is not a dotted IPv4 address.
bool parse_ipv4(const std::string& text, std::uint32_t* out) {
  in_addr parsed{};
  if (::inet_pton(AF_INET, text.c_str(), &parsed) != 1) return false;
  *out = ntohl(parsed.s_addr);
  return true;
}

// One item of Open MPI's if_include: "10.0.0.0/24" holds the addresses of that range, any other item names an
// interface exactly.
bool inside(const InterfaceAddress& candidate, const std::string& item) {
  const std::size_t slash = item.find('/');
  if (slash == std::string::npos) return candidate.interface == item;
  std::uint32_t network = 0;
  std::uint32_t address = 0;
  if (!parse_ipv4(item.substr(0, slash), &network) || !parse_ipv4(candidate.address, &address)) return false;
  char* end = nullptr;
  const long bits = std::strtol(item.c_str() + slash + 1, &end, 10);
  if (end == item.c_str() + slash + 1 || *end != '\0' || bits < 0 || bits > 32) return false;
  const std::uint32_t mask = bits == 0 ? 0U : ~0U << (32 - bits);
  return (network & mask) == (address & mask);
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

std::vector<InterfaceAddress> ipv4_interfaces() {
  std::vector<InterfaceAddress> found;
  ifaddrs* interfaces = nullptr;
  if (::getifaddrs(&interfaces) != 0) return found;
  for (const ifaddrs* i = interfaces; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
        (i->ifa_flags & IFF_LOOPBACK)) {
      continue;
    }
    char text[INET_ADDRSTRLEN] = {0};
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof(text));
    found.push_back({i->ifa_name, text});
  }
  ::freeifaddrs(interfaces);
  return found;
}

std::string choose_address(const std::vector<InterfaceAddress>& interfaces, const std::string& socket_ifname,
                           const std::string& mpi_include) {
  if (!socket_ifname.empty()) {
    std::string list = socket_ifname;
    const bool avoid = starts_with(list, "^");
    if (avoid) list.erase(0, 1);
    const bool exact = starts_with(list, "=");
    if (exact) list.erase(0, 1);
    const std::vector<std::string> names = split_commas(list);
    std::string there;
    for (const InterfaceAddress& candidate : interfaces) {
      bool named = false;
      for (const std::string& name : names) {
        named = named || (exact ? candidate.interface == name : starts_with(candidate.interface, name));
      }
      if (named != avoid) return candidate.address;
      there += (there.empty() ? "" : ", ") + candidate.interface + " " + candidate.address;
    }
    DPT_THROW("DPTRAIN_SOCKET_IFNAME=", socket_ifname, " allows none of this host's interfaces that are up with an ",
              "IPv4 address (", there.empty() ? "there are none" : there, "): name one of them, or unset it");
  }
  for (const std::string& item : split_commas(mpi_include)) {
    for (const InterfaceAddress& candidate : interfaces) {
      if (inside(candidate, item)) return candidate.address;
    }
  }
  static const char* const kBridges[] = {"docker", "br-", "virbr", "veth", "cni", "podman"};
  for (const InterfaceAddress& candidate : interfaces) {
    bool bridge = false;
    for (const char* prefix : kBridges) bridge = bridge || starts_with(candidate.interface, prefix);
    if (!bridge) return candidate.address;
  }
  return interfaces.empty() ? "" : interfaces.front().address;
}

std::string reachable_ipv4_address() {
  std::string mpi_include = env("OMPI_MCA_btl_tcp_if_include");
  if (mpi_include.empty()) mpi_include = env("OMPI_MCA_oob_tcp_if_include");
  return choose_address(ipv4_interfaces(), env("DPTRAIN_SOCKET_IFNAME"), mpi_include);
}

}  // namespace dpt::distributed
