# Compiler settings shared by every mlxd target.
function(mlxd_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
                                           -Wnon-virtual-dtor)
  if(MLXD_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${MLXD_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${MLXD_SANITIZE})
  endif()
endfunction()

# A module library: public headers under include/, internals beside its sources.
function(mlxd_library target)
  add_library(${target} ${ARGN})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${PROJECT_SOURCE_DIR}/src)
  mlxd_defaults(${target})
endfunction()
