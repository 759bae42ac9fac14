# Finds lacuna's dependencies, or uses the targets a parent project already made (FetchContent,
# add_subdirectory). Shared by the build tree and by the installed lacunaConfig.cmake.

# Debian's xsimd (8.1) names an `xtl` link dependency that the package does not require; without a
# target of that name the linker would look for -lxtl. An empty stand-in fills in when xtl is absent.
if(NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED GLOBAL)
  endif()
endif()

if(NOT TARGET xsimd)
  find_package(xsimd REQUIRED)
endif()
# Imported targets are visible only in the directory that found them; lacuna's usage requirements
# name them from the consumer's directory too.
get_target_property(_lacuna_xsimd_imported xsimd IMPORTED)
if(_lacuna_xsimd_imported)
  set_target_properties(xsimd PROPERTIES IMPORTED_GLOBAL TRUE)
endif()

set(LACUNA_HAS_EIGEN OFF)
if(NOT DEFINED LACUNA_WITH_EIGEN OR LACUNA_WITH_EIGEN)
  if(NOT TARGET Eigen3::Eigen)
    find_package(Eigen3 3.3 QUIET NO_MODULE)
  endif()
  if(TARGET Eigen3::Eigen)
    set(LACUNA_HAS_EIGEN ON)
    get_target_property(_lacuna_eigen_imported Eigen3::Eigen IMPORTED)
    if(_lacuna_eigen_imported)
      set_target_properties(Eigen3::Eigen PROPERTIES IMPORTED_GLOBAL TRUE)
    endif()
  endif()
endif()

set(LACUNA_HAS_OPENMP OFF)
if(NOT DEFINED LACUNA_WITH_OPENMP OR LACUNA_WITH_OPENMP)
  if(NOT TARGET OpenMP::OpenMP_CXX)
    find_package(OpenMP QUIET COMPONENTS CXX)
  endif()
  if(TARGET OpenMP::OpenMP_CXX)
    set(LACUNA_HAS_OPENMP ON)
    set_target_properties(OpenMP::OpenMP_CXX PROPERTIES IMPORTED_GLOBAL TRUE)
  endif()
endif()
