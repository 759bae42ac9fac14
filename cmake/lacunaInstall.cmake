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

# pkg-config, for Make and Meson users: the include path and xsimd's (header-only, so no Libs). The
# prefix is found from the file's own place, so that the install can move (cmake --install --prefix).
file(RELATIVE_PATH LACUNA_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_DATADIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" LACUNA_PC_TO_PREFIX "${LACUNA_PC_TO_PREFIX}")
configure_file(cmake/lacuna.pc.in "${PROJECT_BINARY_DIR}/lacuna.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/lacuna.pc" DESTINATION "${CMAKE_INSTALL_DATADIR}/pkgconfig")
