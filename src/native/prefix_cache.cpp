#include "prefix_cache.hpp"

#include "errors.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace negtemp {
namespace {

size_t common_prefix(const std::vector<llama_token> & a, const std::vector<llama_token> & b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) {
        ++i;
    }
    return i;
}

// Whether the model's logits after a sequence decoded in two parts are those after the sequence
// decoded at once, within the tolerance the tests allow a batched decode (1e-2): a cached prefix is
// exact only then. SmolLM2's agree to the bit, the tests' tiny random model's within 4e-3;
// gemma-3's move by up to a whole unit with the split (as its step-by-step generation's do against
// a batched evaluation of the same tokens), so its cache keeps only the context.
bool splits_are_exact(int32_t n_vocab, llama_context * ctx) {
    std::vector<llama_token> toks;
    for (int32_t i = 0; i < 8; ++i) {
        toks.push_back((i * 7919 + 11) % n_vocab);  // arbitrary ids: the check is of the arithmetic
    }
    llama_memory_t mem = llama_get_memory(ctx);
    auto decode = [&](size_t from, size_t to) {
        // llama_batch_get_one: sequence 0, positions after its last cell, logits of the last token
        if (llama_decode(ctx, llama_batch_get_one(toks.data() + from, static_cast<int32_t>(to - from))) != 0) {
            throw std::runtime_error("llama_decode failed: " + take_log());
        }
        const float * row = llama_get_logits_ith(ctx, -1);
        return std::vector<float>(row, row + n_vocab);
    };
    const std::vector<float> whole = decode(0, toks.size());
    llama_memory_seq_rm(mem, 0, -1, -1);
    decode(0, 3);
    const std::vector<float> split = decode(3, toks.size());
    llama_memory_seq_rm(mem, 0, -1, -1);
    for (int32_t i = 0; i < n_vocab; ++i) {
        if (!(std::fabs(whole[i] - split[i]) <= 1e-2f) && whole[i] != split[i]) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<PrefixCache::Lease> PrefixCache::acquire(ContextSource & model, const std::vector<llama_token> & prompt,
                                                       int64_t n_predict, size_t k_seqs) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (n_slots_ == 0 || leased_ || k_seqs == 0 || k_seqs > kDrawSeqs + 1 || prompt.empty()) {
        return std::nullopt;
    }
    ready_context(model);
    const int32_t n_swa = llama_model_n_swa(model.llama());
    const auto [best, best_len] = longest_prefix(prompt);
    size_t reused = reusable(prompt, best, best_len, n_swa);
    size_t target = slot_for(prompt, best, best_len, reused);
    // cells in use once the call has run: the other slots' (a copied prefix counted twice), the
    // prompt's, each sequence's tokens
    const uint64_t call_cells = prompt.size() + static_cast<uint64_t>(n_predict) * k_seqs;
    if (call_cells > n_cells_) {
        return std::nullopt;  // more than the cache holds even empty
    }
    target = make_room(target, best, call_cells);
    reused = take_prefix(prompt, best, target, reused, n_swa);
    return lease(prompt, target, reused, k_seqs);
}

void PrefixCache::ready_context(ContextSource & model) {
    if (!ctx_.ctx) {
        ctx_ = model.new_context(n_cells_, n_slots_ + kDrawSeqs);
        pool_pid_ = getpid();
        bytes_ = static_cast<uint64_t>(model.kv_bytes_per_token()) * n_cells_;
        splits_exact_ = false;  // until shown: a check that throws leaves the cache reusing nothing
        splits_exact_ = splits_are_exact(model.n_vocab(), ctx_.get());
    } else if (pool_pid_ != getpid()) {
        // a forked child has the pool but none of its threads: a new pool, and the old one left
        // unfreed (freeing joins threads that are not there; the CPU backend still points at it)
        auto pool = model.new_pool();
        (void) ctx_.pool.release();
        ctx_.pool = std::move(pool);
        llama_attach_threadpool(ctx_.get(), ctx_.pool.get(), ctx_.pool.get());
        pool_pid_ = getpid();
    }
}

std::pair<size_t, size_t> PrefixCache::longest_prefix(const std::vector<llama_token> & prompt) const {
    // the slot with the longest common prefix (the most recent of equals); with none, an empty
    // slot, else the least recently used (each slot's prefix measured once)
    std::vector<std::pair<size_t, uint64_t>> ranks;
    for (const Slot & s : slots_) {
        const size_t len = common_prefix(s.tokens, prompt);
        ranks.emplace_back(len, len > 0 ? s.used : s.tokens.empty() ? UINT64_MAX : UINT64_MAX - 1 - s.used);
    }
    const size_t best = static_cast<size_t>(std::max_element(ranks.begin(), ranks.end()) - ranks.begin());
    return {best, ranks[best].first};
}

size_t PrefixCache::reusable(const std::vector<llama_token> & prompt, size_t best, size_t best_len,
                             int32_t n_swa) const {
    // the last prompt token is decoded again for its logits
    const size_t reused = splits_exact_ ? std::min(best_len, prompt.size() - 1) : 0;
    // a sliding-window cache may have reused cells older than the window before the slot's end,
    // so only the slot's end can be continued there
    return n_swa > 0 && reused + 1 < slots_[best].tokens.size() ? 0 : reused;
}

size_t PrefixCache::slot_for(const std::vector<llama_token> & prompt, size_t best, size_t best_len,
                             size_t reused) const {
    // A prompt that departs from the slot's tokens part way continues in another slot, on a copy
    // of the shared prefix (cells shared, not duplicated), so the slot it came from stays whole; a
    // prompt the slot holds whole (asked again) continues in place. A sliding-window model only
    // continues a slot's end (reusable), in place.
    if (!(reused > 0 && best_len < prompt.size() && reused < slots_[best].tokens.size() && slots_.size() > 1)) {
        return best;
    }
    size_t target = best == 0 ? 1 : 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
        const bool emptier = slots_[i].tokens.empty() && !slots_[target].tokens.empty();
        const bool older =
            slots_[i].tokens.empty() == slots_[target].tokens.empty() && slots_[i].used < slots_[target].used;
        if (i != best && (emptier || older)) {
            target = i;
        }
    }
    return target;
}

size_t PrefixCache::make_room(size_t target, size_t best, uint64_t call_cells) {
    auto cells_after = [&] {
        uint64_t other = 0;
        for (size_t i = 0; i < slots_.size(); ++i) {
            other += i == target ? 0 : slots_[i].tokens.size();
        }
        return other + call_cells;
    };
    // evict the least recently used other slots until the call fits (the copy's source last:
    // evicting it means continuing it in place instead)
    while (cells_after() > n_cells_) {
        size_t victim = slots_.size();
        for (size_t i = 0; i < slots_.size(); ++i) {
            const bool held = i != target && i != best && !slots_[i].tokens.empty();
            if (held && (victim == slots_.size() || slots_[i].used < slots_[victim].used)) {
                victim = i;
            }
        }
        if (victim == slots_.size()) {
            empty_slot(target);
            target = best;
            continue;
        }
        empty_slot(victim);
    }
    return target;
}

size_t PrefixCache::take_prefix(const std::vector<llama_token> & prompt, size_t best, size_t target, size_t reused,
                                int32_t n_swa) {
    llama_memory_t mem = llama_get_memory(ctx_.get());
    if (target != best) {
        empty_slot(target);
        llama_memory_seq_cp(mem, static_cast<llama_seq_id>(best), static_cast<llama_seq_id>(target), 0,
                            static_cast<llama_pos>(reused));
        slots_[target].tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(reused));
    }
    const auto seq = static_cast<llama_seq_id>(target);
    if (!llama_memory_seq_rm(mem, seq, static_cast<llama_pos>(reused), -1)) {
        reused = 0;  // a cache that cannot cut a sequence part way (a recurrent model's)
    }
    const int32_t window_start = n_swa > 0 ? std::max<int32_t>(0, static_cast<int32_t>(reused) - n_swa) : 0;
    if (reused > 0 && llama_memory_seq_pos_min(mem, seq) > window_start) {
        reused = 0;  // cells the next tokens attend to are gone
    }
    if (reused == 0) {
        empty_slot(target);
    } else {
        slots_[target].tokens.resize(reused);
    }
    return reused;
}

PrefixCache::Lease PrefixCache::lease(const std::vector<llama_token> & prompt, size_t target, size_t reused,
                                      size_t k_seqs) {
    Lease out;
    out.ctx = ctx_.get();
    out.slot = target;
    out.reused = reused;
    out.seqs.push_back(static_cast<llama_seq_id>(target));
    for (size_t k = 1; k < k_seqs; ++k) {
        out.seqs.push_back(static_cast<llama_seq_id>(n_slots_ + k - 1));
    }
    leased_ = true;
    slots_[target].used = ++clock_;
    last_reused_ = reused;
    last_evaluated_ = prompt.size() - reused;
    return out;
}

void PrefixCache::release(Lease & lease, const std::vector<llama_token> * held) {
    std::lock_guard<std::mutex> lock(mutex_);
    llama_memory_t mem = llama_get_memory(ctx_.get());
    for (size_t k = 1; k < lease.seqs.size(); ++k) {
        llama_memory_seq_rm(mem, lease.seqs[k], -1, -1);
    }
    if (held && !clear_on_release_) {
        slots_[lease.slot].tokens = *held;
    } else {
        empty_slot(lease.slot);
    }
    if (clear_on_release_) {
        for (size_t i = 0; i < slots_.size(); ++i) {
            empty_slot(i);
        }
        clear_on_release_ = false;
    }
    leased_ = false;
}

void PrefixCache::reset(uint32_t n_slots, uint32_t n_cells) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ctx_.pool && pool_pid_ != getpid()) {
        (void) ctx_.pool.release();  // its threads are the parent's (above)
    }
    ctx_ = Context{};
    n_slots_ = n_slots;
    n_cells_ = n_cells;
    slots_.assign(n_slots, Slot{});
    leased_ = false;
    clear_on_release_ = false;
    bytes_ = 0;
}

void PrefixCache::clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (leased_) {
        clear_on_release_ = true;
        return;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
        empty_slot(i);
    }
}

PrefixCache::Info PrefixCache::info() const {
    std::lock_guard<std::mutex> lock(mutex_);
    Info out{0, 0, n_cells_, bytes_, last_reused_, last_evaluated_, splits_exact_};
    for (const Slot & s : slots_) {
        out.prompts += s.tokens.empty() ? 0 : 1;
        out.tokens += s.tokens.size();
    }
    return out;
}

void PrefixCache::empty_slot(size_t i) {
    if (ctx_.ctx) {
        llama_memory_seq_rm(llama_get_memory(ctx_.get()), static_cast<llama_seq_id>(i), -1, -1);
    }
    slots_[i].tokens.clear();
}

}  // namespace negtemp
