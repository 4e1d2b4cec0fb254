// Models split over llama.cpp RPC servers, and this machine's devices served
// to such clients (negtemp rpc-server). Without GGML_RPC (-DGGML_RPC=OFF)
// both raise, saying how to rebuild.
#pragma once

#include "ggml-backend.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace negtemp {

// The devices a model split over `endpoints` loads onto: every device of each
// server, then this machine's GPUs as llama.cpp would choose them, then null
// (the CPU takes the layers not offloaded). The servers are not registered
// with ggml, so a Model made without rpc= never sees them. RemoteFault for a
// server that cannot be reached.
std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string> & endpoints, uint32_t timeout_ms);

// The fault ggml's RPC client recorded for endpoint, if any (llama.cpp's
// loader catches what the RPC backend throws, so it is looked up afterwards).
bool rpc_fault(const std::string & endpoint, std::string & why);

// ggml's RPC server over this machine's GPU devices, or its CPU when it has
// none (as llama.cpp's rpc-server chooses); returns only if it cannot start.
void serve_rpc(const std::string & endpoint, const std::string & cache_dir, size_t n_threads);

}  // namespace negtemp
