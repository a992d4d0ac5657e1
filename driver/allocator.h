// How a pinmark process asks the C library's allocator to keep the memory it frees.
#pragma once

namespace pinmark {

// A forward pass allocates its activations afresh for every op and frees them after (tensors
// of kilobytes to tens of megabytes, see runtime/tensor.h), and a case runs many forward passes
// (the oracle, its perturbed runs, every target twice). glibc's allocator gives blocks of 128 KB
// and more back to the system when they are freed and maps them again, zeroed, when they are
// asked for: a page fault per 4 KB every time. This keeps blocks up to 32 MB (the largest
// mmap threshold glibc allows) in the heap and never trims it, so a freed block is reused as
// it is: `pinmark run` on the shipped cases took a third of the time on a 2-core machine
// (docs/performance.md). Peak memory is unchanged; the process keeps its peak until it exits.
// Does nothing where the C library is not glibc. Call once, before any work.
void keep_freed_memory();

}  // namespace pinmark
