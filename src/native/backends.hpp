// ggml's backends, found and called the same way in the two kinds of build:
// a native build links llama/ggml statically, with the CPU backend compiled
// for this CPU; a portable build (NEGTEMP_PORTABLE, the wheel) ships ggml as
// shared libraries and loads at run time the CPU backend variant that suits
// the CPU it runs on (GGML_BACKEND_DL). The CPU backend's and the RPC
// backend's own functions are then not linked, only looked up, so every call
// to them goes through here.
#pragma once

#include "ggml-backend.h"

#include <cstdint>
#include <string>

namespace negtemp {

// Whether ggml's backends are shared libraries loaded at run time (a portable build).
constexpr bool kPortable =
#ifdef GGML_BACKEND_DL
    true;
#else
    false;
#endif

// Makes ggml's backends available; called once, when the module is imported,
// before llama.cpp is initialised. A portable build loads them from the bin/
// directory beside the module (where llama-server looks for them too): the
// best CPU variant for this CPU, or the one $NEGTEMP_CPU_VARIANT names (e.g.
// "haswell"). Throws std::runtime_error saying what is missing or wrong.
void load_backends();

// Which CPU backend runs: in a portable build the loaded variant's file
// ("libggml-cpu-zen4.so"), else what the build targeted.
std::string cpu_backend_description();

// The CPU backend's functions (ggml-cpu.h), looked up in whichever CPU backend is loaded.
ggml_threadpool * threadpool_new(ggml_threadpool_params * params);
void threadpool_free(ggml_threadpool * pool);
void set_cpu_threads(ggml_backend_t backend, int n_threads);  // no-op for a backend that is not the CPU

// The RPC backend's functions (ggml-rpc.h, and patch 0009's); null when the
// build has no RPC backend.
struct RpcApi {
    ggml_backend_reg_t (*add_server)(const char * endpoint);
    void (*set_timeout)(uint32_t timeout_ms);
    bool (*get_fault)(const char * endpoint, char * buf, size_t buf_size);
    void (*start_server)(const char * endpoint, const char * cache_dir, size_t n_threads, size_t n_devices,
                         ggml_backend_dev_t * devices);
};
const RpcApi * rpc_api();

}  // namespace negtemp
