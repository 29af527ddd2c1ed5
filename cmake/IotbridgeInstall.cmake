include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# One export set per component, so that find_package(iotbridge COMPONENTS mqtt)
# loads the MQTT targets alone and looks for libmosquitto alone.
set(iotbridge_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/iotbridge)
set(IOTBRIDGE_STATIC_LIBRARY OFF)
get_target_property(iotbridge_type iotbridge_mqtt TYPE)
if(iotbridge_type STREQUAL "STATIC_LIBRARY")
  set(IOTBRIDGE_STATIC_LIBRARY ON)
endif()
set(IOTBRIDGE_INSTALLED_COMPONENTS)
foreach(target IN LISTS iotbridge_component_targets)
  string(REPLACE "iotbridge_" "" component ${target})
  list(APPEND IOTBRIDGE_INSTALLED_COMPONENTS ${component})
  install(TARGETS ${target} EXPORT iotbridge-${component}-targets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT iotbridge-${component}-targets NAMESPACE iotbridge:: DESTINATION ${iotbridge_cmake_dir})
  export(EXPORT iotbridge-${component}-targets NAMESPACE iotbridge::
         FILE ${PROJECT_BINARY_DIR}/iotbridge-${component}-targets.cmake)
endforeach()
# iotbridge::iotbridge: every component, as one target.
install(TARGETS iotbridge EXPORT iotbridge-all-targets)
install(EXPORT iotbridge-all-targets NAMESPACE iotbridge:: DESTINATION ${iotbridge_cmake_dir})
export(EXPORT iotbridge-all-targets NAMESPACE iotbridge:: FILE ${PROJECT_BINARY_DIR}/iotbridge-all-targets.cmake)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/iotbridge DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/iotbridgeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/iotbridgeConfig.cmake INSTALL_DESTINATION ${iotbridge_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/iotbridgeConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/iotbridgeConfig.cmake ${PROJECT_BINARY_DIR}/iotbridgeConfigVersion.cmake
  DESTINATION ${iotbridge_cmake_dir})

# pkg-config: iotbridge-mqtt.pc, iotbridge-store.pc, iotbridge-record.pc, and
# iotbridge.pc for all. prefix is relative to the .pc file itself, so that the
# files stay right wherever the tree is installed (cmake --install --prefix,
# the .deb's /usr).
file(RELATIVE_PATH iotbridge_pc_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" iotbridge_pc_prefix "${iotbridge_pc_prefix}")
# A static library needs its C libraries on every link line, so they go into
# Requires/Libs (the README's plain `pkg-config --cflags --libs iotbridge` must
# link); a shared one keeps them private (needed only with --static).
set(iotbridge_pc_requires_mqtt "libmosquitto")
set(iotbridge_pc_requires_store "iotbridge-mqtt libbson-1.0 sqlite3")
if(IOTBRIDGE_MONGODB)
  string(APPEND iotbridge_pc_requires_store " libmongoc-1.0")
endif()
set(iotbridge_pc_requires_record "iotbridge-store iotbridge-mqtt")
set(iotbridge_pc_description_mqtt "MQTT client, topics and thread helpers of iotbridge (libmosquitto only)")
set(iotbridge_pc_description_store "Document stores of iotbridge (SQLite; MongoDB when built with it)")
set(iotbridge_pc_description_record "The recorder of iotbridge (MQTT readings into a document store)")
foreach(component IN LISTS IOTBRIDGE_INSTALLED_COMPONENTS)
  set(iotbridge_pc_name iotbridge-${component})
  set(iotbridge_pc_description "${iotbridge_pc_description_${component}}")
  set(iotbridge_pc_libs "-L\${libdir} -liotbridge-${component}")
  set(iotbridge_pc_libs_private "")
  if(component STREQUAL "mqtt")
    if(IOTBRIDGE_STATIC_LIBRARY)
      string(APPEND iotbridge_pc_libs " -pthread")
    else()
      set(iotbridge_pc_libs_private "-pthread")
    endif()
  endif()
  # A component's own components are always public: their headers are its headers.
  set(iotbridge_pc_requires_lines "")
  set(c_libraries "${iotbridge_pc_requires_${component}}")
  string(REGEX MATCHALL "iotbridge-[a-z]+" own "${c_libraries}")
  string(REGEX REPLACE "iotbridge-[a-z]+ ?" "" external "${c_libraries}")
  string(STRIP "${external}" external)
  if(IOTBRIDGE_STATIC_LIBRARY)
    list(JOIN own " " own)
    set(iotbridge_pc_requires_lines "Requires: ${own} ${external}")
  else()
    list(JOIN own " " own)
    set(iotbridge_pc_requires_lines "Requires: ${own}\nRequires.private: ${external}")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/iotbridge.pc.in ${PROJECT_BINARY_DIR}/${iotbridge_pc_name}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${iotbridge_pc_name}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
# iotbridge.pc: every component built, nothing of its own.
set(iotbridge_pc_name iotbridge)
set(iotbridge_pc_description "${PROJECT_DESCRIPTION}")
set(iotbridge_pc_libs "")
set(iotbridge_pc_libs_private "")
list(REVERSE IOTBRIDGE_INSTALLED_COMPONENTS)
list(TRANSFORM IOTBRIDGE_INSTALLED_COMPONENTS PREPEND "iotbridge-" OUTPUT_VARIABLE own)
list(JOIN own " " own)
set(iotbridge_pc_requires_lines "Requires: ${own}")
list(REVERSE IOTBRIDGE_INSTALLED_COMPONENTS)
configure_file(${PROJECT_SOURCE_DIR}/cmake/iotbridge.pc.in ${PROJECT_BINARY_DIR}/iotbridge.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/iotbridge.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
