# Warning flags and sanitizers, applied per target (no directory-wide flags).
function(iotbridge_target_defaults target)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(IOTBRIDGE_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  if(IOTBRIDGE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${IOTBRIDGE_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${IOTBRIDGE_SANITIZE})
    # GCC 12 reports false "maybe-uninitialized" inside libstdc++ (std::regex,
    # std::function) when instrumented; the plain -Werror build keeps the check.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()
