# Installs the library (component "library"): each part's static library and
# headers, the CMake package registry (one targets file per part, loaded on
# demand by registryConfig.cmake) and a pkg-config file per part. The parts
# are static libraries, so a part's own dependencies are in its .pc's
# Requires (pkg-config --libs links them without --static) and are found by
# the CMake config when the part is asked for.
include(CMakePackageConfigHelpers)

set(REGISTRY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/registry)
set(REGISTRY_INSTALLED_PARTS ${REGISTRY_PARTS})
file(RELATIVE_PATH PC_PREFIX_FROM_PCDIR /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
set(REGISTRY_PART_TABLE)
foreach(part IN LISTS REGISTRY_PARTS)
  install(TARGETS registry_${part} EXPORT registry_${part}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT library
    FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT library)
  install(EXPORT registry_${part} NAMESPACE registry:: FILE registry-${part}-targets.cmake
    DESTINATION ${REGISTRY_CMAKE_DIR} COMPONENT library)

  get_target_property(PC_DESCRIPTION registry_${part} REGISTRY_DESCRIPTION)
  get_target_property(parts registry_${part} REGISTRY_PARTS)
  get_target_property(find_deps registry_${part} REGISTRY_FIND_DEPS)
  get_target_property(pc_requires registry_${part} REGISTRY_PC_REQUIRES)
  string(APPEND REGISTRY_PART_TABLE "set(_registry_deps_${part} ${find_deps})\nset(_registry_needs_${part} ${parts})\n")
  set(PC_PART ${part})
  list(TRANSFORM parts PREPEND registry- OUTPUT_VARIABLE pc_parts)
  list(PREPEND pc_requires ${pc_parts})
  string(REPLACE ";" ", " PC_REQUIRES "${pc_requires}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/registry-part.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/registry-${part}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/registry-${part}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT library)
endforeach()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/registryConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/registryConfig.cmake INSTALL_DESTINATION ${REGISTRY_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/registryConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/registryConfig.cmake ${PROJECT_BINARY_DIR}/cmake/registryConfigVersion.cmake
  DESTINATION ${REGISTRY_CMAKE_DIR} COMPONENT library)
