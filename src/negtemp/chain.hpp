// The sampler chain negtemp builds from llama.cpp's samplers, in llama.cpp's
// order: logit bias, repeat penalty, top-k, top-p, min-p, temperature, draw.
// Shared by generation (_native.cpp), the probes on caller logits
// (sampler_probe.hpp) and scripts/verify/driver.cpp, which also builds it
// against an unpatched llama.cpp. Header-only, llama.h's public API.
#pragma once

#include "ggml.h"
#include "llama.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace negtemp {

// Every token masked: there is nothing to draw. Python sees negtemp.SamplingError.
struct SamplingError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr const char * kAllMasked =
    "every token was masked (-inf, NaN or +inf logits, logit-bias bans, or filters that left nothing): "
    "there is no distribution to sample";

// Token ids from a caller (prompt, penalty history) must index the vocabulary.
inline void check_token_ids(const std::vector<int32_t> & ids, int64_t n_vocab) {
    for (int32_t t : ids) {
        if (t < 0 || t >= n_vocab) {
            throw std::invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                        std::to_string(n_vocab) + ")");
        }
    }
}

// The probability a backend draw gave the token it drew: probs[i] belongs to
// ids[i], or to token i when the chain kept no candidate list (ids null). The
// backend graph still "draws" a token when every token was masked, so a
// probability that is not positive means there was nothing to draw.
inline float drawn_probability(const float * probs, const int32_t * ids, size_t n, llama_token token) {
    float p = 0.0f;
    if (!ids) {
        p = token >= 0 && static_cast<size_t>(token) < n ? probs[token] : 0.0f;
    } else {
        const int32_t * it = std::find(ids, ids + n, token);
        p = it != ids + n ? probs[it - ids] : 0.0f;
    }
    if (!(p > 0.0f)) {
        throw SamplingError(kAllMasked);
    }
    return p;
}

struct ChainConfig {
    float temp = 0.8f;
    uint32_t seed = 0;
    int32_t top_k = 0;
    float top_p = 1.0f;
    float min_p = 0.0f;
    float repeat_penalty = 1.0f;
    int32_t penalty_last_n = 64;
    std::map<int32_t, float> logit_bias;

    // logit bias, temperature and the draw only: what the fused sampler runs
    bool plain() const { return top_k <= 0 && top_p >= 1.0f && min_p <= 0.0f && repeat_penalty == 1.0f; }
};

struct SamplerDeleter {
    void operator()(llama_sampler * s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// Negates every logit, on the CPU and in the backend graph. At T < 0 the chain
// wraps the penalties in two of these, so that a penalty acts on -z: it pushes
// a repeated token toward the end of the order that T < 0 disfavours (up in
// logit), and so discourages repeats at every temperature. Masked -inf logits
// come back as -inf (penalties keep +inf at +inf).
inline void negate_apply(llama_sampler *, llama_token_data_array * cur_p) {
    for (size_t i = 0; i < cur_p->size; ++i) {
        cur_p->data[i].logit = -cur_p->data[i].logit;
    }
    cur_p->sorted = false;
}

inline bool negate_backend_init(llama_sampler *, ggml_backend_buffer_type_t, uint32_t) {
    return true;  // ggml_neg: every backend has it
}

inline void negate_backend_apply(llama_sampler *, ggml_context * ctx, ggml_cgraph *, llama_sampler_data * data) {
    data->logits = ggml_neg(ctx, data->logits);
}

inline llama_sampler * make_negate() {
    static llama_sampler_i iface = {
        /* .name              = */ [](const llama_sampler *) { return "negtemp-negate"; },
        /* .accept            = */ nullptr,
        /* .apply             = */ negate_apply,
        /* .reset             = */ nullptr,
        /* .clone             = */ nullptr,
        /* .free              = */ nullptr,
        /* .backend_init      = */ negate_backend_init,
        /* .backend_accept    = */ nullptr,
        /* .backend_apply     = */ negate_backend_apply,
        /* .backend_set_input = */ nullptr,
        /* .backend_reset     = */ nullptr,
        /* .copy_state        = */ nullptr,
    };
    return llama_sampler_init(&iface, nullptr);
}

inline SamplerPtr make_chain(const ChainConfig & c, int32_t n_vocab) {
    SamplerPtr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    auto add = [&](llama_sampler * s) { llama_sampler_chain_add(chain.get(), s); };
    if (!c.logit_bias.empty()) {
        std::vector<llama_logit_bias> bias;
        for (const auto & kv : c.logit_bias) {
            bias.push_back({kv.first, kv.second});
        }
        add(llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(bias.size()), bias.data()));
    }
    if (c.repeat_penalty != 1.0f) {
        const bool mirrored = c.temp < 0.0f;
        if (mirrored) {
            add(make_negate());
        }
        add(llama_sampler_init_penalties(n_vocab, c.penalty_last_n, c.repeat_penalty, 0.0f, 0.0f));
        if (mirrored) {
            add(make_negate());
        }
    }
    if (c.top_k > 0) {
        add(llama_sampler_init_top_k(c.top_k));
    }
    if (c.top_p < 1.0f) {
        add(llama_sampler_init_top_p(c.top_p, 1));
    }
    if (c.min_p > 0.0f) {
        add(llama_sampler_init_min_p(c.min_p, 1));
    }
    add(llama_sampler_init_temp(c.temp));
    add(llama_sampler_init_dist(c.seed));
    return chain;
}

// One draw through the chain on the CPU: the chosen token, with the probability
// it had in *prob. probs, when given, gets every token's probability in the
// distribution drawn from (0 for tokens a filter removed). Throws
// SamplingError when every token is masked.
inline llama_token chain_sample(llama_sampler * chain, const float * logits, int32_t n_vocab,
                                std::vector<llama_token_data> & cur, double * prob,
                                std::vector<double> * probs = nullptr) {
    cur.resize(n_vocab);
    for (llama_token t = 0; t < n_vocab; ++t) {
        cur[t] = llama_token_data{t, logits[t], 0.0f};
    }
    llama_token_data_array cur_p{cur.data(), cur.size(), -1, false};
    llama_sampler_apply(chain, &cur_p);
    if (cur_p.selected < 0 || cur_p.selected >= static_cast<int64_t>(cur_p.size) ||
        !(cur_p.data[cur_p.selected].p > 0.0f)) {
        throw SamplingError(kAllMasked);
    }
    const llama_token_data & chosen = cur_p.data[cur_p.selected];
    *prob = chosen.p;
    if (probs) {
        probs->assign(n_vocab, 0.0);
        for (size_t i = 0; i < cur_p.size; ++i) {
            (*probs)[cur_p.data[i].id] = cur_p.data[i].p;
        }
    }
    llama_sampler_accept(chain, chosen.id);
    return chosen.id;
}

}  // namespace negtemp
