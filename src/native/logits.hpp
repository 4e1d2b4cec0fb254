// The sampler chain on a caller's logits, without a model: every token's
// probability (negtemp.sampler_probs) and independent draws
// (negtemp.sample_tokens), on any path. What the tests compare against
// negtemp.reference.
#pragma once

#include "sampling_rules.hpp"
#include "py_types.hpp"

#include <string>
#include <vector>

namespace negtemp {

Doubles sampler_probs(const Logits & logits, const ChainSpec & spec, const std::vector<int64_t> & history,
                      const std::string & device);

// ValueError unless spec's logit bias and history are token ids of a vocabulary of n_vocab tokens
// (what negtemp.reference checks with).
void check_chain(const ChainSpec & spec, int64_t n_vocab, const std::vector<int64_t> & history);

// Each draw starts from the same logits; a repeat penalty would make the
// draws depend on each other, so it is refused.
Tokens sample_tokens(const Logits & logits, const ChainSpec & spec, const py::int_ & n_draws,
                     const std::string & device);

}  // namespace negtemp
