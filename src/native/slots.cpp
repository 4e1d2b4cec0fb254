#include "slots.hpp"

#include "errors.hpp"
#include "grammar.hpp"

#include <algorithm>
#include <stdexcept>

namespace negtemp {
namespace {

void free_batch(llama_batch * b) {
    llama_batch_free(*b);
    delete b;
}

size_t common_prefix(const std::vector<llama_token> & a, const std::vector<llama_token> & b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) {
        ++i;
    }
    return i;
}

}  // namespace

Slots::Slots(Model & model, std::vector<SlotRequest> requests, size_t parallel, std::vector<char> keep_rows,
             std::vector<char> want_probs)
    : model_(model), requests_(std::move(requests)), keep_rows_(std::move(keep_rows)),
      want_probs_(std::move(want_probs)), batch_(nullptr, free_batch) {
    uint64_t longest = 0;
    for (size_t r = 0; r < requests_.size(); ++r) {
        const SlotRequest & req = requests_[r];
        longest = std::max<uint64_t>(longest, req.prompt.size() + static_cast<uint64_t>(req.n_predict));
        for (size_t d = 0; d < req.chains.size(); ++d) {
            jobs_.push_back(Job{r, d});
        }
    }
    if (jobs_.empty()) {
        throw std::invalid_argument("nothing to decode: give at least one prompt and one draw");
    }
    kParallel.check(static_cast<int64_t>(parallel));
    const size_t n_slots = std::min(parallel, jobs_.size());
    // each slot's cells hold one job's prompt and tokens at most (a shared prefix counts once)
    const uint64_t cells = longest * n_slots;
    if (cells > std::numeric_limits<uint32_t>::max()) {
        throw std::invalid_argument(std::to_string(n_slots) + " sequences of up to " + std::to_string(longest) +
                                    " tokens need " + std::to_string(cells) +
                                    " cells of KV cache, past llama.cpp's limit of 2**32 - 1; lower parallel");
    }
    job_slot_.assign(jobs_.size(), kNone);
    slots_.resize(n_slots);
    // a sliding-window cache cannot cut a sequence part way, so nothing is shared but whole prompts
    share_prefixes_ = llama_model_n_swa(model.llama()) == 0;
    ctx_ = model.make_context(static_cast<uint32_t>(cells), static_cast<uint32_t>(n_slots));
    batch_.reset(new llama_batch(llama_batch_init(static_cast<int32_t>(std::max<uint64_t>(cells, 1)), 0, 1)));
}

void Slots::assign(size_t s, size_t j) {
    Slot & slot = slots_[s];
    const SlotRequest & req = requests_[jobs_[j].request];
    const std::vector<llama_token> & prompt = req.prompt;
    slot.job = j;
    slot.produced = 0;
    slot.has_last = false;
    slot.leader = kNone;
    slot.pending.clear();
    slot.sampler.emplace(req.chains[jobs_[j].draw], prompt, make_grammar(model_, req.grammar));
    job_slot_[j] = s;
    llama_memory_t mem = llama_get_memory(ctx_.get());
    for (size_t o = 0; o < slots_.size(); ++o) {
        const Slot & other = slots_[o];
        if (o != s && other.job != kNone && !other.pending.empty() && other.leader == kNone &&
            requests_[jobs_[other.job].request].prompt == prompt) {
            llama_memory_seq_rm(mem, seq(s), -1, -1);
            slot.held.clear();
            slot.leader = o;
            return;
        }
    }
    size_t best = s, best_len = 0;
    if (share_prefixes_) {
        for (size_t o = 0; o < slots_.size(); ++o) {
            const size_t len = common_prefix(slots_[o].held, prompt);
            if (len > best_len || (len == best_len && o == s)) {
                best = o;
                best_len = len;
            }
        }
    }
    // the prompt's last token is evaluated again: its logits are the first draw's
    const size_t reused = std::min(best_len, prompt.size() - 1);
    if (best == s && reused > 0 && llama_memory_seq_rm(mem, seq(s), static_cast<llama_pos>(reused), -1)) {
        slot.held.resize(reused);
    } else {
        llama_memory_seq_rm(mem, seq(s), -1, -1);
        slot.held.clear();
        if (best != s && reused > 0) {
            llama_memory_seq_cp(mem, seq(best), seq(s), 0, static_cast<llama_pos>(reused));
            slot.held.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(reused));
        }
    }
    slot.pending.assign(prompt.begin() + static_cast<std::ptrdiff_t>(slot.held.size()), prompt.end());
}

void Slots::finish(size_t s) {
    Slot & slot = slots_[s];
    job_slot_[slot.job] = kNone;
    slot.job = kNone;
    slot.sampler.reset();
    slot.has_last = false;
    ++finished_;
}

void Slots::end(size_t j) {
    if (j < job_slot_.size() && job_slot_[j] != kNone) {
        finish(job_slot_[j]);
    }
}

std::vector<Sampled> Slots::step() {
    for (size_t s = 0; s < slots_.size() && next_job_ < jobs_.size(); ++s) {
        if (slots_[s].job == kNone) {
            assign(s, next_job_++);
        }
    }
    llama_batch & batch = *batch_;
    batch.n_tokens = 0;
    auto add = [&](llama_token t, size_t pos, size_t s, bool logits) {
        const int32_t i = batch.n_tokens++;
        batch.token[i] = t;
        batch.pos[i] = static_cast<llama_pos>(pos);
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = seq(s);
        batch.logits[i] = logits;
        return i;
    };
    std::vector<size_t> sampling;  // the slots that draw this step, in slot order
    for (size_t s = 0; s < slots_.size(); ++s) {
        Slot & slot = slots_[s];
        if (slot.job == kNone) {
            continue;
        }
        if (!slot.pending.empty()) {
            for (size_t i = 0; i < slot.pending.size(); ++i) {
                slot.row = add(slot.pending[i], slot.held.size() + i, s, i + 1 == slot.pending.size());
            }
        } else if (slot.has_last) {
            slot.row = add(slot.last, slot.held.size(), s, true);
        }
        sampling.push_back(s);
    }
    std::vector<Sampled> out(sampling.size());
    if (sampling.empty()) {
        return out;
    }
    if (llama_decode(ctx_.get(), batch) != 0) {
        throw std::runtime_error("llama_decode failed: " + take_log());
    }
    llama_memory_t mem = llama_get_memory(ctx_.get());
    for (size_t s : sampling) {
        Slot & slot = slots_[s];
        if (!slot.pending.empty()) {
            slot.held.insert(slot.held.end(), slot.pending.begin(), slot.pending.end());
            slot.pending.clear();
        } else if (slot.has_last) {
            slot.held.push_back(slot.last);
        }
    }
    // leaders came first (a follower is assigned after its leader, in a later slot or a freed earlier one)
    for (size_t s : sampling) {
        Slot & slot = slots_[s];
        if (slot.leader != kNone) {
            const Slot & lead = slots_[slot.leader];
            llama_memory_seq_cp(mem, seq(slot.leader), seq(s), -1, -1);
            slot.held = lead.held;
            slot.row = lead.row;
            slot.leader = kNone;
        }
    }
    for (size_t i = 0; i < sampling.size(); ++i) {
        take(sampling[i], out[i]);
    }
    return out;
}

void Slots::take(size_t s, Sampled & out) {
    Slot & slot = slots_[s];
    const size_t j = slot.job;
    out.seq = j;
    CpuSampler & sampler = *slot.sampler;
    const float * row = sampler.constrain(llama_get_logits_ith(ctx_.get(), slot.row));
    try {
        out.token = sampler.sample(row, out.logprob, want_probs_[j] ? &out.probs : nullptr);
    } catch (const SamplingError & e) {
        out.token = -1;
        out.logprob = 0.0;
        out.finish = Finish::Error;
        out.error = e.what();
        finish(s);
        return;
    }
    sampler.accept(out.token);
    if (keep_rows_[j]) {
        out.row.assign(row, row + model_.n_vocab());
    }
    slot.last = out.token;
    slot.has_last = true;
    ++slot.produced;
    const int64_t n_predict = requests_[jobs_[j].request].n_predict;
    out.finish = model_.is_eog(out.token) ? Finish::Eog : slot.produced >= n_predict ? Finish::Length : Finish::None;
    if (out.finish != Finish::None) {
        finish(s);
    }
}

}  // namespace negtemp
