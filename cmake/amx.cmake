# Keep ggml's AMX kernels out of native builds unless NEGTEMP_AMX is ON.
#
# -march=native compiles them in wherever CPUID reports AMX, but a hypervisor
# can report AMX-INT8 and still trap its instructions: on this project's CI
# machines (Sapphire Rapids guests) TDPBSSD raises SIGILL and ggml's first
# LDTILECFG SIGSEGV, so the first Q4_0/Q4_1/Q8_0 matrix product killed the
# process. An explicit -mno-* wins over -march=native in either order.
# Included by patched_tree.cmake, so the extension and llama.cpp's tools match.
include_guard(GLOBAL)
if(NOT NEGTEMP_AMX AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$"
   AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  include(CheckCCompilerFlag)
  check_c_compiler_flag(-mno-amx-int8 NEGTEMP_CC_HAS_NO_AMX)
  if(NEGTEMP_CC_HAS_NO_AMX)
    add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
  endif()
endif()
