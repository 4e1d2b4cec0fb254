# Add a llama.cpp tree as a subproject that builds the static llama and ggml
# libraries and, with SERVER, llama-server (with llama.cpp's common library and
# the multimodal library it links); no tests, examples or other tools unless a
# requested target needs them (the subproject is EXCLUDE_FROM_ALL). Shared by
# the extension's CMakeLists.txt and scripts/verify/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/amx.cmake)
function(negtemp_add_llama llama_dir)
  cmake_parse_arguments(PARSE_ARGV 1 arg "SERVER" "" "")
  set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
  foreach(opt LLAMA_BUILD_TESTS LLAMA_BUILD_EXAMPLES LLAMA_BUILD_APP LLAMA_OPENSSL GGML_BUILD_TESTS
              GGML_BUILD_EXAMPLES
              # the server's web UI: built with npm or downloaded from a model hub, neither of
              # which this project may use; the server runs without it (README, "Serve")
              LLAMA_BUILD_UI LLAMA_USE_PREBUILT_UI)
    set(${opt} OFF CACHE BOOL "" FORCE)
  endforeach()
  foreach(opt LLAMA_BUILD_COMMON LLAMA_BUILD_TOOLS LLAMA_BUILD_SERVER)
    set(${opt} ${arg_SERVER} CACHE BOOL "" FORCE)
  endforeach()
  # the RPC backend, for models split over other machines (README, "Past one
  # machine"); on unless CMAKE_ARGS says -DGGML_RPC=OFF
  set(GGML_RPC ON CACHE BOOL "ggml's RPC backend")
  # Patch 0009 makes an RPC fault a C++ exception, which unwinds through
  # ggml's C allocator (ggml-alloc.c) on its way to llama.cpp's handlers.
  string(APPEND CMAKE_C_FLAGS " -fexceptions")
  add_subdirectory("${llama_dir}" llama EXCLUDE_FROM_ALL SYSTEM)
endfunction()
