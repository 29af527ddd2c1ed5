include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS iotbridge EXPORT iotbridgeTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/iotbridge DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(iotbridge_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/iotbridge)
get_target_property(iotbridge_type iotbridge TYPE)
set(IOTBRIDGE_STATIC_LIBRARY OFF)
if(iotbridge_type STREQUAL "STATIC_LIBRARY")
  set(IOTBRIDGE_STATIC_LIBRARY ON)
endif()

install(EXPORT iotbridgeTargets NAMESPACE iotbridge:: DESTINATION ${iotbridge_cmake_dir})
export(EXPORT iotbridgeTargets NAMESPACE iotbridge:: FILE ${PROJECT_BINARY_DIR}/iotbridgeTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/iotbridgeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/iotbridgeConfig.cmake INSTALL_DESTINATION ${iotbridge_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/iotbridgeConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/iotbridgeConfig.cmake ${PROJECT_BINARY_DIR}/iotbridgeConfigVersion.cmake
  DESTINATION ${iotbridge_cmake_dir})

# prefix relative to the .pc file itself, so that the file stays right wherever
# the tree is installed (cmake --install --prefix, the .deb's /usr).
file(RELATIVE_PATH iotbridge_pc_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" iotbridge_pc_prefix "${iotbridge_pc_prefix}")
# A static libiotbridge.a needs its C libraries on every link line, so they go
# into Requires/Libs (the README's plain `pkg-config --cflags --libs iotbridge`
# must link); a shared one keeps them private (needed only with --static).
if(IOTBRIDGE_STATIC_LIBRARY)
  set(iotbridge_pc_requires "Requires")
  set(iotbridge_pc_libs "-L\${libdir} -liotbridge -pthread")
  set(iotbridge_pc_libs_private "")
else()
  set(iotbridge_pc_requires "Requires.private")
  set(iotbridge_pc_libs "-L\${libdir} -liotbridge")
  set(iotbridge_pc_libs_private "-pthread")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/iotbridge.pc.in ${PROJECT_BINARY_DIR}/iotbridge.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/iotbridge.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
