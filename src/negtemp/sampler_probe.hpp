// negtemp's sampler chain (chain.hpp) run on a caller's logits, on either
// sampling path: the probabilities it assigns to every token, and its random
// draws. The CPU path runs llama.cpp's samplers on a candidate array; the
// backend path builds the chain's ggml graph, as a decode does, and computes it
// on ggml's CPU backend (the same graph a GPU build runs on the GPU). Shared by
// the extension and scripts/verify/driver.cpp.
#pragma once

#include "chain.hpp"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace negtemp {

// CPU path: the p each token ends with after the chain, 0 for tokens a filter
// removed. history: tokens accepted before (what penalties look back on).
inline void chain_probs(const ChainConfig & c, const float * logits, size_t n, const std::vector<llama_token> & history,
                        double * dst) {
    SamplerPtr chain = make_chain(c, static_cast<int32_t>(n));
    for (llama_token t : history) {
        llama_sampler_accept(chain.get(), t);
    }
    std::vector<llama_token_data> cur(n);
    for (size_t i = 0; i < n; ++i) {
        cur[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
    }
    llama_token_data_array cur_p{cur.data(), n, -1, false};
    llama_sampler_apply(chain.get(), &cur_p);
    if (cur_p.selected < 0) {
        throw SamplingError(kAllMasked);
    }
    std::fill(dst, dst + n, 0.0);
    for (size_t i = 0; i < cur_p.size; ++i) {
        dst[cur_p.data[i].id] = cur_p.data[i].p;
    }
}

// Backend path: the chain's graph over one logits vector, allocated on ggml's
// CPU backend. Each run() draws a fresh uniform, as each decode does.
class BackendChain {
public:
    BackendChain(const ChainConfig & c, const float * logits, size_t n, const std::vector<llama_token> & history)
        : n_(n), chain_(make_chain(c, static_cast<int32_t>(n))), backend_(ggml_backend_cpu_init()) {
        if (!backend_) {
            throw std::runtime_error("could not start ggml's CPU backend");
        }
        ggml_backend_cpu_set_n_threads(backend_.get(), 1);
        llama_sampler * s = chain_.get();
        if (!s->iface->backend_init(s, ggml_backend_get_default_buffer_type(backend_.get()), 1)) {
            throw std::runtime_error("a sampler in this chain has no backend implementation");
        }
        for (llama_token t : history) {
            llama_sampler_accept(s, t);
        }
        ggml_init_params ip{};
        ip.mem_size = GGML_DEFAULT_GRAPH_SIZE * ggml_tensor_overhead() + ggml_graph_overhead();
        ip.no_alloc = true;
        ctx_.reset(ggml_init(ip));
        if (!ctx_) {
            throw std::runtime_error("could not allocate a ggml context for the backend sampler");
        }
        graph_ = ggml_new_graph(ctx_.get());
        ggml_tensor * in = ggml_new_tensor_1d(ctx_.get(), GGML_TYPE_F32, static_cast<int64_t>(n));
        ggml_set_input(in);
        data_ = llama_sampler_data{in, nullptr, nullptr, nullptr};
        s->iface->backend_apply(s, ctx_.get(), graph_, &data_);
        for (ggml_tensor * t : {data_.probs, data_.sampled, data_.candidates}) {
            if (t) {
                ggml_set_output(t);
                ggml_build_forward_expand(graph_, t);
            }
        }
        buffer_.reset(ggml_backend_alloc_ctx_tensors(ctx_.get(), backend_.get()));
        if (!buffer_) {
            throw std::runtime_error("could not allocate the backend sampler graph");
        }
        ggml_backend_tensor_set(in, logits, 0, n * sizeof(float));
    }

    // One computation of the graph: the sampled token, and (when probs is not
    // null) every token's probability, 0 for tokens a filter removed.
    llama_token run(double * probs) {
        llama_sampler * s = chain_.get();
        s->iface->backend_set_input(s);
        if (ggml_backend_graph_compute(backend_.get(), graph_) != GGML_STATUS_SUCCESS) {
            throw std::runtime_error("the backend sampler graph failed to compute");
        }
        const int64_t k = ggml_nelements(data_.probs);
        p_.resize(k);
        ggml_backend_tensor_get(data_.probs, p_.data(), 0, k * sizeof(float));
        const int32_t * ids = nullptr;
        if (data_.candidates) {
            ids_.resize(k);
            ggml_backend_tensor_get(data_.candidates, ids_.data(), 0, k * sizeof(int32_t));
            ids = ids_.data();
        }
        int32_t token = 0;
        ggml_backend_tensor_get(data_.sampled, &token, 0, sizeof(token));
        drawn_probability(p_.data(), ids, static_cast<size_t>(k), token);
        if (probs) {
            std::fill(probs, probs + n_, 0.0);
            for (int64_t i = 0; i < k; ++i) {
                probs[ids ? ids[i] : i] = p_[i];
            }
        }
        return token;
    }

private:
    struct BackendFree {
        void operator()(ggml_backend_t b) const { ggml_backend_free(b); }
    };
    struct BufferFree {
        void operator()(ggml_backend_buffer_t b) const { ggml_backend_buffer_free(b); }
    };
    struct ContextFree {
        void operator()(ggml_context * c) const { ggml_free(c); }
    };

    size_t n_;
    SamplerPtr chain_;
    std::unique_ptr<ggml_backend, BackendFree> backend_;
    std::unique_ptr<ggml_context, ContextFree> ctx_;
    std::unique_ptr<ggml_backend_buffer, BufferFree> buffer_;
    ggml_cgraph * graph_ = nullptr;
    llama_sampler_data data_{};
    std::vector<float> p_;
    std::vector<int32_t> ids_;
};

// Either path's probabilities for one logits vector.
inline void sampler_probs(const ChainConfig & c, const float * logits, size_t n, const std::vector<llama_token> & history,
                          bool backend, double * dst) {
    if (backend) {
        BackendChain(c, logits, n, history).run(dst);
    } else {
        chain_probs(c, logits, n, history, dst);
    }
}

}  // namespace negtemp
