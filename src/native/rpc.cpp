#include "rpc.hpp"

#include "backends.hpp"
#include "errors.hpp"

#include "ggml-rpc.h"

#include <stdexcept>

namespace negtemp {

namespace {
[[noreturn]] void no_rpc() {
    throw std::invalid_argument("this build of negtemp has no RPC backend (it was built with -DGGML_RPC=OFF); "
                                "rebuild it without that option");
}

const RpcApi & rpc() {
    const RpcApi * api = rpc_api();
    if (!api) {
        no_rpc();
    }
    return *api;
}
}  // namespace

std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string> & endpoints, uint32_t timeout_ms) {
    const RpcApi & api = rpc();
    api.set_timeout(timeout_ms);
    std::vector<ggml_backend_dev_t> out;
    for (const auto & endpoint : endpoints) {
        ggml_backend_reg_t reg = nullptr;
        try {
            reg = api.add_server(endpoint.c_str());
        } catch (const ggml_backend_rpc_error & e) {
            throw RemoteFault(e.endpoint, e.what());
        }
        if (!reg) {
            throw RemoteFault(endpoint, "RPC server " + endpoint + ": it offers no devices");
        }
        for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) {
            out.push_back(ggml_backend_reg_dev_get(reg, i));
        }
    }
    std::vector<ggml_backend_dev_t> igpus;
    bool gpu = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
            out.push_back(dev);
            gpu = true;
        } else if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            igpus.push_back(dev);
        }
    }
    if (!gpu) {
        out.insert(out.end(), igpus.begin(), igpus.end());
    }
    out.push_back(nullptr);
    return out;
}

bool rpc_fault(const std::string & endpoint, std::string & why) {
    char buf[1024];
    const RpcApi * api = rpc_api();
    if (!api || !api->get_fault(endpoint.c_str(), buf, sizeof(buf))) {
        return false;
    }
    why = buf;
    return true;
}

void serve_rpc(const std::string & endpoint, const std::string & cache_dir, size_t n_threads) {
    std::vector<ggml_backend_dev_t> devices;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        const auto type = ggml_backend_dev_type(dev);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            devices.push_back(dev);
        }
    }
    if (devices.empty()) {
        devices.push_back(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
    }
    rpc().start_server(endpoint.c_str(), cache_dir.empty() ? nullptr : cache_dir.c_str(), n_threads, devices.size(),
                       devices.data());
    // ggml printed its reason on stderr
    throw std::runtime_error("the RPC server could not start at " + endpoint +
                             ": is the address this machine's, and the port free?");
}

}  // namespace negtemp
