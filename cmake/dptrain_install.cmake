# `cmake --install`: dptrain's headers, libraries, the dptrain executable and a dptrain package for find_package.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DPTRAIN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/dptrain"
    CACHE STRING "Where the dptrain package files go, relative to the install prefix")
set(dptrain_libraries core kernels distributed data checkpoint tracking train cli)

# Headers include each other by folder ("core/check.h"), so each folder keeps its name under include/dptrain.
foreach(library IN LISTS dptrain_libraries)
  file(GLOB headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${library}/*.h")
  install(FILES ${headers} DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/dptrain/${library}")
  set_target_properties(dptrain_${library} PROPERTIES EXPORT_NAME ${library})
endforeach()

# dptrain::core puts the source tree on its users' include path (every other library links it); installed,
# include/dptrain takes its place.
get_target_property(core_include_dirs dptrain_core INTERFACE_INCLUDE_DIRECTORIES)
list(REMOVE_ITEM core_include_dirs "${PROJECT_SOURCE_DIR}")
list(APPEND core_include_dirs "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>"
     "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/dptrain>")
set_property(TARGET dptrain_core PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${core_include_dirs}")
# dptrain's headers are C++17; a user's project, unlike dptrain's own, may not ask for it.
target_compile_features(dptrain_core INTERFACE cxx_std_17)

# The libraries are static, so their private dependencies stay in their link interface as $<LINK_ONLY:...>: a
# user links them, but none of their include paths, definitions or options (dptrain::warnings' included) reach
# the user's compile line. The interface targets of dptrain_deps.cmake are exported for that reason.
set_target_properties(dptrain_torch PROPERTIES EXPORT_NAME torch)
set_target_properties(dptrain_hdf5 PROPERTIES EXPORT_NAME hdf5)
set_target_properties(dptrain_warnings PROPERTIES EXPORT_NAME warnings)
list(TRANSFORM dptrain_libraries PREPEND dptrain_ OUTPUT_VARIABLE library_targets)
install(TARGETS ${library_targets} dptrain_torch dptrain_hdf5 dptrain_warnings EXPORT dptrainTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(EXPORT dptrainTargets NAMESPACE dptrain:: DESTINATION "${DPTRAIN_INSTALL_CMAKEDIR}")

# The installed executable keeps the build's run path to the libraries it links (CUDA and NCCL are often outside
# the loader's default paths).
set_target_properties(dptrain PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS dptrain RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

configure_package_config_file(cmake/dptrainConfig.cmake.in "${PROJECT_BINARY_DIR}/dptrainConfig.cmake"
                              INSTALL_DESTINATION "${DPTRAIN_INSTALL_CMAKEDIR}")
# 0.x releases change the API between minor versions, so only the same minor version is compatible.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/dptrainConfigVersion.cmake" COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/dptrainConfig.cmake" "${PROJECT_BINARY_DIR}/dptrainConfigVersion.cmake"
        DESTINATION "${DPTRAIN_INSTALL_CMAKEDIR}")
