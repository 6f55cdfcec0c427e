// choose_address: which of a host's interfaces the other nodes are told to reach it by.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "distributed/host_address.h"

namespace dpt::distributed {
namespace {

// A host with Docker's bridge first (the same address on every host), a container's veth, the cluster network and
// a second network; the order is the kernel's.
const std::vector<InterfaceAddress> kHost = {{"docker0", "172.17.0.1"},
                                             {"veth1a2b", "169.254.3.1"},
                                             {"eth0", "192.168.1.20"},
                                             {"ib0", "10.10.0.7"},
                                             {"eth1", "10.233.0.11"}};

TEST(HostAddress, DefaultSkipsContainerAndVmBridges) {
  EXPECT_EQ(choose_address(kHost, "", ""), "192.168.1.20");
  EXPECT_EQ(choose_address({{"br-4f1c", "172.18.0.1"}, {"virbr0", "192.168.122.1"}, {"cni0", "10.244.0.1"},
                            {"podman0", "10.88.0.1"}, {"enp3s0", "10.0.0.5"}},
                           "", ""),
            "10.0.0.5");
  EXPECT_EQ(choose_address({{"docker0", "172.17.0.1"}}, "", ""), "172.17.0.1") << "nothing else: the first";
  EXPECT_EQ(choose_address({}, "", ""), "");
}

TEST(HostAddress, FollowsWhatTheJobToldOpenMpi) {
  EXPECT_EQ(choose_address(kHost, "", "10.233.0.0/24"), "10.233.0.11");
  EXPECT_EQ(choose_address(kHost, "", "ib0"), "10.10.0.7");
  EXPECT_EQ(choose_address(kHost, "", "10.10.0.0/16,10.233.0.0/24"), "10.10.0.7") << "the list's order";
  EXPECT_EQ(choose_address(kHost, "", "10.233.0.11/32"), "10.233.0.11");
  EXPECT_EQ(choose_address(kHost, "", "0.0.0.0/0"), "172.17.0.1") << "a range of everything";
  EXPECT_EQ(choose_address(kHost, "", "10.99.0.0/16"), "192.168.1.20") << "nothing inside: the default";
  EXPECT_EQ(choose_address(kHost, "", "10.233.0.0/33,10.233.0.0/x,eth"), "192.168.1.20")
      << "bad ranges and a name that is only a prefix match nothing";
}

TEST(HostAddress, SocketIfnameAsNccl) {
  EXPECT_EQ(choose_address(kHost, "ib", "10.233.0.0/24"), "10.10.0.7") << "a prefix, over Open MPI's setting";
  EXPECT_EQ(choose_address(kHost, "eth1,ib", ""), "10.10.0.7") << "the kernel's order, not the list's";
  EXPECT_EQ(choose_address(kHost, "=eth1", ""), "10.233.0.11");
  EXPECT_EQ(choose_address(kHost, "^docker,veth,eth0", ""), "10.10.0.7");
  EXPECT_EQ(choose_address(kHost, "^=docker0,veth1a2b", ""), "192.168.1.20");
  try {
    choose_address(kHost, "=eth", "");
    ADD_FAILURE() << "an exact name that no interface has";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("DPTRAIN_SOCKET_IFNAME==eth allows none of this host's interfaces that are up with an "
                               "IPv4 address (docker0 172.17.0.1, veth1a2b 169.254.3.1, eth0 192.168.1.20, ib0 "
                               "10.10.0.7, eth1 10.233.0.11)"),
              std::string::npos)
        << e.message();
  }
  EXPECT_THROW(choose_address({}, "eth0", ""), Error);
}

TEST(HostAddress, ThisHostsInterfaces) {
  const std::vector<InterfaceAddress> mine = ipv4_interfaces();
  for (const InterfaceAddress& i : mine) {
    EXPECT_NE(i.interface, "lo");
    EXPECT_NE(i.address.rfind("127.", 0), 0U) << i.interface;
  }
  ::unsetenv("OMPI_MCA_btl_tcp_if_include");
  ::unsetenv("OMPI_MCA_oob_tcp_if_include");
  ::setenv("DPTRAIN_SOCKET_IFNAME", "lo", 1);
  EXPECT_THROW(reachable_ipv4_address(), Error) << "the loopback is never announced";
  ::unsetenv("DPTRAIN_SOCKET_IFNAME");
  EXPECT_EQ(reachable_ipv4_address(), choose_address(mine, "", ""));
}

}  // namespace
}  // namespace dpt::distributed
