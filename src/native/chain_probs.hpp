// negtemp's sampler chain (chain.hpp) run on a caller's logits, on either
// sampling path: the probabilities it assigns to every token, and its random
// draws. The CPU path runs llama.cpp's samplers on a candidate array; the
// backend path builds the chain's ggml graph, as a decode does, and computes it
// on a ggml device: the CPU backend, or a GPU one ("Vulkan0", "CUDA0") in a GPU
// build. Shared by the extension and scripts/verify/driver.cpp.
#pragma once

#include "backends.hpp"
#include "chain.hpp"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace negtemp {

// CPU path: the p each token ends with after the chain, 0 for tokens a filter
// removed. history: tokens accepted before (what penalties look back on).
inline void chain_probs(const BoundChain & c, const float * logits, const std::vector<llama_token> & history,
                        double * dst) {
    const size_t n = static_cast<size_t>(c.n_vocab());
    SamplerPtr chain = make_chain(c);
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

// The ggml device called `name` ("CPU", "Vulkan0", ...), started.
inline ggml_backend_t start_device(const std::string & name) {
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
    if (!dev) {
        std::string known;
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            known += std::string(known.empty() ? "" : ", ") + ggml_backend_dev_name(ggml_backend_dev_get(i));
        }
        throw std::invalid_argument("no ggml device named " + name + " in this build (it has: " + known + ")");
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
    if (!backend) {
        throw std::runtime_error("could not start the ggml device " + name);
    }
    set_cpu_threads(backend, 1);
    return backend;
}

// Backend path: the chain's graph over one logits vector, allocated on the
// ggml device `device`. Each draw gets a fresh uniform, as each decode does.
// `copies` > 1 puts that many copies of the chain's graph over the same logits
// into one graph, so one computation makes that many draws: the dist sampler
// fills its uniforms in order from one generator, so the draws are those of
// as many single computations, and the fixed cost of each (submission,
// synchronisation, reading results back) is paid once: on Mesa's lavapipe 64
// copies took a draw from 4.3 to 1.6 ms, the rest being the cost of each op.
// Every op must run on the device: there is no scheduler
// here to fall back to the CPU, so an op the device lacks is an error, never a
// silent CPU run.
class BackendChain {
public:
    BackendChain(const BoundChain & c, const float * logits, const std::vector<llama_token> & history,
                 const std::string & device = "CPU", size_t copies = 1)
        : n_(static_cast<size_t>(c.n_vocab())), chain_(make_chain(c)), backend_(start_device(device)) {
        const size_t n = n_;
        llama_sampler * s = chain_.get();
        if (!s->iface->backend_init(s, ggml_backend_get_default_buffer_type(backend_.get()), 1)) {
            throw std::runtime_error("a sampler in this chain has no backend implementation");
        }
        for (llama_token t : history) {
            llama_sampler_accept(s, t);
        }
        // a chain's graph has a few dozen nodes; kNodesPerCopy leaves room for every sampler
        constexpr size_t kNodesPerCopy = 256;
        const size_t graph_size = kNodesPerCopy * copies;
        ggml_init_params ip{};
        ip.mem_size = graph_size * ggml_tensor_overhead() + ggml_graph_overhead_custom(graph_size, false);
        ip.no_alloc = true;
        ctx_.reset(ggml_init(ip));
        if (!ctx_) {
            throw std::runtime_error("could not allocate a ggml context for the backend sampler");
        }
        graph_ = ggml_new_graph_custom(ctx_.get(), graph_size, false);
        ggml_tensor * in = ggml_new_tensor_1d(ctx_.get(), GGML_TYPE_F32, static_cast<int64_t>(n));
        ggml_set_input(in);
        for (size_t k = 0; k < copies; ++k) {
            llama_sampler_data d{in, nullptr, nullptr, nullptr};
            s->iface->backend_apply(s, ctx_.get(), graph_, &d);
            for (ggml_tensor * t : {d.probs, d.sampled, d.candidates}) {
                if (t) {
                    ggml_set_output(t);
                    ggml_build_forward_expand(graph_, t);
                }
            }
            data_.push_back(d);
        }
        for (int i = 0; i < ggml_graph_n_nodes(graph_); ++i) {
            ggml_tensor * node = ggml_graph_node(graph_, i);
            if (!ggml_backend_supports_op(backend_.get(), node)) {
                throw std::runtime_error(std::string("the ggml device ") + ggml_backend_name(backend_.get()) +
                                         " cannot run the backend sampler's " + ggml_op_desc(node) + " op");
            }
        }
        buffer_.reset(ggml_backend_alloc_ctx_tensors(ctx_.get(), backend_.get()));
        if (!buffer_) {
            throw std::runtime_error("could not allocate the backend sampler graph");
        }
        ggml_backend_tensor_set(in, logits, 0, n * sizeof(float));
    }

    // One computation of the graph: each copy's sampled token (`copies` draws),
    // and (when probs is not null) every token's probability, 0 for tokens a
    // filter removed (the same in every copy).
    std::vector<llama_token> run(double * probs) {
        llama_sampler * s = chain_.get();
        s->iface->backend_set_input(s);
        if (ggml_backend_graph_compute(backend_.get(), graph_) != GGML_STATUS_SUCCESS) {
            throw std::runtime_error("the backend sampler graph failed to compute");
        }
        std::vector<llama_token> tokens;
        const int32_t * ids = nullptr;
        for (const llama_sampler_data & d : data_) {
            const int64_t k = ggml_nelements(d.probs);
            p_.resize(k);
            ggml_backend_tensor_get(d.probs, p_.data(), 0, k * sizeof(float));
            if (d.candidates) {
                ids_.resize(k);
                ggml_backend_tensor_get(d.candidates, ids_.data(), 0, k * sizeof(int32_t));
                ids = ids_.data();
            }
            int32_t token = 0;
            ggml_backend_tensor_get(d.sampled, &token, 0, sizeof(token));
            drawn_probability(p_.data(), ids, static_cast<size_t>(k), token);
            tokens.push_back(token);
        }
        if (probs) {
            std::fill(probs, probs + n_, 0.0);
            for (size_t i = 0; i < p_.size(); ++i) {
                probs[ids ? ids[i] : i] = p_[i];
            }
        }
        return tokens;
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
    std::vector<llama_sampler_data> data_;
    std::vector<float> p_;
    std::vector<int32_t> ids_;
};

// The chain or backend path's probabilities for one logits vector (the
// fused sampler's own are FusedSampler::probs).
inline void sampler_probs(const BoundChain & c, const float * logits, const std::vector<llama_token> & history,
                          double * dst, const std::string & device = "CPU") {
    if (c.path() == SamplerPath::Backend) {
        BackendChain(c, logits, history, device).run(dst);
    } else {
        chain_probs(c, logits, history, dst);
    }
}

}  // namespace negtemp
