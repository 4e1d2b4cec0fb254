// The generation loop: sequences decoded together a token each per step,
// each sampled through its own chain.
//
// Two steppers share the sampling (CpuSampler) and the Python object
// (Generation): Sequences continues one prompt in n draws on the Model's
// prefix cache or on the backend path (stream, complete, draws); Slots
// (slots.hpp) runs many prompts through a fixed number of sequences on a
// context of its own (batch, sweep). Each step's end of a sequence (an
// end-of-generation token, or n_predict tokens) is decided by the stepper
// and nowhere else; Python only reports it (stop strings are text, matched
// by Python's TokenText).
#pragma once

#include "chain.hpp"
#include "sampling_rules.hpp"
#include "context.hpp"
#include "fused_sampler.hpp"
#include "grammar.hpp"
#include "model.hpp"
#include "prefix_cache.hpp"
#include "py_types.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <memory>
#include <optional>
#include <vector>

namespace negtemp {

// One sequence's sampler on the CPU: negtemp's fused sampler or llama.cpp's chain,
// its repeat penalty's window starting with the end of prompt (accept_prompt),
// after the grammar (when given), which masks the tokens it does not allow.
class CpuSampler {
public:
    explicit CpuSampler(const BoundChain & chain, const std::vector<llama_token> & prompt = {},
                        std::unique_ptr<Grammar> grammar = nullptr);

    // The logits the chain runs on: the model's, or a copy with the tokens the
    // grammar does not allow now at -inf. Valid until the next call.
    const float * constrain(const float * logits);

    // The grammar moves past the token drawn.
    void accept(llama_token token);

    // A draw from logits; logprob gets its log-probability, and probs (when
    // given) every token's probability in the distribution drawn from.
    // SamplingError when every token is masked.
    llama_token sample(const float * logits, double & logprob, std::vector<double> * probs = nullptr);

    // The fused sampler's probabilities without a draw (false: every token masked).
    bool fused_probs(const float * logits, double * dst);

private:
    int32_t n_vocab_;
    SamplerPtr chain_;
    std::unique_ptr<FusedSampler> fused_;
    std::unique_ptr<Grammar> grammar_;
    std::vector<llama_token_data> cur_;
    std::vector<float> masked_;
};

// Error: a batch's job whose step had every token masked (the others go on)
enum class Finish { None, Eog, Length, Error };

const char * finish_name(Finish f);

// What one step gave one sequence.
struct Sampled {
    size_t seq;  // the sequence (Sequences) or job (Slots)
    llama_token token;
    double logprob;
    Finish finish;
    std::vector<float> row;     // the logits it was drawn from, when kept
    std::vector<double> probs;  // every token's probability in that draw, when asked
    std::string error;          // with Finish::Error: why (token is then -1)
};

// What Generation steps: a set of sequences, each ended by the stepper or by end().
class Stepper {
public:
    virtual ~Stepper() = default;
    // Decode the next token of every sequence running and sample it (without the GIL).
    virtual std::vector<Sampled> step() = 0;
    // Sequence k decodes no more (the caller found a stop string in its text).
    virtual void end(size_t k) = 0;
    virtual bool done() const = 0;
};

class Sequences : public Stepper {
public:
    // chains: one per sequence, bound to the model's vocabulary. A chain on
    // the backend path samples inside the decode, for a single sequence only.
    // CPU chains run on the Model's prefix cache when it can take the call
    // (the prompt's cached prefix is not evaluated again), else on a fresh context.
    // Construct and step without the GIL, inside model.remote_guard.
    // grammar: GBNF every sequence follows ("": none), CPU paths only.
    Sequences(Model & model, std::vector<llama_token> prompt, int64_t n_predict, const std::vector<BoundChain> & chains,
              bool keep_rows, bool want_probs, const std::string & grammar);
    ~Sequences() override;
    Sequences(const Sequences &) = delete;
    Sequences & operator=(const Sequences &) = delete;

    // The first step evaluates the prompt once for all of the sequences.
    std::vector<Sampled> step() override;
    void end(size_t k) override;
    bool done() const override { return running_ == 0; }

private:
    void take(size_t k, int32_t batch_index, Sampled & out);
    void decode(llama_batch & batch);

    struct BatchFree {
        void operator()(llama_batch * b) const {
            llama_batch_free(*b);
            delete b;
        }
    };

    Model & model_;
    std::vector<llama_token> prompt_;
    int64_t n_predict_;
    bool keep_rows_;
    bool want_probs_;
    SamplerPtr backend_chain_;
    Context own_ctx_;  // declared after the chain the context samples with: freed before it
    std::optional<PrefixCache::Lease> lease_;
    llama_context * ctx_ = nullptr;  // own_ctx_'s or the lease's
    std::vector<llama_seq_id> seq_ids_;
    size_t reused_ = 0;               // prompt tokens already in the cache
    std::vector<llama_token> held_;   // the tokens sequence 0's cells hold
    bool held_known_ = true;          // false once a decode failed part way
    std::vector<CpuSampler> samplers_;
    std::unique_ptr<llama_batch, BatchFree> batch_;
    std::vector<llama_token> last_;
    std::vector<int64_t> produced_;
    std::vector<char> done_;
    size_t running_;
    bool started_ = false;  // the prompt was decoded
};

// One generation, advanced a token at a time (Model.stream, complete(), draws(),
// batch() and sweep()): its sequences live here between calls, so the caller can
// stop early and the context is freed at once by close(). Methods are called
// with the GIL held; next() releases it for the decode.
class Generation : public Attachment {
public:
    // n draws of prompt with spec, decoded together: draw i is spec.draw(i).
    Generation(Model & model, const TokenArray & prompt, const py::int_ & n_predict, const ChainSpec & spec,
               const py::int_ & n, bool keep_logits, const py::int_ & n_probs, const std::string & grammar);

    // Many requests through `parallel` sequences (Slots): request r is prompts[r]
    // drawn n[r] times with specs[r] (draw i seeded specs[r].draw(i)), n_predict[r]
    // tokens at most, n_probs[r] alternatives a step, following grammars[r] ("": none),
    // its logits kept with keep_logits[r].
    // Sequence j of next() is job j: jobs() lists (request, draw) in order.
    Generation(Model & model, const std::vector<TokenArray> & prompts, const std::vector<ChainSpec> & specs,
               const std::vector<py::int_> & n_predict, const std::vector<py::int_> & n,
               const std::vector<py::int_> & n_probs, const std::vector<std::string> & grammars,
               const std::vector<bool> & keep_logits, const pt::Optional<py::int_> & parallel);

    // Each sequence's seed, in order.
    std::vector<uint32_t> seeds() const { return seeds_; }
    // Each sequence's (request, draw).
    std::vector<std::pair<size_t, size_t>> jobs() const { return jobs_; }
    ~Generation() { close(); }
    Generation(const Generation &) = delete;
    Generation & operator=(const Generation &) = delete;

    void cancel() override { cancel_ = true; }
    void release() override;

    // Frees the context; the next call to next() returns None. From Model.close(),
    // next() raises Cancelled instead: the generation did not end, it was stopped.
    void close() {
        release();
        done_ = true;
    }

    // The next token of each sequence still running: [(sequence, token, log p
    // sampled, piece bytes, why it ended, in llama-server's words ("", "eos" or "limit"), raw logits or
    // None, (ids, log p sampled, log p model) or None)]; None once every
    // sequence has finished or the generation was closed. A batch's job that
    // could not draw ends with token -1, why "error" and the message as its piece.
    pt::Optional<Steps> next();

    // Sequence k decodes no more: a stop string ended its text.
    void end(size_t k);

private:
    void start(Model & model, const std::function<std::unique_ptr<Stepper>()> & make);

    Model * model_ = nullptr;
    std::vector<bool> keep_logits_;      // a sequence's
    std::vector<int32_t> n_probs_;       // a sequence's
    std::vector<char> negative_temp_;    // a sequence's
    std::vector<uint32_t> seeds_;
    std::vector<std::pair<size_t, size_t>> jobs_;
    std::unique_ptr<Stepper> seq_;
    bool done_ = false;
    std::atomic<bool> cancel_{false};
};

}  // namespace negtemp
