// The probabilities llama.cpp's temperature sampler, followed by its draw,
// assigns to a vector of logits, on either sampling path. Shared by the
// extension (negtemp.sampler_probs) and scripts/verify_driver.cpp, which runs
// it against an unpatched llama.cpp too. Header-only, llama.h's public API
// plus ggml's CPU compute.
#pragma once

#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace negtemp {

// CPU path: the sampler chain's own arrays. Backend path: the sampler's ggml
// graph computed on the CPU backend, then ggml's softmax as the backend draw does.
inline void sampler_probs(const float * logits, size_t n, float temp, bool backend, double * dst) {
    std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> temp_s(llama_sampler_init_temp(temp),
                                                                         llama_sampler_free);
    if (!backend) {
        std::vector<llama_token_data> cur(n);
        for (size_t i = 0; i < n; ++i) {
            cur[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
        }
        std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> dist(llama_sampler_init_dist(0),
                                                                           llama_sampler_free);
        llama_token_data_array cur_p{cur.data(), n, -1, false};
        llama_sampler_apply(temp_s.get(), &cur_p);
        llama_sampler_apply(dist.get(), &cur_p);
        for (size_t i = 0; i < n; ++i) {
            dst[cur[i].id] = cur[i].p;
        }
        return;
    }
    ggml_init_params ip{};
    ip.mem_size = 32 * n * sizeof(float) + ggml_graph_overhead() + (1 << 20);
    ip.no_alloc = false;
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(ip), ggml_free);
    if (!ctx) {
        throw std::runtime_error("could not allocate a ggml context for the backend sampler");
    }
    ggml_tensor * t = ggml_new_tensor_1d(ctx.get(), GGML_TYPE_F32, static_cast<int64_t>(n));
    std::copy(logits, logits + n, static_cast<float *>(t->data));
    ggml_cgraph * gf = ggml_new_graph(ctx.get());
    llama_sampler_data data{t, nullptr, nullptr, nullptr};
    temp_s->iface->backend_apply(temp_s.get(), ctx.get(), gf, &data);
    ggml_tensor * probs = ggml_soft_max(ctx.get(), ggml_reshape_1d(ctx.get(), data.logits, ggml_nelements(data.logits)));
    ggml_build_forward_expand(gf, probs);
    if (data.candidates) {
        ggml_build_forward_expand(gf, data.candidates);
    }
    if (ggml_graph_compute_with_ctx(ctx.get(), gf, 1) != GGML_STATUS_SUCCESS) {
        throw std::runtime_error("the backend sampler graph failed to compute");
    }
    // a sampler may shrink the logits to a candidate list (greedy keeps one)
    const float * p = static_cast<const float *>(probs->data);
    if (data.candidates) {
        std::fill(dst, dst + n, 0.0);
        const auto * ids = static_cast<const int32_t *>(data.candidates->data);
        for (int64_t k = 0; k < ggml_nelements(probs); ++k) {
            dst[ids[k]] = p[k];
        }
    } else {
        std::copy(p, p + n, dst);
    }
}

}  // namespace negtemp
