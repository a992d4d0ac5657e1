// keep_freed_memory() must reach glibc's allocator: a block of a few megabytes comes from the
// heap, not from a mapping of its own, and is reused in place once freed.
#include "driver/allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define PINMARK_OWN_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PINMARK_OWN_ALLOCATOR 1
#endif

TEST(Allocator, KeepsBlocksOfMegabytesInTheHeap) {
#if !defined(__GLIBC__) || defined(PINMARK_OWN_ALLOCATOR)
  GTEST_SKIP() << "not glibc's allocator";
#else
  pinmark::keep_freed_memory();
  const size_t bytes = size_t{8} << 20;  // above glibc's default 128 KB mmap threshold
  const size_t mapped_before = mallinfo2().hblks;
  void* first = std::malloc(bytes);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(mallinfo2().hblks, mapped_before) << "an 8 MB block was mapped on its own";
  std::free(first);
  void* second = std::malloc(bytes);
  EXPECT_EQ(second, first) << "the freed block was not reused";
  std::free(second);
#endif
}

}  // namespace
