// How numbers are printed in goldens. Six significant digits show any change a reviewer should
// see and are few enough to be the same on every machine; exact bits are pinned by digests.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

constexpr int kPrintedDigits = 6;

// "%.6g", with -0 printed as 0 and non-finite values as nan / inf / -inf.
std::string format_value(double value);

// A metric rounded up to one of 1, 2, 5 x 10^k ("2e-07"), so that noise below a bucket does not
// move a golden but a real change of precision does. 0 prints as "0".
std::string format_bucket(double value);

// A tolerance, with two significant digits ("3.1e-05"): it is computed, not measured, so it is
// the same everywhere.
std::string format_tolerance(double value);

// Space-separated values.
std::string format_values(const std::vector<double>& values);

}  // namespace pinmark
