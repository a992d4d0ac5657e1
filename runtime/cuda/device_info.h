// What the current CUDA device is, for the Numerics table's provenance. Plain C++: no CUDA
// headers leak out of the CUDA library.
#pragma once

#include <string>

namespace pinmark {

// True when the CUDA runtime finds at least one device (false, never an exception, on a
// machine without a GPU or without a driver).
bool cuda_device_available();

// "sm90" for compute capability 9.0: the key that GPU rows of a golden are stored under, since
// kernels and cuBLAS pick their code paths by architecture. Throws std::runtime_error when no
// device is available.
std::string cuda_device_class();

// "NVIDIA H100 80GB HBM3, compute capability 9.0, CUDA runtime 13.0, driver 13.0,
// cuBLAS 13.1.0": where a row's numbers came from. Throws std::runtime_error when no device
// is available.
std::string cuda_provenance();

}  // namespace pinmark
