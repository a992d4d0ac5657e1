#include <iostream>

#include "driver/allocator.h"
#include "driver/command_line.h"

int main(int argc, char** argv) {
  pinmark::keep_freed_memory();
  return pinmark::run_command_line(std::vector<std::string>(argv + 1, argv + argc), std::cin,
                                   std::cout, std::cerr);
}
