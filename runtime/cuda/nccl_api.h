// NCCL, opened at run time: only a tensor-parallel target needs it, so a process that runs the
// single-GPU targets (or a machine without NCCL) never loads it. Inside the CUDA module only.
#pragma once

#include <cuda_runtime.h>

#include <string>

#if __has_include(<nccl.h>)
#include <nccl.h>
#define PINMARK_HAVE_NCCL_HEADERS 1
#endif

namespace pinmark {

#ifdef PINMARK_HAVE_NCCL_HEADERS
// The NCCL functions a tensor-parallel backend calls (nccl.h documents each).
struct NcclApi {
  ncclResult_t (*get_version)(int*);
  ncclResult_t (*comm_init_all)(ncclComm_t*, int, const int*);
  ncclResult_t (*comm_destroy)(ncclComm_t);
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                             cudaStream_t);
  ncclResult_t (*group_start)();
  ncclResult_t (*group_end)();
  const char* (*get_error_string)(ncclResult_t);
  std::string library;  // the file opened
  std::string version;  // "2.28.9"
};

// The process's NCCL: $PINMARK_NCCL when set, else libnccl.so.2 from the loader's search path;
// opened once and kept. Null, with `why` set, when it cannot be opened or lacks a function.
const NcclApi* nccl_api(std::string& why);

// Throws std::runtime_error naming the call and NCCL's error text when `result` is a failure.
void nccl_check(const NcclApi& api, ncclResult_t result, const char* call);
#endif

}  // namespace pinmark
