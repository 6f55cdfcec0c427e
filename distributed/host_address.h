// first_ipv4_address: the address by which ranks on other nodes reach this one.
#pragma once

#include <string>

namespace dpt::distributed {

// The first IPv4 address of an interface that is up and is not a loopback ("" when there is none). Read from the
// interfaces, not from resolving the host name, which needs a name server and may answer with a loopback address.
std::string first_ipv4_address();

}  // namespace dpt::distributed
