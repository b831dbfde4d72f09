# oplogDeps.cmake — finds a C dependency of oplog as the imported target
# PkgConfig::<prefix>, the name the build links (and the CMake package's
# oplog::oplog_static refers to). pkg-config first; when it is missing or
# does not know the package, find_path / find_library, with the hints
# <prefix>_INCDIR and <prefix>_LIBDIR (the variables LuaRocks gives for an
# external dependency) and the usual CMAKE_PREFIX_PATH.
# Used by CMakeLists.txt and installed beside oplogConfig.cmake.
include_guard(GLOBAL)

function(oplog_find_dependency prefix pcname header library)
  if(TARGET PkgConfig::${prefix})
    return()
  endif()
  if(NOT ${prefix}_INCDIR AND NOT ${prefix}_LIBDIR)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${pcname})
      if(TARGET PkgConfig::${prefix})
        return()
      endif()
    endif()
  endif()
  find_path(OPLOG_${prefix}_INCLUDE_DIR ${header} HINTS ${${prefix}_INCDIR})
  find_library(OPLOG_${prefix}_LIBRARY ${library} HINTS ${${prefix}_LIBDIR})
  mark_as_advanced(OPLOG_${prefix}_INCLUDE_DIR OPLOG_${prefix}_LIBRARY)
  if(OPLOG_${prefix}_INCLUDE_DIR AND OPLOG_${prefix}_LIBRARY)
    add_library(PkgConfig::${prefix} INTERFACE IMPORTED)
    set_target_properties(PkgConfig::${prefix} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${OPLOG_${prefix}_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${OPLOG_${prefix}_LIBRARY}")
  endif()
endfunction()
