// The executable's side of cuda_module.h: the functions declared in runtime/cuda/cuda_backend.h
// and device_info.h, defined here by loading libpinmark_cuda.so on first use and forwarding to
// it. Without a module they behave as the real ones do without a device.
#include "cuda_module/cuda_module.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "runtime/cuda/device_info.h"

#ifndef PINMARK_CUDA_MODULE_BUILD_PATH
#error "the build defines PINMARK_CUDA_MODULE_BUILD_PATH (runtime/CMakeLists.txt)"
#endif
#ifndef PINMARK_CUDA_MODULE_INSTALL_PATH
#error "the build defines PINMARK_CUDA_MODULE_INSTALL_PATH (runtime/CMakeLists.txt)"
#endif

namespace pinmark {

namespace {

constexpr const char* kModuleFile = "libpinmark_cuda.so";

std::string executable_dir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

bool debug_requested() {
  const char* value = std::getenv("PINMARK_CUDA_DEBUG");
  return value && *value && std::string(value) != "0";
}

std::mutex process_mutex;
bool process_loaded = false;
CudaModuleLoad process_load;
bool driver_probed = false;
CudaDriverProbe driver_probe;

const PinmarkCudaModuleV1& module_or_throw() {
  const CudaModuleLoad& load = process_cuda_module();
  if (!load.module) throw std::runtime_error("no CUDA device is available: " + load.why);
  return *load.module;
}

}  // namespace

std::vector<std::string> cuda_module_candidates(const char* override_path,
                                                const std::string& exe_dir) {
  if (override_path && *override_path) return {override_path};
  std::vector<std::string> candidates;
  if (!exe_dir.empty()) {
    candidates.push_back(exe_dir + "/" + kModuleFile);
    candidates.push_back(exe_dir + "/" + PINMARK_CUDA_MODULE_INSTALL_PATH);
  }
  candidates.push_back(PINMARK_CUDA_MODULE_BUILD_PATH);
  return candidates;
}

CudaModuleLoad load_cuda_module(const std::vector<std::string>& candidates) {
  CudaModuleLoad load;
  for (const std::string& candidate : candidates) {
    std::error_code ec;
    if (!std::filesystem::exists(candidate, ec)) continue;
    load.path = candidate;
    // RTLD_LOCAL: the module's symbols stay its own. Never closed: its code backs every backend
    // it makes, for the life of the process.
    void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* error = ::dlerror();
      load.why = "cannot load " + candidate + ": " + (error ? error : "dlopen failed");
      return load;
    }
    using Entry = const PinmarkCudaModuleV1* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, "pinmark_cuda_module_v1"));
    if (!entry) {
      load.why = candidate + " is not a pinmark CUDA module: it has no pinmark_cuda_module_v1";
      return load;
    }
    const PinmarkCudaModuleV1* module = entry();
    if (!module || module->abi != PINMARK_CUDA_MODULE_ABI) {
      load.why = candidate + " is a pinmark CUDA module of another version (interface " +
                 (module ? std::to_string(module->abi) : std::string("none")) + ", this build " +
                 std::to_string(PINMARK_CUDA_MODULE_ABI) + ")";
      return load;
    }
    if (!module->compiler || std::string(module->compiler) != __VERSION__) {
      load.why = candidate + " was built by another compiler (" +
                 (module->compiler ? module->compiler : "unknown") + ", this build " +
                 __VERSION__ + ")";
      return load;
    }
    load.module = module;
    return load;
  }
  load.why = "no " + std::string(kModuleFile) + " found (looked for";
  for (size_t i = 0; i < candidates.size(); ++i)
    load.why += (i ? ", " : " ") + candidates[i];
  load.why += ")";
  return load;
}

const CudaModuleLoad& process_cuda_module() {
  std::lock_guard<std::mutex> lock(process_mutex);
  if (!process_loaded) {
    process_load =
        load_cuda_module(cuda_module_candidates(std::getenv("PINMARK_CUDA_MODULE"), executable_dir()));
    process_loaded = true;
    if (debug_requested()) std::cerr << "pinmark: " << cuda_module_report(process_load) << "\n";
  }
  return process_load;
}

CudaDriverProbe probe_cuda_driver(const std::string& library) {
  CudaDriverProbe probe;
  // Never closed: the CUDA runtime in the module uses the same driver.
  void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = ::dlerror();
    probe.why = "no CUDA driver: " + std::string(error ? error : "cannot load " + library);
    return probe;
  }
  using Init = int (*)(unsigned int);
  using Count = int (*)(int*);
  auto init = reinterpret_cast<Init>(::dlsym(handle, "cuInit"));
  auto count = reinterpret_cast<Count>(::dlsym(handle, "cuDeviceGetCount"));
  if (!init || !count) {
    probe.why = library + " is not a CUDA driver: it has no cuInit or no cuDeviceGetCount";
    return probe;
  }
  if (const int status = init(0); status != 0) {
    probe.why = "the CUDA driver " + library + " found no usable device (cuInit: error " +
                std::to_string(status) + ")";
    return probe;
  }
  if (const int status = count(&probe.devices); status != 0 || probe.devices <= 0) {
    probe.devices = 0;
    probe.why = "the CUDA driver " + library + " counts no device" +
                (status ? " (cuDeviceGetCount: error " + std::to_string(status) + ")" : "");
  }
  return probe;
}

const CudaDriverProbe& process_cuda_driver() {
  std::lock_guard<std::mutex> lock(process_mutex);
  if (!driver_probed) {
    const char* library = std::getenv("PINMARK_CUDA_DRIVER");
    driver_probe = probe_cuda_driver(library && *library ? library : "libcuda.so.1");
    driver_probed = true;
    if (debug_requested()) {
      if (driver_probe.devices > 0)
        std::cerr << "pinmark: cuda driver: " << driver_probe.devices << " device(s)\n";
      else
        std::cerr << "pinmark: " << driver_probe.why << " (the cuda module is not loaded to ask)\n";
    }
  }
  return driver_probe;
}

std::string cuda_module_report(const CudaModuleLoad& load) {
  if (load.module) return "cuda module " + load.path;
  return "no cuda module: " + load.why;
}

void forget_process_cuda_module_for_tests() {
  std::lock_guard<std::mutex> lock(process_mutex);
  process_loaded = false;
  process_load = CudaModuleLoad{};
  driver_probed = false;
  driver_probe = CudaDriverProbe{};
}

// The functions of runtime/cuda/, through the module.

// The driver first: without a device, the module (and cuBLAS with it) is not loaded to say so.
bool cuda_device_available() {
  if (process_cuda_driver().devices <= 0) return false;
  const CudaModuleLoad& load = process_cuda_module();
  return load.module && load.module->device_available();
}

std::string cuda_device_class() { return module_or_throw().device_class(); }

std::string cuda_provenance() { return module_or_throw().provenance(); }

std::string cuda_math_mode(CudaPrecision precision) {
  return module_or_throw().math_mode(precision);
}

std::unique_ptr<Backend<float>> make_cuda_backend(CudaPrecision precision) {
  return module_or_throw().make_backend(precision);
}

// The driver's count first, as for cuda_device_available().
std::string cuda_tp_unavailable(int ranks) {
  const int devices = process_cuda_driver().devices;
  if (devices < ranks)
    return "tensor parallelism over " + std::to_string(ranks) + " GPUs needs " +
           std::to_string(ranks) + " CUDA devices; this machine has " + std::to_string(devices);
  const CudaModuleLoad& load = process_cuda_module();
  if (!load.module) return "no cuda module: " + load.why;
  return load.module->tp_unavailable(ranks);
}

std::string cuda_tp_provenance(int ranks) { return module_or_throw().tp_provenance(ranks); }

std::string cuda_tp_math_mode(CudaPrecision precision, int ranks) {
  return module_or_throw().tp_math_mode(precision, ranks);
}

std::unique_ptr<Backend<float>> make_cuda_tp_backend(CudaPrecision precision, int ranks) {
  return module_or_throw().make_tp_backend(precision, ranks);
}

}  // namespace pinmark
