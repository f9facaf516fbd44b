# Helpers for the top-level superbuild (CMakeLists.txt): locate the LAMMPS CMake project, ask the venv's
# Python where its packages go, and collect the LAMMPS options a user gave on our command line.

# lp_find_lammps_cmake_dir(<source dir> <out cmake dir> <out top dir>)
# Accepts the top of a LAMMPS tree or its cmake/ folder, because both are what people call "the source".
function(lp_find_lammps_cmake_dir src out_cmake out_top)
  if(NOT src)
    message(FATAL_ERROR "LAMMPS_SOURCE_DIR is not set: pass -DLAMMPS_SOURCE_DIR=/path/to/lammps "
                        "(a release tarball from https://www.lammps.org/download.html, or `apt-get source lammps`; "
                        "scripts/build_lammps.sh fetches it for you)")
  endif()
  get_filename_component(src "${src}" ABSOLUTE)
  if(EXISTS "${src}/cmake/CMakeLists.txt" AND EXISTS "${src}/src/version.h")
    set(top "${src}")
  elseif(EXISTS "${src}/CMakeLists.txt" AND EXISTS "${src}/../src/version.h")
    get_filename_component(top "${src}/.." ABSOLUTE)
  else()
    message(FATAL_ERROR "LAMMPS_SOURCE_DIR=${src} is not a LAMMPS source tree (no cmake/CMakeLists.txt and "
                        "src/version.h): point it at the unpacked release")
  endif()
  set(${out_cmake} "${top}/cmake" PARENT_SCOPE)
  set(${out_top} "${top}" PARENT_SCOPE)
endfunction()

# lp_python_site_packages(<python> <out var>): the venv's purelib, where `import lammps` must resolve first.
function(lp_python_site_packages python out)
  execute_process(COMMAND "${python}" -c "import sysconfig; print(sysconfig.get_path('purelib'))"
                  OUTPUT_VARIABLE site OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(rc OR NOT site)
    message(FATAL_ERROR "${python} could not report its site-packages (rc ${rc}): is it a working venv?")
  endif()
  set(${out} "${site}" PARENT_SCOPE)
endfunction()

# lp_collect_passthrough_args(<out list>): every cache variable that looks like a LAMMPS build option
# (packages, GPU/KOKKOS/CUDA settings, compilers, FFT, downloads) becomes -DNAME[:TYPE]=VALUE for LAMMPS.
# A list value (a;b) is written a|b, which ExternalProject's LIST_SEPARATOR turns back into a;b.
function(lp_collect_passthrough_args out)
  set(pattern "^(PKG_|GPU_|Kokkos_|KOKKOS_|CUDA|CMAKE_CUDA|CMAKE_CXX_COMPILER$|CMAKE_C_COMPILER$|CMAKE_CXX_FLAGS|CMAKE_BUILD_TYPE$|BUILD_OMP$|BUILD_TOOLS$|BUILD_LAMMPS_SHELL$|FFT|DOWNLOAD_|LAMMPS_SIZES$|LAMMPS_MEMALIGN$|WITH_|MPI_|HIP_|OpenMP_)")
  get_cmake_property(vars CACHE_VARIABLES)
  set(args "")
  foreach(var IN LISTS vars)
    if(var MATCHES "${pattern}" AND NOT "${${var}}" STREQUAL "")
      get_property(type CACHE "${var}" PROPERTY TYPE)
      string(REPLACE ";" "|" value "${${var}}")
      if(type STREQUAL "UNINITIALIZED" OR type STREQUAL "INTERNAL" OR type STREQUAL "STATIC")
        list(APPEND args "-D${var}=${value}")
      else()
        list(APPEND args "-D${var}:${type}=${value}")
      endif()
    endif()
  endforeach()
  set(${out} "${args}" PARENT_SCOPE)
endfunction()
