# `cmake --install <build> --prefix P`: the pinmark command, the libraries, the public headers
# and a CMake package, so that another project can
#
#   find_package(pinmark CONFIG REQUIRED)
#   target_link_libraries(my_pinmark PRIVATE pinmark::main my_kernels)
#
# Imported targets: pinmark::runtime (the reference runtime), pinmark::driver (case files,
# plug-in targets), pinmark::main (a main() running the pinmark command line with the
# executable's plug-in targets), pinmark::cuda (the CUDA backend, when built) and the
# executable pinmark::pinmark. Headers go to P/include/pinmark, included as "runtime/backend.h"
# and "driver/plugin.h", as inside this repository. See docs/plugins.md.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PINMARK_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/pinmark")
set(PINMARK_INSTALL_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}/pinmark")

set(pinmark_installed_libraries pinmark_runtime pinmark_driver pinmark_main)
if(PINMARK_WITH_CUDA)
  list(APPEND pinmark_installed_libraries pinmark_cuda)
endif()
foreach(library IN LISTS pinmark_installed_libraries)
  # The libraries' CMakeLists give the source tree as their public include folder; installed,
  # it is the include folder of the prefix. The build's own include folders are unchanged.
  get_target_property(includes ${library} INTERFACE_INCLUDE_DIRECTORIES)
  if(includes)
    set_target_properties(${library} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
      "$<BUILD_INTERFACE:${includes}>;$<INSTALL_INTERFACE:${PINMARK_INSTALL_INCLUDEDIR}>")
  endif()
  string(REPLACE "pinmark_" "" export_name ${library})
  set_target_properties(${library} PROPERTIES EXPORT_NAME ${export_name})
endforeach()

install(TARGETS pinmark ${pinmark_installed_libraries}
  EXPORT pinmarkTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

# The runtime's headers (Backend, Target, tensors, models), and the driver's that a plug-in
# needs: plugin.h and the command line that pinmark::main runs.
install(DIRECTORY runtime/ DESTINATION ${PINMARK_INSTALL_INCLUDEDIR}/runtime
  FILES_MATCHING PATTERN "*.h")
install(FILES driver/plugin.h driver/command_line.h
  DESTINATION ${PINMARK_INSTALL_INCLUDEDIR}/driver)

install(EXPORT pinmarkTargets NAMESPACE pinmark:: DESTINATION ${PINMARK_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/pinmarkConfig.cmake.in
  "${PROJECT_BINARY_DIR}/pinmarkConfig.cmake"
  INSTALL_DESTINATION ${PINMARK_INSTALL_CMAKEDIR})
# 0.x: a minor version may change the plug-in API.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/pinmarkConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/pinmarkConfig.cmake"
  "${PROJECT_BINARY_DIR}/pinmarkConfigVersion.cmake"
  DESTINATION ${PINMARK_INSTALL_CMAKEDIR})
