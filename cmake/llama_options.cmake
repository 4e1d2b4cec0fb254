# llama.cpp's build options for every build of the patched tree, written once.
#
# Included by llama_library.cmake (the extension's build, and the verify
# driver's) and given to cmake with -C by scripts/llama_tools.py (llama.cpp's
# own tools: llama-bench, llama-completion), so that what the benchmarks and
# checks build is what the wheel ships. The NEGTEMP_* environment variables
# set the first four (and, set, win over -D and over a build directory's
# cache); everything else may be changed with -D (CMAKE_ARGS). NEGTEMP_PORTABLE
# (below) overrides NEGTEMP_NATIVE.

function(negtemp_env_option var env default doc)
  if(DEFINED ENV{${env}})
    set(${var} "$ENV{${env}}" CACHE BOOL "${doc}" FORCE)
  else()
    set(${var} ${default} CACHE BOOL "${doc}")
  endif()
endfunction()

# pip's isolated builds would otherwise compile ggml for generic x86-64 (no
# AVX2), several times slower; NEGTEMP_NATIVE=OFF for a build to copy elsewhere
negtemp_env_option(GGML_NATIVE NEGTEMP_NATIVE ON "ggml for this CPU (-march=native)")
# ggml's own thread pool, not OpenMP: libgomp's workers hang a child forked
# after a generation, and spin against other load (README, "Threads and fork")
negtemp_env_option(GGML_OPENMP NEGTEMP_OPENMP OFF "ggml's threads from OpenMP")
# ggml's AMX kernels crash where a VM reports AMX but traps it (amx.cmake)
negtemp_env_option(NEGTEMP_AMX NEGTEMP_AMX OFF "let a native build compile ggml's AMX kernels")

# One build for every x86-64 CPU (the wheel, scripts/build_wheel.py): ggml as shared libraries, its
# CPU backend in variants for successive instruction sets, and at run time the best variant the CPU
# runs is loaded (GGML_BACKEND_DL; src/native/backends.cpp). Else llama and ggml are linked statically.
negtemp_env_option(NEGTEMP_PORTABLE NEGTEMP_PORTABLE OFF "ggml's CPU backend in variants chosen at run time")
if(NEGTEMP_PORTABLE)
  set(GGML_NATIVE OFF CACHE BOOL "" FORCE)
endif()
foreach(opt BUILD_SHARED_LIBS GGML_BACKEND_DL GGML_CPU_ALL_VARIANTS)
  set(${opt} ${NEGTEMP_PORTABLE} CACHE BOOL "" FORCE)
endforeach()
foreach(opt LLAMA_BUILD_TESTS LLAMA_BUILD_EXAMPLES LLAMA_BUILD_APP LLAMA_OPENSSL GGML_BUILD_TESTS
            GGML_BUILD_EXAMPLES
            # the server's web UI: built with npm or downloaded from a model hub, neither of
            # which this project may use; the server runs without it (README, "Serve")
            LLAMA_BUILD_UI LLAMA_USE_PREBUILT_UI)
  set(${opt} OFF CACHE BOOL "" FORCE)
endforeach()
# the RPC backend, for models split over other machines (README, "Past one
# machine"); on unless CMAKE_ARGS says -DGGML_RPC=OFF
set(GGML_RPC ON CACHE BOOL "ggml's RPC backend")
