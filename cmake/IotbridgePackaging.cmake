# The Debian package: `cpack -G DEB` in a build tree makes iotbridge_<version>_<arch>.deb
# with the static library, headers, CMake config and pkg-config file (the
# install rules of IotbridgeInstall.cmake and cli/), plus what only a package
# needs: man pages for the three CLIs, the recorder's systemd unit and an
# example environment file. The package installs under /usr whatever
# CMAKE_INSTALL_PREFIX the tree was configured with (the CMake config and the
# .pc file are relocatable); the unit's ExecStart names /usr/bin/iotbridge-sub.
#
# Man pages come from each tool's --help through help2man (Debian's), so they
# cannot drift from the flags; packaging/man/<tool>.h2m adds the sections
# --help does not have (environment, exit status, see also).
if(NOT IOTBRIDGE_INSTALL)
  return()
endif()
include(GNUInstallDirs)

set(IOTBRIDGE_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit goes, relative to the install prefix")
set(IOTBRIDGE_PACKAGE_MAINTAINER "iotbridge developers <iotbridge-dev@example.org>" CACHE STRING
    "Maintainer field of the Debian package")

# ---- man pages (help2man) ----
if(IOTBRIDGE_BUILD_CLI)
  option(IOTBRIDGE_MAN_PAGES "Generate man pages for the CLIs with help2man" ON)
endif()
if(IOTBRIDGE_BUILD_CLI AND IOTBRIDGE_MAN_PAGES)
  find_program(IOTBRIDGE_HELP2MAN help2man)
  find_program(IOTBRIDGE_GZIP gzip)
  if(NOT IOTBRIDGE_HELP2MAN OR NOT IOTBRIDGE_GZIP)
    message(FATAL_ERROR "help2man (and gzip) make the CLIs' man pages from their --help, and were not found. "
                        "Install them with scripts/install-deps (apt-get install help2man), or configure with "
                        "-DIOTBRIDGE_MAN_PAGES=OFF to build without man pages (the .deb then has none).")
  endif()
  set(iotbridge_man_dir ${PROJECT_BINARY_DIR}/man)
  set(iotbridge_man_pages)
  set(iotbridge_man_name_iotbridge-pub "publish MQTT messages or simulated sensor readings (mosquitto_pub compatible)")
  set(iotbridge_man_name_iotbridge-sub "subscribe to MQTT topics and print or record the messages (mosquitto_sub compatible)")
  set(iotbridge_man_name_iotbridge-db "list, query and change the documents of an iotbridge store")
  set(iotbridge_man_name_iotbridge-recorder "record MQTT readings into a document store, as a TOML file configures")
  foreach(tool iotbridge-pub iotbridge-sub iotbridge-db iotbridge-recorder)
    if(NOT TARGET ${tool})
      continue()
    endif()
    set(help_option --help)
    if(tool STREQUAL "iotbridge-db")
      set(help_option --help-all)  # every verb's positionals and options, not just the verb list
    endif()
    set(include_file ${PROJECT_SOURCE_DIR}/packaging/man/${tool}.h2m)
    # The version is given, not asked for: the tools have no --version flag.
    add_custom_command(
      OUTPUT ${iotbridge_man_dir}/${tool}.1.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${iotbridge_man_dir}
      COMMAND ${IOTBRIDGE_HELP2MAN} --no-info --no-discard-stderr --help-option=${help_option}
              --version-string=${PROJECT_VERSION} --name=${iotbridge_man_name_${tool}}
              --include=${include_file} --output=${iotbridge_man_dir}/${tool}.1 $<TARGET_FILE:${tool}>
      COMMAND ${IOTBRIDGE_GZIP} -9nf ${iotbridge_man_dir}/${tool}.1
      DEPENDS ${tool} ${include_file}
      COMMENT "help2man ${tool}"
      VERBATIM)
    list(APPEND iotbridge_man_pages ${iotbridge_man_dir}/${tool}.1.gz)
  endforeach()
  add_custom_target(iotbridge_man_pages ALL DEPENDS ${iotbridge_man_pages})
  install(FILES ${iotbridge_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

# ---- the recorder as a service (it runs iotbridge-sub) ----
if(IOTBRIDGE_BUILD_CLI)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/iotbridge-recorder@.service
          DESTINATION ${IOTBRIDGE_SYSTEMD_UNIT_DIR})
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/example.env DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
          RENAME recorder.env)
endif()
# ---- iotbridge-recorder as a service: its unit and /etc/iotbridge/recorder.toml ----
if(TARGET iotbridge-recorder)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/iotbridge-recorder.service
          DESTINATION ${IOTBRIDGE_SYSTEMD_UNIT_DIR})
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/config/recorder.toml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
  install(FILES ${PROJECT_SOURCE_DIR}/docs/recorder-config.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/grafana/iotbridge-recorder.json
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/grafana)
  # The example configuration goes where the unit reads it: /etc/iotbridge for
  # a /usr prefix (the .deb, where it is a conffile), PREFIX/etc/iotbridge for
  # any other (cmake --install --prefix /opt/x never writes to /etc). Decided
  # at install time, because cpack installs with its own prefix.
  install(CODE "
    if(CMAKE_INSTALL_PREFIX MATCHES \"/usr/?$\")
      string(REGEX REPLACE \"/usr/?$\" \"/etc/iotbridge\" iotbridge_etc \"\${CMAKE_INSTALL_PREFIX}\")
    else()
      set(iotbridge_etc \"\${CMAKE_INSTALL_PREFIX}/etc/iotbridge\")
    endif()
    file(INSTALL \"${PROJECT_SOURCE_DIR}/packaging/config/recorder.toml\" DESTINATION \"\${iotbridge_etc}\")")
endif()
install(FILES ${PROJECT_SOURCE_DIR}/docs/operating.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

# A stripped install (cpack below, cmake --install --strip) strips the tools;
# CMake leaves a static library alone, whose debug sections are 9/10 of it.
# --strip-debug keeps the symbol table, so it still links.
foreach(target IN LISTS iotbridge_component_targets)
  get_target_property(iotbridge_library_type ${target} TYPE)
  if(iotbridge_library_type STREQUAL "STATIC_LIBRARY" AND CMAKE_STRIP)
    install(CODE "
      if(CMAKE_INSTALL_DO_STRIP)
        set(lib \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/$<TARGET_FILE_NAME:${target}>\")
        execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug \"\${lib}\" RESULT_VARIABLE status)
        if(status)
          message(FATAL_ERROR \"strip --strip-debug \${lib} failed\")
        endif()
      endif()")
  endif()
endforeach()

# ---- CPack: one .deb (only as the top-level project: never a parent's CPack) ----
if(NOT IOTBRIDGE_IS_TOP_LEVEL)
  return()
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME iotbridge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "iotbridge")
set(CPACK_PACKAGE_CONTACT "${IOTBRIDGE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # iotbridge_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${IOTBRIDGE_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# The summary is the synopsis line; the description becomes the extended text.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MQTT readings into MongoDB or SQLite: recorder, tools, C++ library")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "iotbridge carries IoT readings from MQTT devices through a Mosquitto broker
into a document store (MongoDB, or an embedded SQLite file), without losing
what it accepted when the store, the broker or the recorder goes away.
.
This package has the command line tools iotbridge-pub, iotbridge-sub
(which records into a store with --store), iotbridge-db and
iotbridge-recorder (a service configured by /etc/iotbridge/recorder.toml,
with Prometheus metrics and reload), their man pages, the systemd units
iotbridge-recorder.service and iotbridge-recorder@.service, and the C++20 library
(static, with headers, CMake config and pkg-config file). Building against
the library also needs libmosquitto-dev, libmongoc-dev, libsqlite3-dev
and libfmt-dev.")
# Runtime dependencies from the CLIs' ELF NEEDED entries (libmosquitto1,
# libmongoc-1.0-0, libbson-1.0-0, libsqlite3-0, libfmt9, libc6, libstdc++6...).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libmosquitto-dev, libmongoc-dev, libsqlite3-dev, libfmt-dev, mosquitto")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)  # /etc/iotbridge/recorder.toml
set(CPACK_STRIP_FILES ON)  # symbols stay in the build tree; the package is 1/10 the size
include(CPack)

# ---- tests ----
if(IOTBRIDGE_BUILD_TESTS AND IOTBRIDGE_BUILD_CLI)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tests/packaging ${PROJECT_BINARY_DIR}/tests/packaging)
endif()
