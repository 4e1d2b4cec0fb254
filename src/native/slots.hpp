// Many prompts through a fixed number of sequences, llama-server's way
// (continuous batching): each step decodes the next token of every slot that
// is generating and the prompt of every slot that has just taken a job, and a
// slot whose job ends takes the next job at once. A job is one draw of one
// request. Its prompt continues the longest prefix any slot's cells hold
// (copied, not evaluated again) on a model without a sliding window, whose
// cells can be cut part way; draws of one prompt that start together evaluate
// it once and sample from the same logits.
#pragma once

#include "sequences.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace negtemp {

struct SlotRequest {
    std::vector<llama_token> prompt;
    int64_t n_predict = 0;
    std::string grammar;             // GBNF every draw follows ("": none)
    std::vector<BoundChain> chains;  // one per draw, CPU paths
};

class Slots : public Stepper {
public:
    // Sequences decoded together unless the caller says otherwise: memory is
    // parallel x (longest prompt + n_predict) cells of KV cache, and a row of
    // logits per sequence.
    static constexpr size_t kDefaultParallel = 32;
    static constexpr IntRange kParallel{"parallel", 1, 256, " (sequences decoded together; llama.cpp's limit)"};

    // keep_rows[j], want_probs[j]: job j's logits, and every token's probability, in its Sampled.
    // Construct and step without the GIL, inside model.remote_guard.
    Slots(Model & model, std::vector<SlotRequest> requests, size_t parallel, std::vector<char> keep_rows,
          std::vector<char> want_probs);
    Slots(const Slots &) = delete;
    Slots & operator=(const Slots &) = delete;

    std::vector<Sampled> step() override;  // Sampled::seq is the job
    void end(size_t job) override;
    bool done() const override { return finished_ == jobs_.size(); }

private:
    static constexpr size_t kNone = std::numeric_limits<size_t>::max();

    struct Job {
        size_t request;
        size_t draw;
    };

    struct Slot {
        size_t job = kNone;                // the job it runs, if any
        std::vector<llama_token> held;     // the tokens its cells hold, in order
        std::vector<llama_token> pending;  // prompt tokens the next decode evaluates
        size_t leader = kNone;             // the slot whose prompt decode it shares this step
        llama_token last = 0;              // the token sampled last, decoded by the next step
        bool has_last = false;
        int64_t produced = 0;
        std::optional<CpuSampler> sampler;
        int32_t row = -1;                  // the batch index of its logits in this step's decode
    };

    void assign(size_t s, size_t job);
    void finish(size_t s);
    void take(size_t s, Sampled & out);
    llama_seq_id seq(size_t s) const { return static_cast<llama_seq_id>(s); }

    Model & model_;
    std::vector<SlotRequest> requests_;
    std::vector<Job> jobs_;
    std::vector<char> keep_rows_;
    std::vector<char> want_probs_;
    std::vector<size_t> job_slot_;  // where job j runs (kNone before and after)
    std::vector<Slot> slots_;
    bool share_prefixes_;
    Context ctx_;
    std::unique_ptr<llama_batch, void (*)(llama_batch *)> batch_;
    size_t next_job_ = 0;
    size_t finished_ = 0;
};

}  // namespace negtemp
