// The KV cache of a Model's recent prompts, kept between calls: a prompt that
// shares a prefix with one of them evaluates only the tokens past it.
//
// One llama.cpp context of n_ctx cells holds up to n_slots prompts, each in a
// sequence of its own, with what the last call that used it generated on its
// first sequence. A call leases the whole context (one call at a time; a call
// that finds it leased, or needs more cells or sequences than it has, makes a
// fresh context as before), continues the slot with the longest common prefix
// and gives the slot back with the tokens its cells now hold. A model whose
// logits depend on how a sequence is split into decodes (gemma-3) reuses no
// prefix: the cache then only spares it a context per call. A slot's record
// is exactly what its cells hold, or the slot is emptied: a call that fails
// part way empties it.
#pragma once

#include "context.hpp"

#include "llama.h"

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace negtemp {

class PrefixCache {
public:
    // Sequences a lease may decode beside the slot's own: draws past this use a fresh context.
    // Each costs a row of logits in the context's output buffer (1 MiB at gemma-3's 262,144
    // tokens), so 8 draws, the bench's largest, and not llama.cpp's 256.
    static constexpr uint32_t kDrawSeqs = 7;

    struct Lease {
        llama_context * ctx = nullptr;
        std::vector<llama_seq_id> seqs;  // seqs[0]: the slot's sequence; the others start empty
        size_t reused = 0;               // prompt tokens already in seqs[0]'s cells
        size_t slot = 0;
    };

    struct Info {
        size_t prompts;         // slots holding tokens
        uint64_t tokens;        // cells they hold
        uint64_t capacity;      // cells in all (the Model's n_ctx)
        uint64_t bytes;         // the KV cache's memory, once made
        uint64_t last_reused;   // prompt tokens the last call found cached
        uint64_t last_evaluated;  // prompt tokens it evaluated
        bool reuses;              // false: this model's logits depend on how a sequence is split into
                                  // decodes, so every prompt is evaluated whole (the context is kept)
    };

    PrefixCache(uint32_t n_slots, uint32_t n_cells) : n_slots_(n_slots), n_cells_(n_cells), slots_(n_slots) {}

    // Frees the context and starts over with n_slots slots of n_cells cells in
    // all (0: off), with no lease open (Model.close() releases them first).
    void reset(uint32_t n_slots, uint32_t n_cells);

    // A lease on the cache for `prompt` decoded into k_seqs sequences of at most
    // n_predict tokens each, or nothing when the cache cannot take the call
    // (off, leased, too many sequences, too little room). Without the GIL,
    // inside model.remote_guard.
    std::optional<Lease> acquire(ContextSource & model, const std::vector<llama_token> & prompt, int64_t n_predict,
                                 size_t k_seqs);

    // Gives the lease back: `held` are the tokens seqs[0]'s cells hold now, or
    // null when they are unknown (a decode failed), which empties the slot.
    void release(Lease & lease, const std::vector<llama_token> * held);

    // Empties every slot (a leased one when it is given back).
    void clear();

    Info info() const;

private:
    struct Slot {
        std::vector<llama_token> tokens;
        uint64_t used = 0;  // when a call last used it: the least recent is evicted first
    };

    // acquire's steps, in order, with the mutex held
    void ready_context(ContextSource & model);  // made at the first lease; a new pool in a forked child
    std::pair<size_t, size_t> longest_prefix(const std::vector<llama_token> & prompt) const;  // (slot, length)
    size_t reusable(const std::vector<llama_token> & prompt, size_t best, size_t best_len, int32_t n_swa) const;
    size_t slot_for(const std::vector<llama_token> & prompt, size_t best, size_t best_len, size_t reused) const;
    size_t make_room(size_t target, size_t best, uint64_t call_cells);  // evicts; the slot the call will use
    size_t take_prefix(const std::vector<llama_token> & prompt, size_t best, size_t target, size_t reused,
                       int32_t n_swa);  // the prefix's cells in target; how many tokens they hold
    Lease lease(const std::vector<llama_token> & prompt, size_t target, size_t reused, size_t k_seqs);

    void empty_slot(size_t i);

    uint32_t n_slots_;
    uint32_t n_cells_;
    mutable std::mutex mutex_;
    // made at the first lease, with its thread pool: the CPU backend keeps a pointer to the
    // last pool it ran on, so a pool is freed only with the context
    Context ctx_;
    pid_t pool_pid_ = 0;  // the process whose threads the pool has
    std::vector<Slot> slots_;
    bool leased_ = false;
    bool clear_on_release_ = false;
    uint64_t clock_ = 0;
    uint64_t bytes_ = 0;
    uint64_t last_reused_ = 0;
    uint64_t last_evaluated_ = 0;
    bool splits_exact_ = true;  // checked when the context is made
};

}  // namespace negtemp
