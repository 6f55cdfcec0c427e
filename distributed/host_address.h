// reachable_ipv4_address: the address by which ranks on other nodes reach this one (the rendezvous store that rank 0
// hosts, every rank's PeerProbe), chosen among the host's interfaces as NCCL and Open MPI choose theirs.
#pragma once

#include <string>
#include <vector>

namespace dpt::distributed {

// An interface that is up, not the loopback, with an IPv4 address.
struct InterfaceAddress {
  std::string interface;  // "eth0"
  std::string address;    // "10.0.0.3"
};

// This host's, in the kernel's order (getifaddrs). Read from the interfaces, not from resolving the host name, which
// needs a name server and may answer with a loopback address.
std::vector<InterfaceAddress> ipv4_interfaces();

// The address to announce, from `interfaces`:
// - `socket_ifname` (DPTRAIN_SOCKET_IFNAME, as NCCL_SOCKET_IFNAME): comma-separated interface name prefixes, "=" before
//   the list for exact names, "^" for names to avoid; the first interface it allows. None allowed: a dpt::Error
//   naming the setting and the interfaces there are.
// - else `mpi_include` (Open MPI's btl_tcp_if_include or oob_tcp_if_include, what the job told MPI to use): comma-
//   separated CIDR ranges or interface names; the first interface inside it, where one is.
// - else the first interface not named like a container or VM bridge (docker*, br-*, virbr*, veth*, cni*, podman*:
//   the same address on every host, which reaches no other), or the first of all.
// "" when there is no interface.
std::string choose_address(const std::vector<InterfaceAddress>& interfaces, const std::string& socket_ifname,
                           const std::string& mpi_include);

// choose_address over this host's interfaces, DPTRAIN_SOCKET_IFNAME and OMPI_MCA_btl_tcp_if_include (else
// OMPI_MCA_oob_tcp_if_include) from the environment.
std::string reachable_ipv4_address();

}  // namespace dpt::distributed
