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

#include <charconv>
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

// 'auto', 'fused', 'chain', 'backend'
inline std::string path_choices() {
    std::string out;
    for (const char * name : kPathNames) {
        out += (out.empty() ? "'" : ", '") + std::string(name) + "'";
    }
    return out;
}

inline SamplerPath parse_path(const std::string & name) {
    for (int i = 0; i < 4; ++i) {
        if (name == kPathNames[i]) {
            return static_cast<SamplerPath>(i);
        }
    }
    throw std::invalid_argument("path must be one of " + path_choices() + ", got '" + name + "'");
}

// An integer's allowed range that is not a sampling setting (a cache's
// slots, draws of bare logits), with what it means, for its error message.
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

// A number as the shortest text that reads back as it (1.5, 0.1, inf, 4294967294).
inline std::string number_text(double v) {
    if (std::isnan(v)) {
        return "NaN";
    }
    if (std::isinf(v)) {
        return v > 0 ? "inf" : "-inf";
    }
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
}

enum class Kind { Int, Real, Bool, Choice, Bias };

// One sampling setting, as every door shows it: the library's keyword, the
// CLI's flag (llama.cpp's own, which `negtemp serve` also hands llama-server
// as its default), llama-server's request field, the type, the default, the
// neutral ("off") value, the range and what it means. The library, the CLI,
// `negtemp serve`, the patched llama-server and negtemp.hf all read this one
// table (Python through _native.sampling_schema()); a value's type is checked
// by each door's parser, its range here.
struct Setting {
    const char * name;
    Kind kind;
    double fallback;  // the default; NaN where there is none (seed: random)
    double neutral;   // the value that turns it off; NaN where none does
    double lo;
    double hi;
    bool open;           // the range excludes lo and hi: (lo, hi), else [lo, hi]
    const char * flag;         // negtemp's CLI flag: llama.cpp's where it has one
    const char * field;        // llama-server's request field ("" where it has none)
    const char * server_flag;  // llama-server's flag for its default, which `negtemp serve` sets ("" where none)
    const char * meaning;

    bool admits(double v) const { return open ? (v > lo && v < hi) : (v >= lo && v <= hi); }

    std::string range_text() const {
        return (open ? "(" : "[") + number_text(lo) + ", " + number_text(hi) + (open ? ")" : "]");
    }

    // what a value of this setting is, in a message: "top_k must be an int"
    std::string expects() const {
        switch (kind) {
            case Kind::Int: return "an int";
            case Kind::Real: return "a number";
            case Kind::Bool: return "a bool";
            case Kind::Choice: return "one of " + path_choices();
            case Kind::Bias: return "a map of token ids to numbers";
        }
        return "";
    }

    [[noreturn]] void refuse(const std::string & got) const {
        const std::string off = std::isnan(neutral) ? "" : " (" + number_text(neutral) + " = off)";
        throw std::invalid_argument(std::string(name) + " must be in " + range_text() + off + ", got " + got);
    }

    [[noreturn]] void refuse_type(const std::string & got) const {
        throw std::invalid_argument(std::string(name) + " must be " + expects() + ", got " + got);
    }

    double check(double v) const {
        if (!admits(v)) {
            refuse(number_text(v));
        }
        return v;
    }

    int64_t check(int64_t v) const {
        if (!admits(static_cast<double>(v))) {
            refuse(std::to_string(v));
        }
        return v;
    }
};

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInt32Max = std::numeric_limits<int32_t>::max();

inline constexpr Setting kTemp{"temp", Kind::Real, 0.8, kNone, -kInf, kInf, false, "--temp", "temperature", "--temp",
                               "temperature T: 0 greedy, -0.001 the least likely tokens, +-inf uniform"};
inline constexpr Setting kBeta{"beta", Kind::Real, kNone, kNone, -kInf, kInf, false, "--beta", "", "",
                               "inverse temperature 1/T instead of temp: +inf greedy, 0 uniform, -inf anti-greedy"};
// 2**32 - 1 is llama.cpp's "pick a random seed", so it cannot name a draw
inline constexpr Setting kSeed{"seed", Kind::Int, kNone, kNone, 0, 4294967294.0, false, "--seed", "seed", "",
                               "random seed; left out, one is drawn and reported"};
inline constexpr Setting kTopK{"top_k", Kind::Int, 0, 0, 0, kInt32Max, false, "--top-k", "top_k", "--top-k",
                               "keep the k tokens the model finds most likely (T = 1)"};
inline constexpr Setting kTopP{"top_p", Kind::Real, 1, 1, 0, 1, false, "--top-p", "top_p", "--top-p",
                               "keep the most likely tokens (T = 1) until their probability reaches top_p"};
inline constexpr Setting kMinP{"min_p", Kind::Real, 0, 0, 0, 1, false, "--min-p", "min_p", "--min-p",
                               "keep the tokens at least min_p times as likely as the most likely one (T = 1)"};
inline constexpr Setting kRepeatPenalty{"repeat_penalty", Kind::Real, 1, 1, 0, kInf, true, "--repeat-penalty",
                                        "repeat_penalty", "--repeat-penalty",
                                        "discourage the last penalty_last_n tokens, at every T"};
// the penalty keeps a ring buffer of this many tokens: past a million it only costs memory
inline constexpr Setting kPenaltyLastN{"penalty_last_n", Kind::Int, 64, kNone, 1, 1 << 20, false, "--repeat-last-n",
                                       "repeat_last_n", "--repeat-last-n",
                                       "tokens the repeat penalty looks back on, the prompt's included"};
inline constexpr Setting kLogitBias{"logit_bias", Kind::Bias, kNone, kNone, -kInf, kInf, false, "--logit-bias",
                                    "logit_bias", "", "added to a token's logit before the chain; -inf bans the token"};
inline constexpr Setting kIgnoreEos{"ignore_eos", Kind::Bool, 0, 0, 0, 1, false, "--ignore-eos", "ignore_eos", "",
                                    "never stop at an end-of-generation token"};
inline constexpr Setting kPath{"path", Kind::Choice, kNone, kNone, kNone, kNone, false, "--sampler-path", "", "",
                               "where the chain runs: auto (fused for the plain chain, else chain), fused, chain "
                               "(llama.cpp's on the CPU), backend (in the decode's ggml graph)"};
inline constexpr Setting kNPredict{"n_predict", Kind::Int, 128, kNone, 1, kInt32Max, false, "--n-predict",
                                   "n_predict", "--n-predict", "tokens to generate at most"};
inline constexpr Setting kNProbs{"n_probs", Kind::Int, 0, 0, 0, kInt32Max, false, "--n-probs", "n_probs", "",
                                 "also report each step's n_probs most likely tokens (at most the vocabulary)"};
// llama.cpp decodes at most 256 sequences together (llama_max_parallel_sequences)
inline constexpr Setting kDrawsTogether{"n", Kind::Int, 1, kNone, 1, 256, false, "--draws", "n", "",
                                        "independent draws of one prompt, decoded together; draw i takes seed + i"};

// Every setting, in the order the chain and the docs list them.
inline constexpr const Setting * kSettings[] = {&kTemp,           &kBeta,          &kSeed,      &kTopK,
                                                &kTopP,           &kMinP,          &kRepeatPenalty,
                                                &kPenaltyLastN,   &kLogitBias,     &kIgnoreEos, &kPath,
                                                &kNPredict,       &kNProbs,        &kDrawsTogether};

// llama.cpp samplers negtemp does not offer, and why: the library refuses them
// by name; the patched llama-server refuses them at T < 0, where their
// meaning flips, and keeps upstream's meaning at T >= 0.
struct Unoffered {
    const char * name;
    const char * why;
};

inline constexpr Unoffered kUnoffered[] = {
    {"mirostat", "mirostat steers the draw toward a target surprise under the tempered distribution; at T < 0 "
                 "that target has no sound meaning"},
    {"typical_p", "typical sampling is not offered (no backend implementation upstream to check it against)"},
    {"top_n_sigma", "top-n-sigma is not offered (no backend implementation upstream to check it against)"},
    {"xtc_probability", "XTC removes the most likely tokens at random; at T < 0, where the least likely win, it has "
                        "no sound meaning"},
    {"dry_multiplier", "DRY subtracts from the logits of repeated sequences, which at T < 0 would favour them; use "
                       "repeat_penalty, which discourages repeats at every T"},
    {"frequency_penalty", "llama.cpp subtracts it from z, which at T < 0 would favour repeats; use repeat_penalty"},
    {"presence_penalty", "llama.cpp subtracts it from z, which at T < 0 would favour repeats; use repeat_penalty"},
    {"dynatemp_range", "dynamic temperature is defined for T >= 0 only"},
};

inline const char * unoffered_reason(const std::string & name) {
    for (const Unoffered & u : kUnoffered) {
        if (name == u.name) {
            return u.why;
        }
    }
    return "";
}

// draws of bare logits (sample_tokens), which decode nothing
inline constexpr IntRange kDraws{"n", 1, std::numeric_limits<int32_t>::max(), " (draws)"};
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
    double beta = 1.0 / kTemp.fallback;  // 1/T: +inf greedy, 0 uniform, -inf anti-greedy
    uint32_t seed = 0;
    int32_t top_k = static_cast<int32_t>(kTopK.fallback);
    double top_p = kTopP.fallback;
    double min_p = kMinP.fallback;
    double repeat_penalty = kRepeatPenalty.fallback;
    int32_t penalty_last_n = static_cast<int32_t>(kPenaltyLastN.fallback);
    std::map<int64_t, double> logit_bias;  // token id -> bias; ids are checked against a vocabulary when bound
    bool ignore_eos = false;               // the model's end-of-generation tokens banned when bound
    SamplerPath path = SamplerPath::Auto;

    // The rules that need no vocabulary; throws std::invalid_argument naming the setting.
    void validate() const {
        kBeta.check(beta);
        kTopP.check(top_p);
        kMinP.check(min_p);
        kRepeatPenalty.check(repeat_penalty);
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
        const auto max_seed = static_cast<int64_t>(kSeed.hi);
        if (s > max_seed) {
            throw std::invalid_argument("draw " + std::to_string(i) + " would take seed " + std::to_string(s) +
                                        ", past the largest seed " + std::to_string(max_seed) +
                                        ": start from a seed at most " + std::to_string(max_seed - i));
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
    bool plain() const {
        return top_k == kTopK.neutral && top_p == kTopP.neutral && min_p == kMinP.neutral &&
               repeat_penalty == kRepeatPenalty.neutral;
    }

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
