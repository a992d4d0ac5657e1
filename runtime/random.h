// Counter-based random numbers keyed by (seed, tensor name, element index).
//
// Every synthetic weight and input comes from here, never from std::*_distribution,
// whose output differs between standard libraries. Element i of tensor "name" is a pure
// function of (seed, name, i): the same on every machine, in any order, on any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace pinmark {

// 64-bit FNV-1a of the name; stable across platforms.
uint64_t hash_name(std::string_view name);

// The raw 64 random bits of element `index` of stream (seed, name).
uint64_t random_bits(uint64_t seed, std::string_view name, uint64_t index);

// Uniform in [-1, 1), with 53 random bits (exactly representable in fp64).
double random_uniform(uint64_t seed, std::string_view name, uint64_t index);

// `count` values uniform in [-scale, scale) (scale * random_uniform), then shifted by `offset`.
std::vector<double> random_tensor(uint64_t seed, std::string_view name, size_t count,
                                  double scale = 1.0, double offset = 0.0);

}  // namespace pinmark
