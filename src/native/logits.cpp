#include "logits.hpp"

#include "chain_probs.hpp"
#include "sequences.hpp"

#include <algorithm>

namespace negtemp {
namespace {

// Backend draws per graph computation in sample_tokens (BackendChain copies).
constexpr int64_t kBackendDrawsPerRun = 64;

BoundChain bind(const Logits & logits, const ChainSpec & spec) {
    if (logits.ndim() != 1 || logits.size() == 0) {
        throw std::invalid_argument("logits must be a non-empty 1-D array");
    }
    return BoundChain(spec, static_cast<int64_t>(logits.size()));
}

}  // namespace

Doubles sampler_probs(const Logits & logits, const ChainSpec & spec, const std::vector<int64_t> & history,
                      const std::string & device) {
    const BoundChain chain = bind(logits, spec);
    const std::vector<llama_token> seen = history_tokens(history, chain.n_vocab());
    Doubles out(logits.size());
    double * dst = out.mutable_data();
    py::gil_scoped_release release;
    if (chain.path() == SamplerPath::Fused) {
        // the fused sampler's own weights, through the same sampler as generation
        if (!CpuSampler(chain).fused_probs(logits.data(), dst)) {
            throw SamplingError(kAllMasked);
        }
    } else {
        negtemp::sampler_probs(chain, logits.data(), seen, dst, device);
    }
    return out;
}

void check_chain(const ChainSpec & spec, int64_t n_vocab, const std::vector<int64_t> & history) {
    const BoundChain bound(spec, n_vocab);
    history_tokens(history, n_vocab);
}

Tokens sample_tokens(const Logits & logits, const ChainSpec & spec, const py::int_ & n_draws_obj,
                     const std::string & device) {
    const BoundChain chain = bind(logits, spec);
    const int64_t n_draws = int_in(n_draws_obj, kDraws);
    if (spec.repeat_penalty != 1.0) {
        throw std::invalid_argument("sample_tokens draws independently; a repeat penalty would chain the draws "
                                    "(use sampler_probs(..., history=...) for penalties)");
    }
    Tokens out(n_draws);
    int32_t * dst = out.mutable_data();
    py::gil_scoped_release release;
    if (chain.path() == SamplerPath::Backend) {
        // draws in batches of copies of the graph: the same draws, fewer computations
        const auto copies = static_cast<size_t>(std::min<int64_t>(n_draws, kBackendDrawsPerRun));
        BackendChain backend(chain, logits.data(), {}, device, copies);
        for (int64_t k = 0; k < n_draws;) {
            for (llama_token t : backend.run(nullptr)) {
                if (k < n_draws) {
                    dst[k++] = t;
                }
            }
        }
        return out;
    }
    CpuSampler sampler(chain);
    double logprob = 0.0;
    for (int64_t k = 0; k < n_draws; ++k) {
        dst[k] = sampler.sample(logits.data(), logprob);
    }
    return out;
}

}  // namespace negtemp
