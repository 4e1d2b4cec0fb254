# Add a llama.cpp tree as a subproject that builds the static llama and ggml
# libraries and, with SERVER, llama-server (with llama.cpp's common library and
# the multimodal library it links); no tests, examples or other tools unless a
# requested target needs them (the subproject is EXCLUDE_FROM_ALL). Shared by
# the extension's CMakeLists.txt and scripts/verify/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/llama_options.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/amx.cmake)
function(negtemp_add_llama llama_dir)
  cmake_parse_arguments(PARSE_ARGV 1 arg "SERVER" "" "")
  foreach(opt LLAMA_BUILD_COMMON LLAMA_BUILD_TOOLS LLAMA_BUILD_SERVER)
    set(${opt} ${arg_SERVER} CACHE BOOL "" FORCE)
  endforeach()
  # Patch 0009 makes an RPC fault a C++ exception, which unwinds through
  # ggml's C allocator (ggml-alloc.c) on its way to llama.cpp's handlers.
  string(APPEND CMAKE_C_FLAGS " -fexceptions")
  add_subdirectory("${llama_dir}" llama EXCLUDE_FROM_ALL SYSTEM)
  # Patches 0010 and 0011 have llama-server check requests by negtemp's sampling rules and mirror
  # its repeat penalty at T < 0: their files include negtemp's own headers (sampling_rules.hpp,
  # chain.hpp), the one copy of those rules.
  foreach(target llama-common server-context)
    if(TARGET ${target})
      target_include_directories(${target} PRIVATE "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../src/native")
    endif()
  endforeach()
endfunction()
