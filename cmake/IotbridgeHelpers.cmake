# Warning flags and sanitizers, applied per target (no directory-wide flags).
function(iotbridge_target_defaults target)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(IOTBRIDGE_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  # libbson declares bson_t 128-byte aligned (BSON_EXTRA_ALIGN), so clang warns
  # on every bson_t* that came from the heap (bson_new, bson_copy), which
  # libbson itself allocates with the alignment it needs. Nothing to fix on
  # our side; GCC has no such warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${target} PRIVATE -Wno-align-mismatch)
  endif()
  if(IOTBRIDGE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${IOTBRIDGE_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    # fuzzer-no-link (the libFuzzer tree) instruments for coverage only; the
    # fuzz targets themselves link -fsanitize=fuzzer (tests/fuzz).
    target_link_options(${target} PRIVATE -fsanitize=${IOTBRIDGE_SANITIZE})
    # GCC 12 reports false "maybe-uninitialized" inside libstdc++ (std::regex,
    # std::function) when instrumented; the plain -Werror build keeps the check.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()
