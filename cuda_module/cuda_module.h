// The CUDA backend as a module: libpinmark_cuda.so holds the kernels, cuBLAS and the CUDA
// runtime, and is opened with dlopen the first time a cuda target (or any function of
// runtime/cuda/cuda_backend.h and device_info.h) is asked for. A process that never asks, like
// every test binary but cuda_backend_tests and `pinmark` on a run without cuda targets, never
// maps cuBLAS (about 540 MB), and starts in milliseconds.
//
// Two sides, built by the same compiler in the same build:
//   - entry.cpp, in the module: the extern "C" entry point pinmark_cuda_module_v1(), which
//     returns the table below, pointing at the real functions of runtime/cuda/.
//   - loader.cpp, in pinmark_runtime: the functions that runtime/cuda/*.h declare, each of
//     which loads the module and forwards to it. runtime/target.cpp calls them as before.
// Nothing here computes a number: the kernels and their flags are those of runtime/cuda/.
//
// Where the module is looked for, in order (the first file that exists is the one loaded):
//   1. $PINMARK_CUDA_MODULE, when set: that file and no other;
//   2. libpinmark_cuda.so next to the executable;
//   3. the install layout: <bindir>/../<libdir>/libpinmark_cuda.so, relative to the executable;
//   4. the build tree, where the build put it.
// Before the module is loaded to answer "is there a device?", the CUDA driver (libcuda.so.1, or
// $PINMARK_CUDA_DRIVER) is asked directly: on a machine without a driver or without a device
// the answer is no without mapping cuBLAS, so that the case tests, which ask on every case,
// start as fast as the others.
// When none exists, or dlopen fails (no cuBLAS on this machine, say), or the module is of
// another build, the cuda targets cannot run here, exactly as without a GPU: their rows are
// carried over. PINMARK_CUDA_DEBUG=1 prints to stderr what the driver said, which module was
// loaded, from where, or why none was.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cuda/cuda_backend.h"

// Raised whenever the table, or the Backend interface that crosses it, changes shape
// (2: Backend::hold_matrix and release_matrix; tensor parallelism's functions; 3: the ops of
// Gemma 3n and DeepSeek-V4, up to softmax_pool; 4: Backend::cache_written and release_cache;
// 5: Backend::hold_activations, release_activations, to_host, from_host and round_stored;
// 6: Backend::write_cache; 7: Backend::round_next).
#define PINMARK_CUDA_MODULE_ABI 7

extern "C" {

struct PinmarkCudaModuleV1 {
  int abi;               // PINMARK_CUDA_MODULE_ABI of the build that made the module
  const char* compiler;  // __VERSION__ of the compiler that built it: C++ types cross over
  bool (*device_available)();
  std::string (*device_class)();
  std::string (*provenance)();
  std::string (*math_mode)(pinmark::CudaPrecision);
  std::unique_ptr<pinmark::Backend<float>> (*make_backend)(pinmark::CudaPrecision);
  // Tensor parallelism (runtime/cuda/cuda_backend.h).
  std::string (*tp_unavailable)(int ranks);
  std::string (*tp_provenance)(int ranks);
  std::string (*tp_math_mode)(pinmark::CudaPrecision, int ranks);
  std::unique_ptr<pinmark::Backend<float>> (*make_tp_backend)(pinmark::CudaPrecision, int ranks);
};

// The module's one exported symbol.
const PinmarkCudaModuleV1* pinmark_cuda_module_v1();

}  // extern "C"

namespace pinmark {

struct CudaModuleLoad {
  const PinmarkCudaModuleV1* module = nullptr;  // null when not loaded
  std::string path;  // the file loaded, or the one that could not be; "" when none was found
  std::string why;   // why none was loaded; "" when one was
};

// The files to try, in order (see above). `override_path` is $PINMARK_CUDA_MODULE (null or
// empty: unset); `exe_dir` the executable's folder ("" when unknown).
std::vector<std::string> cuda_module_candidates(const char* override_path,
                                                const std::string& exe_dir);

// Opens the first candidate that exists and checks its entry point, ABI and compiler. Never
// throws; a module once opened stays open (its code backs the backends it made).
CudaModuleLoad load_cuda_module(const std::vector<std::string>& candidates);

// The process's module, loaded on first use from $PINMARK_CUDA_MODULE and the executable's
// folder, and kept.
const CudaModuleLoad& process_cuda_module();

// "cuda module /path/libpinmark_cuda.so" or "no cuda module: <why>": the line that
// PINMARK_CUDA_DEBUG=1 prints.
std::string cuda_module_report(const CudaModuleLoad& load);

struct CudaDriverProbe {
  int devices = 0;  // what cuDeviceGetCount says
  std::string why;  // why there is no device; "" when there is one
};

// Opens the CUDA driver library `library` and counts its devices with cuInit and
// cuDeviceGetCount. Never throws.
CudaDriverProbe probe_cuda_driver(const std::string& library);

// The process's probe of $PINMARK_CUDA_DRIVER (unset or empty: libcuda.so.1), made once.
const CudaDriverProbe& process_cuda_driver();

// Forgets the process's driver probe and module so that the next use looks again (after a test
// changed $PINMARK_CUDA_MODULE or $PINMARK_CUDA_DRIVER). Libraries stay mapped.
void forget_process_cuda_module_for_tests();

}  // namespace pinmark
