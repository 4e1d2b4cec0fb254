// The sampler chain negtemp builds from llama.cpp's samplers, in llama.cpp's
// order: logit bias, repeat penalty, top-k, top-p, min-p, temperature, draw,
// from a BoundChain (sampling_rules.hpp) only. Shared by generation
// (sequences.cpp), the chain on a caller's logits (chain_probs.hpp) and
// scripts/verify/driver.cpp, which also builds it against an unpatched
// llama.cpp. Header-only, llama.h's public API.
#pragma once

#include "sampling_rules.hpp"
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

inline SamplerPtr make_chain(const BoundChain & b) {
    const ChainSpec & c = b.spec();
    const int32_t n_vocab = b.n_vocab();
    SamplerPtr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    auto add = [&](llama_sampler * s) { llama_sampler_chain_add(chain.get(), s); };
    if (!b.bias().empty()) {
        std::vector<llama_logit_bias> bias;
        for (const auto & [token, value] : b.bias()) {
            bias.push_back({token, value});
        }
        add(llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(bias.size()), bias.data()));
    }
    if (c.repeat_penalty != 1.0) {
        const bool mirrored = c.beta < 0.0;
        if (mirrored) {
            add(make_negate());
        }
        add(llama_sampler_init_penalties(n_vocab, c.penalty_last_n, static_cast<float>(c.repeat_penalty), 0.0f,
                                         0.0f));
        if (mirrored) {
            add(make_negate());
        }
    }
    if (c.top_k > 0) {
        add(llama_sampler_init_top_k(c.top_k));
    }
    if (c.top_p < 1.0) {
        add(llama_sampler_init_top_p(static_cast<float>(c.top_p), 1));
    }
    if (c.min_p > 0.0) {
        add(llama_sampler_init_min_p(static_cast<float>(c.min_p), 1));
    }
    add(llama_sampler_init_temp(b.temp()));
    add(llama_sampler_init_dist(c.seed));
    return chain;
}

// The repeat penalty's window counts the prompt, as llama.cpp's server and
// transformers count it: the prompt's last penalty_last_n tokens are accepted
// before the first draw.
inline void accept_prompt(llama_sampler * chain, const BoundChain & b, const std::vector<llama_token> & prompt) {
    if (b.spec().repeat_penalty == kRepeatPenalty.neutral) {
        return;
    }
    const size_t n = std::min(prompt.size(), static_cast<size_t>(b.spec().penalty_last_n));
    for (size_t i = prompt.size() - n; i < prompt.size(); ++i) {
        llama_sampler_accept(chain, prompt[i]);
    }
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
