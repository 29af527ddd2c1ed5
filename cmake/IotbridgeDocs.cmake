# Documentation: the Doxygen API reference (a `docs` target, never built by
# default) and the tests that keep README.md and docs/cli.md true.

# ---- API reference ----
find_package(Doxygen QUIET)
if(DOXYGEN_FOUND)
  set(IOTBRIDGE_DOXYGEN_OUTPUT ${PROJECT_BINARY_DIR}/docs/api)
  configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${PROJECT_BINARY_DIR}/docs/Doxyfile @ONLY)
  add_custom_target(
    docs
    COMMAND ${DOXYGEN_EXECUTABLE} ${PROJECT_BINARY_DIR}/docs/Doxyfile
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "API reference (Doxygen) into ${IOTBRIDGE_DOXYGEN_OUTPUT}/html"
    VERBATIM)
else()
  message(STATUS "Doxygen not found: no `docs` target (apt-get install doxygen for the API reference)")
endif()

# ---- tests of the documentation (ctest -L docs) ----
if(NOT IOTBRIDGE_BUILD_TESTS OR NOT IOTBRIDGE_BUILD_CLI)
  return()
endif()

# Every ```cpp block of README.md becomes a program, built with the project's
# warnings (-Werror in CI) against iotbridge::iotbridge, so that a README that
# does not compile breaks the build. Extracted at configure time; an edit of
# README.md re-runs the configuration.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/README.md)
file(READ ${PROJECT_SOURCE_DIR}/README.md readme)
# A string walk, not a list: C++ code is full of ';' and brackets, which CMake
# lists would split or mangle.
set(iotbridge_readme_programs "")
set(index 0)
while(TRUE)
  string(FIND "${readme}" "```cpp\n" open)
  if(open EQUAL -1)
    break()
  endif()
  math(EXPR open "${open} + 7")
  string(SUBSTRING "${readme}" ${open} -1 readme)
  string(FIND "${readme}" "```" close)
  if(close EQUAL -1)
    message(FATAL_ERROR "README.md: a ```cpp block is not closed")
  endif()
  string(SUBSTRING "${readme}" 0 ${close} code)
  math(EXPR close "${close} + 3")
  string(SUBSTRING "${readme}" ${close} -1 readme)
  math(EXPR index "${index} + 1")
  set(source ${PROJECT_BINARY_DIR}/docs/readme_block_${index}.cpp)
  # Written through a temporary file so that an unchanged block is not rebuilt.
  file(WRITE ${source}.tmp "// Extracted from README.md (C++ block ${index}) by cmake/IotbridgeDocs.cmake.\n${code}")
  configure_file(${source}.tmp ${source} COPYONLY)
  add_executable(iotbridge_readme_${index} ${source})
  target_link_libraries(iotbridge_readme_${index} PRIVATE iotbridge::iotbridge)
  iotbridge_target_defaults(iotbridge_readme_${index})
  list(APPEND iotbridge_readme_programs $<TARGET_FILE:iotbridge_readme_${index}>)
endwhile()
if(index LESS 1)
  message(FATAL_ERROR "README.md has no ```cpp block: the docs:readme test needs one")
endif()

# Runs the README's C++ programs and its tested shell block against a
# Mosquitto of its own (see the script for how the port is substituted).
add_test(NAME docs:readme COMMAND bash ${PROJECT_SOURCE_DIR}/tests/docs/readme_test.sh ${PROJECT_SOURCE_DIR}
                                  $<TARGET_FILE_DIR:iotbridge-sub> ${iotbridge_readme_programs})
# docs/cli.md against each tool's --help, both ways.
add_test(NAME docs:cli_reference COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/docs/cli_reference_test.py
                                         ${PROJECT_SOURCE_DIR}/docs/cli.md $<TARGET_FILE_DIR:iotbridge-sub>)
# Every relative link in README.md and docs/*.md points at a file that exists.
add_test(NAME docs:links COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/docs/links_test.py ${PROJECT_SOURCE_DIR})
# docs/recorder-config.md against the recorder's key table (--keys), both ways.
add_test(NAME docs:recorder_keys COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/docs/recorder_keys_test.py
                                         ${PROJECT_SOURCE_DIR}/docs/recorder-config.md $<TARGET_FILE:iotbridge-recorder>)
# The Grafana dashboard and the PromQL of docs/operating.md name only metrics of the table.
add_test(NAME docs:grafana COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/docs/grafana_test.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs:readme docs:cli_reference docs:links docs:recorder_keys docs:grafana PROPERTIES LABELS docs
                     TIMEOUT 120)
