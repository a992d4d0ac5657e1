#include "driver/allocator.h"

#include <cstdlib>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pinmark {

void keep_freed_memory() {
#if defined(__GLIBC__)
  // mallopt fails (returns 0) only for values out of its range; either way the process runs, at
  // the default allocator's speed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace pinmark
