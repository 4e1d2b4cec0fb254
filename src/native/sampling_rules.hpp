// ChainSpec: every sampling setting, and every rule about them, in one place.
//
// Python's SamplingConfig converts a caller's values into a ChainSpec and
// documents them; the rules (ranges, the plain-chain test, which path may run
// which chain, the token ids of a logit bias) are written here once and
// checked here once. A chain builder never sees a ChainSpec: it takes a
// BoundChain, which exists only once the spec has passed against one
// vocabulary. Plain C++ with no llama.cpp dependency, so the verify driver
// (scripts/verify/driver.cpp) builds against an unpatched tree too.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace negtemp {

// Every token masked: there is nothing to draw. Python sees negtemp.SamplingError.
struct SamplingError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr const char * kAllMasked =
    "every token was masked (-inf, NaN or +inf logits, logit-bias bans, or filters that left nothing): "
    "there is no distribution to sample";

// Where a chain runs: negtemp's fused sampler (plain chain only), llama.cpp's
// sampler chain on the CPU, or the chain's ggml graph inside the decode; "auto"
// is fused for a plain chain, else chain.
enum class SamplerPath { Auto, Fused, Chain, Backend };

inline constexpr const char * kPathNames[] = {"auto", "fused", "chain", "backend"};

inline const char * path_name(SamplerPath p) { return kPathNames[static_cast<int>(p)]; }

inline SamplerPath parse_path(const std::string & name) {
    for (int i = 0; i < 4; ++i) {
        if (name == kPathNames[i]) {
            return static_cast<SamplerPath>(i);
        }
    }
    throw std::invalid_argument("path must be one of 'auto', 'fused', 'chain', 'backend', got '" + name + "'");
}

// An integer setting's allowed range, with what it means, for its error message.
struct IntRange {
    const char * name;
    int64_t lo;
    int64_t hi;
    const char * meaning;

    [[noreturn]] void refuse(const std::string & got) const {
        throw std::invalid_argument(std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]" + meaning + ", got " + got);
    }

    int64_t check(int64_t v) const {
        if (v < lo || v > hi) {
            refuse(std::to_string(v));
        }
        return v;
    }
};

// 2**32 - 1 is llama.cpp's "pick a random seed", so it cannot name a draw
inline constexpr IntRange kSeed{"seed", 0, 4294967294LL, ""};
inline constexpr IntRange kTopK{"top_k", 0, std::numeric_limits<int32_t>::max(), " (0 = off)"};
// the penalty keeps a ring buffer of this many tokens: past a million it only costs memory
inline constexpr IntRange kPenaltyLastN{"penalty_last_n", 1, 1 << 20, ""};
inline constexpr IntRange kDraws{"n", 1, std::numeric_limits<int32_t>::max(), " (draws)"};
inline constexpr IntRange kNPredict{"n_predict", 1, std::numeric_limits<int32_t>::max(), " (tokens)"};
inline constexpr IntRange kNProbs{"n_probs", 0, std::numeric_limits<int32_t>::max(), " (0 = off)"};
// llama.cpp decodes at most 256 sequences together (llama_max_parallel_sequences)
inline constexpr IntRange kSequences{"n", 1, 256, " (draws decoded together: llama.cpp's limit; split them over calls)"};
// prompts a Model's prefix cache keeps: each a sequence beside the draws a call decodes
inline constexpr IntRange kPrefixSlots{"prefix_cache", 0, 64, " (prompts kept; 0 = off)"};

// Token ids from a caller (prompt, penalty history, logit bias) must index the vocabulary.
inline void check_token_id(int64_t t, int64_t n_vocab, const char * what = "token id") {
    if (t < 0 || t >= n_vocab) {
        throw std::invalid_argument(std::string(what) + " " + std::to_string(t) +
                                    " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    }
}

inline void check_token_ids(const std::vector<int32_t> & ids, int64_t n_vocab) {
    for (int32_t t : ids) {
        check_token_id(t, n_vocab);
    }
}

// A penalty history from a caller, checked against the vocabulary, as llama.cpp's samplers take it.
inline std::vector<int32_t> history_tokens(const std::vector<int64_t> & history, int64_t n_vocab) {
    std::vector<int32_t> out;
    out.reserve(history.size());
    for (int64_t t : history) {
        check_token_id(t, n_vocab, "history token");
        out.push_back(static_cast<int32_t>(t));
    }
    return out;
}

struct ChainSpec {
    double beta = 1.25;  // 1/T: +inf greedy, 0 uniform, -inf anti-greedy
    uint32_t seed = 0;
    int32_t top_k = 0;
    double top_p = 1.0;
    double min_p = 0.0;
    double repeat_penalty = 1.0;
    int32_t penalty_last_n = 64;
    std::map<int64_t, double> logit_bias;  // token id -> bias; ids are checked against a vocabulary when bound
    bool ignore_eos = false;               // the model's end-of-generation tokens banned when bound
    SamplerPath path = SamplerPath::Auto;

    // The rules that need no vocabulary; throws std::invalid_argument naming the setting.
    void validate() const {
        if (std::isnan(beta)) {
            throw std::invalid_argument("the temperature is NaN: give a number (beta = 1/T may be +-inf)");
        }
        unit("top_p", top_p);
        unit("min_p", min_p);
        if (!(repeat_penalty > 0.0 && std::isfinite(repeat_penalty))) {
            throw std::invalid_argument("repeat_penalty must be a positive finite number (1 = off), got " +
                                        std::to_string(repeat_penalty));
        }
        for (const auto & [token, bias] : logit_bias) {
            if (std::isnan(bias) || bias == INFINITY) {
                throw std::invalid_argument("logit_bias[" + std::to_string(token) + "] = " + std::to_string(bias) +
                                            ": a bias must be finite, or -inf to ban the token (to force a token, "
                                            "ban the others or use a large finite bias)");
            }
        }
        if (path == SamplerPath::Fused && !plain()) {
            throw std::invalid_argument("the fused sampler runs the plain chain only (logit bias, temperature, "
                                        "draw); use path 'chain' or 'auto' with top_k/top_p/min_p/repeat_penalty");
        }
    }

    // Draw i of n: the same chain seeded seed + i, as llama-server seeds the n
    // completions of one request, so any draw can be run again alone.
    ChainSpec draw(int64_t i) const {
        ChainSpec out = *this;
        const int64_t s = static_cast<int64_t>(seed) + i;
        if (s > kSeed.hi) {
            throw std::invalid_argument("draw " + std::to_string(i) + " would take seed " + std::to_string(s) +
                                        ", past the largest seed " + std::to_string(kSeed.hi) +
                                        ": start from a seed at most " + std::to_string(kSeed.hi - i));
        }
        out.seed = static_cast<uint32_t>(s);
        return out;
    }

    // The seeds of draws 0..n-1, or the message of the first out of range.
    std::vector<uint32_t> draw_seeds(int64_t n) const {
        draw(n - 1);
        std::vector<uint32_t> out;
        for (int64_t i = 0; i < n; ++i) {
            out.push_back(seed + static_cast<uint32_t>(i));
        }
        return out;
    }

    // logit bias, temperature and the draw only: what the fused sampler runs
    bool plain() const { return top_k == 0 && top_p == 1.0 && min_p == 0.0 && repeat_penalty == 1.0; }

    SamplerPath resolved_path() const {
        if (path != SamplerPath::Auto) {
            return path;
        }
        return plain() ? SamplerPath::Fused : SamplerPath::Chain;
    }

    // The temperature llama.cpp's samplers take. llama.cpp keeps T = -0.0
    // greedy, so beta = -inf (anti-greedy) becomes the smallest normal float
    // below zero: (z - z_min) / T is then -inf, or underflows to p = 0, for
    // every logit above the minimum.
    float llama_temp() const {
        if (beta == INFINITY) {
            return 0.0f;
        }
        if (beta == -INFINITY) {
            return -std::numeric_limits<float>::min();
        }
        if (beta == 0.0) {
            return INFINITY;
        }
        return static_cast<float>(1.0 / beta);
    }

private:
    static void unit(const char * name, double v) {
        if (!(v >= 0.0 && v <= 1.0)) {
            throw std::invalid_argument(std::string(name) + " must be in [0, 1], got " + std::to_string(v));
        }
    }
};

// A ChainSpec checked against one vocabulary, with its bias merged into
// (token, bias) pairs (the end-of-generation bans of ignore_eos included): the
// only input every chain builder takes, so no chain is built unchecked.
class BoundChain {
public:
    // eog_tokens: the model's end-of-generation tokens; null for bare logits
    BoundChain(const ChainSpec & spec, int64_t n_vocab, const std::vector<int32_t> * eog_tokens = nullptr)
        : spec_(spec), path_(spec.resolved_path()) {
        spec.validate();
        if (n_vocab < 1 || n_vocab > std::numeric_limits<int32_t>::max()) {
            throw std::invalid_argument("the vocabulary (the logits) must have 1 to 2**31 - 1 entries, got " +
                                        std::to_string(n_vocab));
        }
        n_vocab_ = static_cast<int32_t>(n_vocab);
        for (const auto & [token, bias] : spec.logit_bias) {
            check_token_id(token, n_vocab, "logit_bias token");
            bias_.emplace_back(static_cast<int32_t>(token), static_cast<float>(bias));
        }
        if (spec.ignore_eos) {
            if (!eog_tokens) {
                throw std::invalid_argument("ignore_eos needs a model's end-of-generation tokens; on bare logits "
                                            "ban them with logit_bias");
            }
            for (int32_t t : *eog_tokens) {
                bias_.emplace_back(t, -INFINITY);
            }
        }
    }

    const ChainSpec & spec() const { return spec_; }
    int32_t n_vocab() const { return n_vocab_; }
    SamplerPath path() const { return path_; }
    float temp() const { return spec_.llama_temp(); }
    const std::vector<std::pair<int32_t, float>> & bias() const { return bias_; }

private:
    ChainSpec spec_;
    SamplerPath path_;
    int32_t n_vocab_ = 0;
    std::vector<std::pair<int32_t, float>> bias_;
};

}  // namespace negtemp
