# Add a llama.cpp tree as a subproject that builds the static llama and ggml
# libraries and, with SERVER, llama-server (with llama.cpp's common library and
# the multimodal library it links); no tests, examples or other tools unless a
# requested target needs them (the subproject is EXCLUDE_FROM_ALL). Shared by
# the extension's CMakeLists.txt and scripts/verify/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/llama_options.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/patched_tree.cmake)
function(negtemp_add_llama llama_dir)
  cmake_parse_arguments(PARSE_ARGV 1 arg "SERVER" "" "")
  foreach(opt LLAMA_BUILD_COMMON LLAMA_BUILD_TOOLS LLAMA_BUILD_SERVER)
    set(${opt} ${arg_SERVER} CACHE BOOL "" FORCE)
  endforeach()
  # Patch 0009 makes an RPC fault a C++ exception, which unwinds through
  # ggml's C allocator (ggml-alloc.c) on its way to llama.cpp's handlers.
  string(APPEND CMAKE_C_FLAGS " -fexceptions")
  add_subdirectory("${llama_dir}" llama EXCLUDE_FROM_ALL SYSTEM)
  if(arg_SERVER AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    # The server's own code (HTTP, JSON, chat templates, arguments, the multimodal loader) is off
    # the hot path, which is llama's and ggml's: -O1 compiles it in 0.7 of -O3's time, the largest
    # share of an install with the server. The last -O on the command line wins.
    foreach(target llama-common llama-common-base mtmd cpp-httplib server-context llama-server-impl
                   llama-server)
      target_compile_options(${target} PRIVATE $<$<CONFIG:Release,RelWithDebInfo>:-O1>)
    endforeach()
  endif()
endfunction()
