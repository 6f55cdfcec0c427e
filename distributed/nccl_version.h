// NCCL feature gates: which NCCL release brought each call or type the NCCL backend uses, in one place, so that
// the backend builds against older NCCLs and says what it lacks instead of failing to compile.
#pragma once

#include <nccl.h>

// NCCL_VERSION(X, Y, Z) and NCCL_VERSION_CODE come from nccl.h (2.9 and later encode X * 10000 + Y * 100 + Z).
#define DPTRAIN_NCCL_AT_LEAST(major, minor) (NCCL_VERSION_CODE >= NCCL_VERSION(major, minor, 0))

// ncclAvg (averaging all-reduce): 2.10.
#define DPTRAIN_NCCL_HAS_AVG DPTRAIN_NCCL_AT_LEAST(2, 10)
// ncclBfloat16 (bf16 gradient compression): 2.10.
#define DPTRAIN_NCCL_HAS_BF16 DPTRAIN_NCCL_AT_LEAST(2, 10)
// ncclCommGetAsyncError and ncclCommAbort (a hung collective is abandoned, not waited for): 2.4, the oldest NCCL
// the backend builds against.
#if !DPTRAIN_NCCL_AT_LEAST(2, 4)
#error "the NCCL backend needs NCCL 2.4 or later (ncclCommAbort, ncclCommGetAsyncError): set NCCL_ROOT to a newer one"
#endif
