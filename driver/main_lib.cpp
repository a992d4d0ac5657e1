// The pinmark::main library: a main() that runs the `pinmark` command line with the plug-in
// targets the executable registers in pinmark::register_plugins() (driver/plugin.h), as
// gtest_main runs the tests an executable defines.
#include <iostream>
#include <string>
#include <vector>

#include "driver/allocator.h"
#include "driver/plugin.h"

int main(int argc, char** argv) {
  pinmark::keep_freed_memory();
  return pinmark::run_with_plugins(pinmark::register_plugins,
                                   std::vector<std::string>(argv + 1, argv + argc), std::cin,
                                   std::cout, std::cerr);
}
