// Model's contexts: the KV cache's size and type, a context for a call or the prefix cache, its
// thread pool, and the decodes that read logits or trace where each node ran.
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
namespace {

// The scheduler puts a node's result in memory of the backend that computes
// it, so a node in a device's own buffer type ran on that device ("Vulkan0");
// other host memory (the CPU's, or the pinned "Vulkan_Host" memory a GPU build
// gives the CPU backend) means the CPU ran it, as it does for an op a device lacks.
std::string computed_on(ggml_backend_buffer_type_t buft) {
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (dev && ggml_backend_dev_buffer_type(dev) == buft) {
        return ggml_backend_dev_name(dev);
    }
    return ggml_backend_buft_is_host(buft) || !dev ? "CPU" : ggml_backend_dev_name(dev);
}

bool trace_node(ggml_tensor * t, bool ask, void * user_data) {
    if (ask) {
        return true;  // observe every node
    }
    ggml_backend_buffer_type_t buft = t->buffer ? ggml_backend_buffer_get_type(t->buffer) : nullptr;
    static_cast<NodeTrace *>(user_data)->nodes.emplace_back(ggml_get_name(t), ggml_op_desc(t),
                                                            buft ? computed_on(buft) : "unallocated",
                                                            buft ? ggml_backend_buft_name(buft) : "unallocated");
    return true;
}

}  // namespace

// f32 keeps keys and values unrounded (and so runs without flash attention),
// for comparing logits with a float32 implementation of the same weights
// (negtemp.hf); quantized caches are not offered: their error would need its
// own tolerance in every check
ggml_type kv_cache_type(const std::string & name) {
    if (name == "f16") {
        return GGML_TYPE_F16;
    }
    if (name == "f32") {
        return GGML_TYPE_F32;
    }
    throw std::invalid_argument("kv_type must be \"f16\" (llama.cpp's default) or \"f32\", not \"" + name + "\"");
}

// Bytes of KV cache one token of context takes (f16 K and V in every layer):
// what n_ctx costs, checked before a context is made. The heads' width is the
// GGUF's key/value length where it gives one (gemma-3's 256 is not n_embd / n_head).
int64_t Model::kv_bytes_per_token() const {
    const llama_model * m = checked();
    const int64_t n_head = std::max<int32_t>(1, llama_model_n_head(m));
    auto meta = [&](const std::string & key, int64_t fallback) {
        char arch[64] = {0};
        char value[32] = {0};
        if (llama_model_meta_val_str(m, "general.architecture", arch, sizeof(arch)) < 0 ||
            llama_model_meta_val_str(m, (std::string(arch) + "." + key).c_str(), value, sizeof(value)) < 0) {
            return fallback;
        }
        return static_cast<int64_t>(std::strtoll(value, nullptr, 10));
    };
    const int64_t head = llama_model_n_embd(m) / n_head;
    const int64_t width = meta("attention.key_length", head) + meta("attention.value_length", head);
    return static_cast<int64_t>(llama_model_n_layer(m)) * llama_model_n_head_kv(m) * width *
           static_cast<int64_t>(ggml_type_size(kv_type_));
}

// Logits the model gives after each prefix of `tokens` (row i: after tokens[0..i]).
Floats Model::eval_logits(const TokenArray & ids) {
    const std::vector<llama_token> toks = tokens(ids);
    if (toks.size() > n_ctx_) {
        throw std::invalid_argument(std::to_string(toks.size()) + " tokens do not fit n_ctx=" +
                                    std::to_string(n_ctx_) + "; ask for fewer at a time");
    }
    const int32_t nv = n_vocab();
    Floats out({static_cast<py::ssize_t>(toks.size()), static_cast<py::ssize_t>(nv)});
    float * dst = out.mutable_data();
    py::gil_scoped_release release;
    remote_guard([&] {
        Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1);
        llama_batch batch = llama_batch_init(static_cast<int32_t>(toks.size()), 0, 1);
        for (size_t i = 0; i < toks.size(); ++i) {
            batch.token[i] = toks[i];
            batch.pos[i] = static_cast<llama_pos>(i);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        batch.n_tokens = static_cast<int32_t>(toks.size());
        int rc = 0;
        try {
            rc = llama_decode(ctx.get(), batch);
        } catch (...) {
            llama_batch_free(batch);
            throw;
        }
        llama_batch_free(batch);
        if (rc != 0) {
            throw std::runtime_error("llama_decode failed (" + std::to_string(rc) + "): " + take_log());
        }
        for (size_t i = 0; i < toks.size(); ++i) {
            const float * row = llama_get_logits_ith(ctx.get(), static_cast<int32_t>(i));
            std::copy(row, row + nv, dst + i * nv);
        }
    });
    return out;
}

// Where one decode of `prompt` ran each node of its graph, in order; with a
// backend chain the sampler's nodes follow the model's "result_output".
NodeList Model::op_backends(const TokenArray & prompt_tokens, const ChainSpec & spec) {
    std::vector<llama_token> toks = tokens(prompt_tokens);
    const BoundChain bound(spec, n_vocab(), &eog_);
    NodeTrace trace;
    {
        py::gil_scoped_release release;
        remote_guard([&] {
            SamplerPtr chain = bound.path() == SamplerPath::Backend ? make_chain(bound) : nullptr;
            Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1, chain.get(), &trace);
            const int rc = llama_decode(ctx.get(), llama_batch_get_one(toks.data(), static_cast<int32_t>(toks.size())));
            if (rc != 0) {
                throw std::runtime_error("llama_decode failed (" + std::to_string(rc) + "): " + take_log());
            }
        });
    }
    NodeList out;
    for (const auto & [name, op, device, buffer] : trace.nodes) {
        out.append(py::make_tuple(name, op, device, buffer));
    }
    return out;
}

std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> Model::new_pool() const {
    ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads_);
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> pool(threadpool_new(&tpp));
    if (!pool) {
        throw std::runtime_error("ggml could not start a pool of " + std::to_string(n_threads_) +
                                 " threads; lower n_threads");
    }
    return pool;
}

Context Model::make_context(uint32_t n_tokens, uint32_t n_seq, llama_sampler * backend_chain, NodeTrace * trace) {
    auto pool = new_pool();
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = std::max<uint32_t>(n_tokens, 16);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = std::min<uint32_t>(cp.n_ctx, 512);
    cp.n_seq_max = n_seq;
    // one cache for all sequences, so a sweep's prompt cells are shared, not copied
    // (per-sequence streams measured no faster for a sweep of 8 x 128 tokens)
    cp.kv_unified = true;
    cp.n_threads = n_threads_;
    cp.n_threads_batch = n_threads_;
    cp.no_perf = true;
    cp.type_k = kv_type_;
    cp.type_v = kv_type_;
    if (kv_type_ == GGML_TYPE_F32) {
        // flash attention casts keys and values to f16 whatever the cache holds
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    llama_sampler_seq_config seq_cfg{0, backend_chain};
    if (backend_chain) {
        cp.samplers = &seq_cfg;
        cp.n_samplers = 1;
    }
    if (trace) {
        cp.cb_eval = trace_node;
        cp.cb_eval_user_data = trace;
    }
    llama_context * ctx = llama_init_from_model(checked(), cp);
    if (!ctx) {
        check_remote();
        throw std::runtime_error("llama.cpp could not create a context: " + take_log());
    }
    llama_attach_threadpool(ctx, pool.get(), pool.get());
    return Context{std::move(pool), std::unique_ptr<llama_context, ContextDeleter>(ctx)};
}

}  // namespace negtemp
