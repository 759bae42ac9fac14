# Install rules: headers, the exported target, and a package config that re-finds the dependencies
# and brings lacuna_enable_dispatch().
include(CMakePackageConfigHelpers)

set(LACUNA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/lacuna" CACHE STRING
    "Where lacunaConfig.cmake is installed (header-only: architecture independent)")

install(DIRECTORY include/lacuna DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS lacuna EXPORT lacunaTargets)
install(EXPORT lacunaTargets NAMESPACE lacuna:: DESTINATION "${LACUNA_INSTALL_CMAKEDIR}")

configure_package_config_file(cmake/lacunaConfig.cmake.in "${PROJECT_BINARY_DIR}/lacunaConfig.cmake"
  INSTALL_DESTINATION "${LACUNA_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/lacunaConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/lacunaConfig.cmake"
  "${PROJECT_BINARY_DIR}/lacunaConfigVersion.cmake"
  cmake/lacunaDependencies.cmake
  cmake/lacunaDispatch.cmake
  DESTINATION "${LACUNA_INSTALL_CMAKEDIR}")
