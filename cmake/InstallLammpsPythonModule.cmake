# Runs at `cmake --install` time, after LAMMPS's own install. Makes `import lammps` in the venv resolve to the
# module of THIS build and load THIS liblammps.so. Why: a venv with system site packages also sees Debian's
# python3-lammps, and the 2021 module, finding no liblammps.so next to itself, would dlopen("liblammps.so")
# from the system loader path, i.e. possibly another LAMMPS.
# Inputs: LP_VENV, LP_SITE_PACKAGES, LAMMPS_PYTHON_DIR, Python_EXECUTABLE.
set(_lib "${LP_VENV}/lib/liblammps.so")
if(NOT EXISTS "${_lib}")
  message(FATAL_ERROR "${_lib} was not installed: was LAMMPS built with -DBUILD_SHARED_LIBS=on and no LAMMPS_MACHINE?")
endif()
set(_pkg "${LP_SITE_PACKAGES}/lammps")

# The module of this source tree (LAMMPS's setup.py step may have skipped it or put it elsewhere).
file(REMOVE_RECURSE "${_pkg}")
file(COPY "${LAMMPS_PYTHON_DIR}/lammps" DESTINATION "${LP_SITE_PACKAGES}" PATTERN "__pycache__" EXCLUDE)
file(CREATE_LINK "${_lib}" "${_pkg}/liblammps.so" SYMBOLIC)
message(STATUS "Installing: ${_pkg} (liblammps.so -> ${_lib})")

# Package metadata, so lammps.__version__ (read with importlib.metadata) describes this build.
file(STRINGS "${LAMMPS_PYTHON_DIR}/../src/version.h" _vline REGEX "LAMMPS_VERSION")
if(NOT _vline MATCHES "\"([0-9]+) ([A-Za-z]+) ([0-9]+)\"")
  message(FATAL_ERROR "cannot read the LAMMPS version from src/version.h (${_vline})")
endif()
set(_day "${CMAKE_MATCH_1}")
set(_mon_name "${CMAKE_MATCH_2}")
set(_year "${CMAKE_MATCH_3}")
set(_months Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec)
list(FIND _months "${_mon_name}" _mon)
math(EXPR _mon "${_mon} + 1")
math(EXPR _day "${_day}")
set(_version "${_year}.${_mon}.${_day}")
file(GLOB _old_meta "${LP_SITE_PACKAGES}/lammps-*.dist-info" "${LP_SITE_PACKAGES}/lammps-*.egg-info")
if(_old_meta)
  file(REMOVE_RECURSE ${_old_meta})
endif()
set(_meta "${LP_SITE_PACKAGES}/lammps-${_version}.dist-info")
file(WRITE "${_meta}/METADATA" "Metadata-Version: 2.1\nName: lammps\nVersion: ${_version}\nSummary: LAMMPS Python module (built by lammps-phase's CMakeLists.txt)\n")
file(WRITE "${_meta}/INSTALLER" "lammps-phase-cmake\n")
file(GLOB_RECURSE _files RELATIVE "${LP_SITE_PACKAGES}" "${_pkg}/*")
list(TRANSFORM _files APPEND ",,")
list(APPEND _files "lammps-${_version}.dist-info/METADATA,," "lammps-${_version}.dist-info/INSTALLER,,"
                   "lammps-${_version}.dist-info/RECORD,,")
list(JOIN _files "\n" _record)
file(WRITE "${_meta}/RECORD" "${_record}\n")

# Prove it: the venv's Python must import this module and load this library.
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "
import os, lammps
lmp = lammps.lammps(cmdargs=['-nocite', '-log', 'none', '-screen', 'none'])
print(os.path.realpath(lammps.__file__), os.path.realpath(lmp.lib._name), lmp.has_exceptions, lammps.__version__)
lmp.close()"
  OUTPUT_VARIABLE _seen OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
get_filename_component(_want_mod "${_pkg}/__init__.py" REALPATH)
get_filename_component(_want_lib "${_lib}" REALPATH)
string(FIND "${_seen}" "${_want_mod} ${_want_lib} True" _pos)
if(_rc OR NOT _pos EQUAL 0)
  message(FATAL_ERROR "after install, ${Python_EXECUTABLE} sees '${_seen}' (rc ${_rc}); expected module "
                      "${_want_mod}, library ${_want_lib}, exceptions True: another lammps module shadows this one")
endif()
message(STATUS "Verified: import lammps -> ${_seen}")
