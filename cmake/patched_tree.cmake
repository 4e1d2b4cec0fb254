# What a build of the patched llama.cpp tree needs beyond llama.cpp's own CMake: ggml's AMX
# kernels kept out (amx.cmake), and negtemp's native headers on the include path, since patches
# 0010 and 0011 include sampling_rules.hpp and chain.hpp (the one copy of the sampling rules) into
# llama-server and llama.cpp's common library. Included by llama_library.cmake, and by
# scripts/llama_tools.py through CMAKE_PROJECT_INCLUDE, so the extension and llama.cpp's own
# tools build the tree alike. No llama.cpp header shares a name with these.
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/amx.cmake)
include_directories(AFTER "${CMAKE_CURRENT_LIST_DIR}/../src/native")
