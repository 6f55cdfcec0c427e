// rendezvous_store: the Store through which the ranks of a job exchange set-up data (the NCCL unique id), named by
// the environment or else hosted by rank 0 and announced to the other ranks over MPI.
#pragma once

#include <memory>

#include "core/runtime.h"
#include "distributed/store.h"

namespace dpt::distributed {

// The first of these that applies:
//  - DPTRAIN_STORE=tcp://host:port: a TcpStore; rank 0 hosts its server when `host` is an address of its machine.
//  - DPTRAIN_STORE=file:///dir: a FileStore in /dir (a fresh directory per job, on a filesystem every rank sees).
//  - MASTER_ADDR and MASTER_PORT (torchrun's names): as tcp://MASTER_ADDR:MASTER_PORT.
//  - otherwise rank 0 hosts a TcpStore on a free port and MPI carries its address to the other ranks (collective
//    then): the loopback when every rank runs on one node, else rank 0's first IPv4 address that is not a
//    loopback (set DPTRAIN_STORE where the other nodes reach rank 0 through another one).
// Every operation of the store is bounded by timeout_s. Rank 0 must keep its store until the others have read
// what they need: with a TcpStore it hosts the server.
std::unique_ptr<Store> rendezvous_store(const Runtime& runtime, double timeout_s);

}  // namespace dpt::distributed
