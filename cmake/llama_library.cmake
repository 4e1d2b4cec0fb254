# Add a llama.cpp tree as a subproject that builds only the static llama and
# ggml libraries (no common, tools, tests, examples or server). Shared by the
# extension's CMakeLists.txt and scripts/verify/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/amx.cmake)
function(negtemp_add_llama llama_dir)
  set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
  foreach(opt LLAMA_BUILD_COMMON LLAMA_BUILD_TESTS LLAMA_BUILD_TOOLS LLAMA_BUILD_EXAMPLES
              LLAMA_BUILD_SERVER LLAMA_BUILD_APP LLAMA_OPENSSL GGML_BUILD_TESTS GGML_BUILD_EXAMPLES)
    set(${opt} OFF CACHE BOOL "" FORCE)
  endforeach()
  add_subdirectory("${llama_dir}" llama EXCLUDE_FROM_ALL SYSTEM)
endfunction()
