# Compiler settings shared by every mlxd target.

# A clean build is mostly the same headers (nlohmann/json, gtest, gRPC, the standard library) parsed and their
# templates instantiated and optimised once per source file; compiling each target's sources in batches of
# MLXD_UNITY_BATCH does that work once per batch and halves the CPU time of a clean build. Sources with their own
# compile options (the per-ISA kernels) are never batched; OFF gives one object per source (the dev preset
# uses it, so a source that misses an include still fails there).
option(MLXD_UNITY_BUILD "Compile each target's sources in batches (unity build)" ON)
set(MLXD_UNITY_BATCH 8 CACHE STRING "Sources per batch of a unity build")

function(mlxd_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
                                           -Wnon-virtual-dtor)
  if(MLXD_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${MLXD_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${MLXD_SANITIZE})
  endif()
  set_target_properties(${target} PROPERTIES UNITY_BUILD ${MLXD_UNITY_BUILD} UNITY_BUILD_BATCH_SIZE ${MLXD_UNITY_BATCH})
endfunction()

# A module library: public headers under include/, internals beside its sources.
function(mlxd_library target)
  add_library(${target} ${ARGN})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${PROJECT_SOURCE_DIR}/src)
  mlxd_defaults(${target})
endfunction()
