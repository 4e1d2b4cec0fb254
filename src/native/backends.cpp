#include "backends.hpp"

#include "ggml-cpu.h"
#include "ggml-rpc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace negtemp {

namespace {

#ifdef GGML_BACKEND_DL
namespace fs = std::filesystem;

// The shared library that holds `address` (this module, a loaded backend); empty if unknown.
fs::path library_of(const void * address) {
    Dl_info info{};
    return address && dladdr(address, &info) && info.dli_fname ? fs::path(info.dli_fname) : fs::path();
}
#endif

ggml_backend_reg_t cpu_reg() {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev) {
        throw std::runtime_error("ggml has no CPU backend loaded: reinstall negtemp");
    }
    return ggml_backend_dev_backend_reg(dev);
}

template <class F> F cpu_function(const char * name) {
    auto * f = reinterpret_cast<F>(ggml_backend_reg_get_proc_address(cpu_reg(), name));
    if (!f) {
        throw std::runtime_error(std::string("ggml's CPU backend does not offer ") + name + ": reinstall negtemp");
    }
    return f;
}

#ifdef GGML_BACKEND_DL
std::string variants_in(const fs::path & dir) {
    std::string names;
    std::error_code ec;
    for (const auto & entry : fs::directory_iterator(dir, ec)) {
        const std::string file = entry.path().filename().string();
        if (file.rfind("libggml-cpu-", 0) == 0 && entry.path().extension() == ".so") {
            names += (names.empty() ? "" : ", ") + file.substr(12, file.size() - 15);
        }
    }
    return names.empty() ? "none" : names;
}

// The variant named, and every backend that is not a CPU variant (RPC, a GPU's).
void load_forced(const fs::path & dir, const std::string & variant) {
    const fs::path cpu = dir / ("libggml-cpu-" + variant + ".so");
    const std::string setting = "NEGTEMP_CPU_VARIANT=" + variant + ": ";
    if (!fs::exists(cpu)) {
        throw std::runtime_error(setting + "no such CPU variant in " + dir.string() + " (it has: " + variants_in(dir) +
                                 "); unset it to load the best variant for this CPU");
    }
    if (!ggml_backend_load(cpu.c_str())) {
        throw std::runtime_error(setting + "this CPU lacks an instruction set that variant needs; name a lower one (" +
                                 variants_in(dir) + ") or unset it");
    }
    std::error_code ec;
    for (const auto & entry : fs::directory_iterator(dir, ec)) {
        const std::string file = entry.path().filename().string();
        if (file.rfind("libggml-", 0) == 0 && entry.path().extension() == ".so" &&
            file.rfind("libggml-cpu-", 0) != 0 && file != "libggml-base.so") {
            ggml_backend_load(entry.path().c_str());
        }
    }
}
#endif

}  // namespace

#ifdef GGML_BACKEND_DL
void load_backends() {
    const fs::path self = library_of(reinterpret_cast<const void *>(&load_backends));
    if (self.empty()) {
        throw std::runtime_error("negtemp could not find its own directory to load ggml's backends from");
    }
    const std::string dir = (self.parent_path() / "bin").string();
    const char * forced = std::getenv("NEGTEMP_CPU_VARIANT");
    const std::string cpu_variant = forced ? forced : "";
    if (cpu_variant.empty()) {
        // only this directory: ggml's default search would also try the working directory
        ggml_backend_load_all_from_path(dir.c_str());
    } else {
        load_forced(dir, cpu_variant);
    }
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
        throw std::runtime_error("none of the CPU backends in " + dir + " (" + variants_in(dir) +
                                 ") runs on this CPU, or they are missing: reinstall negtemp");
    }
}

std::string cpu_backend_description() {
    const fs::path variant = library_of(ggml_backend_reg_get_proc_address(cpu_reg(), "ggml_backend_set_n_threads"));
    return variant.empty() ? "a CPU variant loaded at run time (its file is unknown)"
                           : variant.filename().string() + ", loaded at run time";
}
#else
void load_backends() {
    const char * forced = std::getenv("NEGTEMP_CPU_VARIANT");
    if (forced && *forced) {
        throw std::runtime_error("NEGTEMP_CPU_VARIANT is set, but this negtemp was built with one CPU backend, "
                                 "not variants to choose from (a portable build has them); unset it");
    }
}

std::string cpu_backend_description() {
#ifdef NEGTEMP_NATIVE_BUILD
    return "linked in, built for the CPU it was compiled on (-march=native)";
#else
    return "linked in, built for the compiler's default target";
#endif
}
#endif

ggml_threadpool * threadpool_new(ggml_threadpool_params * params) {
    static auto * fn = cpu_function<decltype(&ggml_threadpool_new)>("ggml_threadpool_new");
    return fn(params);
}

void threadpool_free(ggml_threadpool * pool) {
    static auto * fn = cpu_function<decltype(&ggml_threadpool_free)>("ggml_threadpool_free");
    fn(pool);
}

void set_cpu_threads(ggml_backend_t backend, int n_threads) {
    if (ggml_backend_dev_type(ggml_backend_get_device(backend)) != GGML_BACKEND_DEVICE_TYPE_CPU) {
        return;
    }
    static auto * fn = cpu_function<ggml_backend_set_n_threads_t>("ggml_backend_set_n_threads");
    fn(backend, n_threads);
}

const RpcApi * rpc_api() {
#if !defined(NEGTEMP_RPC)
    return nullptr;
#elif !defined(GGML_BACKEND_DL)
    static const RpcApi api{ggml_backend_rpc_add_server, ggml_backend_rpc_set_timeout, ggml_backend_rpc_get_fault,
                            ggml_backend_rpc_start_server};
    return &api;
#else
    // the loaded module's own exports: its registry offers only two of these four
    static const RpcApi * api = []() -> const RpcApi * {
        ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
        const fs::path module =
            library_of(reg ? ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server") : nullptr);
        void * lib = module.empty() ? nullptr : dlopen(module.c_str(), RTLD_NOW | RTLD_NOLOAD);  // already open
        if (!lib) {
            return nullptr;
        }
        static RpcApi found{
            reinterpret_cast<decltype(RpcApi::add_server)>(dlsym(lib, "ggml_backend_rpc_add_server")),
            reinterpret_cast<decltype(RpcApi::set_timeout)>(dlsym(lib, "ggml_backend_rpc_set_timeout")),
            reinterpret_cast<decltype(RpcApi::get_fault)>(dlsym(lib, "ggml_backend_rpc_get_fault")),
            reinterpret_cast<decltype(RpcApi::start_server)>(dlsym(lib, "ggml_backend_rpc_start_server"))};
        if (!found.add_server || !found.set_timeout || !found.get_fault || !found.start_server) {
            return nullptr;
        }
        return &found;
    }();
    return api;
#endif
}

}  // namespace negtemp
