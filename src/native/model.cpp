// Model: loading a GGUF, closing it, and what reaches it from other threads (cancel, Ctrl-C, a lost
// RPC server). Its text (tokenizing, pieces, the chat template) is model_text.cpp's, its contexts
// (the KV cache, decodes, thread pools) model_contexts.cpp's.
#include "model.hpp"

#include "chain.hpp"
#include "rpc.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <thread>

namespace negtemp {

Model::Model(const py::bytes & path_bytes, uint32_t n_ctx, int32_t n_threads, int32_t n_gpu_layers, int32_t main_gpu,
             const std::vector<std::string> & rpc, uint32_t rpc_timeout_ms, const py::int_ & prefix_slots,
             const std::string & kv_type)
    : endpoints_(rpc), n_ctx_(n_ctx), n_threads_(n_threads), kv_type_(kv_cache_type(kv_type)), cache_(0, 0) {
    const auto slots = static_cast<uint32_t>(int_in(prefix_slots, kPrefixSlots));
    const std::string path(path_bytes);
    take_log();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = n_gpu_layers;
    if (main_gpu >= 0) {
        mp.split_mode = LLAMA_SPLIT_MODE_NONE;
        mp.main_gpu = main_gpu;
    }
    std::vector<ggml_backend_dev_t> devices;
    {
        py::gil_scoped_release release;
        if (!rpc.empty()) {
            devices = rpc_devices(rpc, rpc_timeout_ms);
            mp.devices = devices.data();
        }
        model_ = llama_model_load_from_file(path.c_str(), mp);
    }
    if (!model_) {
        check_remote();
        // the caller names the file: its path need not be UTF-8
        throw std::runtime_error("llama.cpp could not load it: " + take_log());
    }
    vocab_ = llama_model_get_vocab(model_);
    for (int32_t t = 0; t < llama_vocab_n_tokens(vocab_); ++t) {
        if (llama_vocab_is_eog(vocab_, t)) {
            eog_.push_back(t);
        }
    }
    if (n_ctx_ == 0) {
        const int32_t train = llama_model_n_ctx_train(model_);
        n_ctx_ = train > 0 ? std::clamp<uint32_t>(static_cast<uint32_t>(train), 16, kDefaultCtx) : kDefaultCtx;
    }
    cache_.reset(slots, n_ctx_);
}

Model::~Model() { close(); }

void Model::close() {
    while (!live_.empty()) {
        Attachment * a = *live_.begin();
        a->release();
        live_.erase(a);
    }
    cache_.reset(0, 0);
    free_model();
}

void Model::cancel() {
    cancel_ = true;
    for (Attachment * a : live_) {
        a->cancel();
    }
}

void Model::check_interrupts() {
    if (PyErr_CheckSignals() != 0) {
        throw py::error_already_set();
    }
    if (cancel_.exchange(false)) {
        throw Cancelled("generation cancelled by Model.cancel() or Model.close() from another thread");
    }
}

void Model::lose(const std::string & endpoint, const std::string & what) {
    lost_endpoint_ = endpoint;
    lost_ = what;
    throw RemoteFault(endpoint, what);
}

// After llama.cpp returned NULL: the fault of a server of this Model, if
// one failed (llama.cpp caught what the RPC backend threw and logged it).
void Model::check_remote() {
    std::string why;
    for (const auto & endpoint : endpoints_) {
        if (rpc_fault(endpoint, why)) {
            take_log();
            lose(endpoint, "RPC server " + endpoint + ": " + why);
        }
    }
}

// after the generations: waits for tokenize() workers still reading the vocabulary
void Model::free_model() {
    if (model_) {
        std::unique_lock<std::mutex> lock(workers_mutex_);
        if (workers_ > 0) {
            py::gil_scoped_release release;
            workers_cv_.wait(lock, [&] { return workers_ == 0; });
        }
        llama_model_free(model_);
        model_ = nullptr;
    }
}

llama_model * Model::checked() const {
    if (!model_) {
        throw std::runtime_error("this Model is closed; create a new negtemp.Model");
    }
    if (!lost_.empty()) {
        throw RemoteFault(lost_endpoint_, lost_ + "; this Model cannot be used any more: close it, and create "
                                                  "a new Model once the server is back");
    }
    return model_;
}

}  // namespace negtemp
