# What a portable build (NEGTEMP_PORTABLE, cmake/llama_options.cmake) installs
# beside the extension: llama.cpp's and ggml's shared libraries and ggml's
# backends, all in negtemp/bin. ggml looks for its backends in the directory of
# the executable (llama-server's) or in the one it is given (the extension's
# bin/, src/native/backends.cpp); the libraries find each other by their own
# location ($ORIGIN; @loader_path on macOS).
if(APPLE)
  set(negtemp_origin "@loader_path")
else()
  set(negtemp_origin "$ORIGIN")
endif()
set_target_properties(_native PROPERTIES INSTALL_RPATH "${negtemp_origin}/bin")

set(negtemp_shared llama ggml ggml-base llama-common mtmd llama-server-impl llama-server)
# every backend ggml built (CPU variants, RPC, a GPU's), except the variant
# with AMX, kept out as in a native build (cmake/amx.cmake): on a machine that
# reports AMX it would be the one chosen
set(negtemp_backends "")
foreach(backend ${GGML_AVAILABLE_BACKENDS})
  if(TARGET ${backend} AND (NEGTEMP_AMX OR NOT backend STREQUAL "ggml-cpu-sapphirerapids"))
    list(APPEND negtemp_backends ${backend})
  endif()
endforeach()

set_target_properties(${negtemp_shared} ${negtemp_backends} PROPERTIES INSTALL_RPATH "${negtemp_origin}")
list(REMOVE_ITEM negtemp_shared llama-server)  # installed with the extension (CMakeLists.txt)
foreach(lib ${negtemp_shared})
  # unversioned: a wheel cannot hold the libfoo.so -> libfoo.so.0 symlinks, only copies
  set_property(TARGET ${lib} PROPERTY VERSION)
  set_property(TARGET ${lib} PROPERTY SOVERSION)
endforeach()
install(TARGETS ${negtemp_shared} ${negtemp_backends} LIBRARY DESTINATION negtemp/bin)
