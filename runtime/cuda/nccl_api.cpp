#include "runtime/cuda/nccl_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace pinmark {

#ifdef PINMARK_HAVE_NCCL_HEADERS
namespace {

struct Loaded {
  NcclApi api{};
  bool ok = false;
  std::string why;
};

template <class F>
bool bind(void* handle, const char* name, F& f, std::string& why) {
  f = reinterpret_cast<F>(::dlsym(handle, name));
  if (!f) why = "has no " + std::string(name);
  return f != nullptr;
}

Loaded open_nccl() {
  Loaded l;
  const char* override_path = std::getenv("PINMARK_NCCL");
  l.api.library = override_path && *override_path ? override_path : "libnccl.so.2";
  // Never closed: communicators made from it live as long as their backends.
  void* handle = ::dlopen(l.api.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = ::dlerror();
    l.why = "cannot open NCCL (" + (error ? std::string(error) : l.api.library) +
            "; set PINMARK_NCCL to the path of libnccl.so.2)";
    return l;
  }
  std::string missing;
  NcclApi& a = l.api;
  if (!bind(handle, "ncclGetVersion", a.get_version, missing) ||
      !bind(handle, "ncclCommInitAll", a.comm_init_all, missing) ||
      !bind(handle, "ncclCommDestroy", a.comm_destroy, missing) ||
      !bind(handle, "ncclAllReduce", a.all_reduce, missing) ||
      !bind(handle, "ncclGroupStart", a.group_start, missing) ||
      !bind(handle, "ncclGroupEnd", a.group_end, missing) ||
      !bind(handle, "ncclGetErrorString", a.get_error_string, missing)) {
    l.why = l.api.library + " is not NCCL: it " + missing;
    return l;
  }
  int version = 0;
  if (a.get_version(&version) != ncclSuccess) {
    l.why = l.api.library + ": ncclGetVersion failed";
    return l;
  }
  // NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch since 2.9.
  a.version = std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
              std::to_string(version % 100);
  l.ok = true;
  return l;
}

}  // namespace

const NcclApi* nccl_api(std::string& why) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = open_nccl(); });
  why = loaded.why;
  return loaded.ok ? &loaded.api : nullptr;
}

void nccl_check(const NcclApi& api, ncclResult_t result, const char* call) {
  if (result == ncclSuccess) return;
  throw std::runtime_error(std::string(call) + " failed: " + api.get_error_string(result));
}
#endif

}  // namespace pinmark
