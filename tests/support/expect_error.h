// Checks that a call throws std::runtime_error with a message holding what a user needs:
// every one of `parts`, and none of `absent`.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pinmark::test {

inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts,
                         const std::vector<std::string>& absent = {}) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(message.find(p), std::string::npos)
          << "message lacks \"" << p << "\":\n  " << message;
    for (const std::string& p : absent)
      EXPECT_EQ(message.find(p), std::string::npos)
          << "message has \"" << p << "\":\n  " << message;
    return;
  }
  ADD_FAILURE() << "no std::runtime_error thrown";
}

}  // namespace pinmark::test
