#include "sequences.hpp"

#include "grammar.hpp"
#include "slots.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace negtemp {
namespace {

// log p of the token a backend chain drew, from the probabilities the decode
// copied back; SamplingError when they say every token was masked.
double backend_logprob(llama_context * ctx, int32_t i, llama_token token) {
    const float * probs = llama_get_sampled_probs_ith(ctx, i);
    if (!probs) {
        throw std::runtime_error("the backend sampler returned no probabilities");
    }
    const bool filtered = llama_get_sampled_candidates_count_ith(ctx, i) > 0;
    const llama_token * ids = filtered ? llama_get_sampled_candidates_ith(ctx, i) : nullptr;
    const float p = drawn_probability(probs, ids, llama_get_sampled_probs_count_ith(ctx, i), token);
    return std::log(static_cast<double>(p));
}

// The N tokens most likely in the distribution a step drew from, with their
// log-probabilities there and under the model's own (T = 1) softmax of the raw
// logits; and the drawn token's log-probability under the model and its rank
// there (1: the model's most likely token). Ties (tokens whose sampled
// probability underflowed to the same value) are ordered as the temperature
// orders the logits: higher first for T >= 0, lower first for T < 0.
// Non-finite logits count as masked (log p = -inf).
TopTokens top_tokens(const float * logits, const std::vector<double> & sampled, int32_t n_vocab, int32_t n,
                     bool negative_temp, llama_token drawn) {
    float z_max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; ++i) {
        if (std::isfinite(logits[i])) {
            z_max = std::max(z_max, logits[i]);
        }
    }
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) {
        if (std::isfinite(logits[i])) {
            sum += std::exp(static_cast<double>(logits[i]) - z_max);
        }
    }
    const double log_z = static_cast<double>(z_max) + std::log(sum);
    auto model_lp = [&](int32_t i) {
        return std::isfinite(logits[i]) ? static_cast<double>(logits[i]) - log_z : -INFINITY;
    };
    std::vector<int32_t> order(n_vocab);
    for (int32_t i = 0; i < n_vocab; ++i) {
        order[i] = i;
    }
    const int32_t k = std::min(n, n_vocab);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        if (sampled[a] != sampled[b]) {
            return sampled[a] > sampled[b];
        }
        const double za = model_lp(a), zb = model_lp(b);
        if (za != zb) {
            return negative_temp ? za < zb : za > zb;
        }
        return a < b;
    });
    Tokens ids(k);
    Doubles lp_sampled(k), lp_model(k);
    for (int32_t j = 0; j < k; ++j) {
        ids.mutable_at(j) = order[j];
        lp_sampled.mutable_at(j) = std::log(sampled[order[j]]);
        lp_model.mutable_at(j) = model_lp(order[j]);
    }
    const double drawn_lp = model_lp(drawn);
    int64_t rank = 1;
    for (int32_t i = 0; i < n_vocab; ++i) {
        rank += model_lp(i) > drawn_lp ? 1 : 0;
    }
    return py::make_tuple(ids, lp_sampled, lp_model, drawn_lp, rank);
}

}  // namespace

CpuSampler::CpuSampler(const BoundChain & c, const std::vector<llama_token> & prompt, std::unique_ptr<Grammar> grammar)
    : n_vocab_(c.n_vocab()), grammar_(std::move(grammar)) {
    if (c.path() == SamplerPath::Fused) {
        std::vector<float> bias;
        if (!c.bias().empty()) {
            bias.assign(n_vocab_, 0.0f);
            for (const auto & [token, value] : c.bias()) {
                bias[token] += value;
            }
        }
        fused_ = std::make_unique<FusedSampler>(c.temp(), std::move(bias), c.spec().seed);
    } else {
        chain_ = make_chain(c);
        accept_prompt(chain_.get(), c, prompt);
    }
}

llama_token CpuSampler::sample(const float * logits, double & logprob, std::vector<double> * probs) {
    const auto n = static_cast<size_t>(n_vocab_);
    if (fused_) {
        if (probs) {
            probs->resize(n);
            fused_->probs(logits, n, probs->data());  // all masked: sample throws
        }
        const size_t t = fused_->sample(logits, n, &logprob);
        if (t == FusedSampler::kNoToken) {
            throw SamplingError(kAllMasked);
        }
        return static_cast<llama_token>(t);
    }
    double p = 0.0;
    const llama_token t = chain_sample(chain_.get(), logits, n_vocab_, cur_, &p, probs);
    logprob = std::log(p);
    return t;
}

const float * CpuSampler::constrain(const float * logits) {
    if (!grammar_) {
        return logits;
    }
    const auto n = static_cast<size_t>(n_vocab_);
    cur_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        cur_[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
    }
    llama_token_data_array arr{cur_.data(), n, -1, false};
    grammar_->mask(arr);
    masked_.resize(n);
    for (size_t i = 0; i < arr.size; ++i) {
        masked_[static_cast<size_t>(arr.data[i].id)] = arr.data[i].logit;
    }
    return masked_.data();
}

void CpuSampler::accept(llama_token token) {
    if (grammar_) {
        grammar_->accept(token);
    }
}

bool CpuSampler::fused_probs(const float * logits, double * dst) {
    return fused_->probs(logits, static_cast<size_t>(n_vocab_), dst);
}

const char * finish_name(Finish f) {
    switch (f) {
        case Finish::Eog: return "eos";
        case Finish::Length: return "limit";
        case Finish::Error: return "error";
        default: return "";
    }
}

Sequences::Sequences(Model & model, std::vector<llama_token> prompt, int64_t n_predict,
                     const std::vector<BoundChain> & chains, bool keep_rows, bool want_probs,
                     const std::string & grammar)
    : model_(model), prompt_(std::move(prompt)), n_predict_(n_predict), keep_rows_(keep_rows),
      want_probs_(want_probs), running_(chains.size()) {
    const size_t k_seqs = chains.size();
    const size_t max_seqs = llama_max_parallel_sequences();
    if (k_seqs == 0) {
        throw std::invalid_argument("nothing to decode: give at least one setting (a temperature to sweep)");
    }
    if (k_seqs > max_seqs) {
        throw std::invalid_argument("1 to " + std::to_string(max_seqs) +
                                    " sequences decode together (llama.cpp's limit), got " + std::to_string(k_seqs) +
                                    "; split them over several calls");
    }
    const bool backend = chains[0].path() == SamplerPath::Backend;
    for (const BoundChain & c : chains) {
        if ((c.path() == SamplerPath::Backend) != backend || (backend && k_seqs > 1)) {
            throw std::invalid_argument("several sequences sample on the CPU paths only ('auto', 'fused' or "
                                        "'chain'); the backend path samples one sequence inside the graph");
        }
    }
    if (backend && !grammar.empty()) {
        throw std::invalid_argument("a grammar needs a CPU path ('auto', 'fused' or 'chain'): the backend path "
                                    "samples inside the graph, before a grammar could mask the logits");
    }
    if (backend && (keep_rows || want_probs)) {
        throw std::invalid_argument("keep_logits and n_probs need a CPU path ('auto', 'fused' or 'chain'): the "
                                    "backend path samples inside the graph");
    }
    const uint64_t cells = prompt_.size() + static_cast<uint64_t>(n_predict) * k_seqs;
    if (cells > std::numeric_limits<uint32_t>::max()) {
        throw std::invalid_argument(std::to_string(k_seqs) + " sequences of " + std::to_string(n_predict) +
                                    " tokens need " + std::to_string(cells) +
                                    " cells of KV cache, past llama.cpp's limit of 2**32 - 1");
    }
    batch_.reset(new llama_batch(llama_batch_init(static_cast<int32_t>(std::max(prompt_.size(), k_seqs)), 0, 1)));
    if (backend) {
        backend_chain_ = make_chain(chains[0]);
        accept_prompt(backend_chain_.get(), chains[0], prompt_);
    } else {
        for (const BoundChain & c : chains) {
            samplers_.emplace_back(c, prompt_, make_grammar(model, grammar));
        }
        // last: a lease taken is given back by the destructor, which a throwing constructor never runs
        lease_ = model.prefix_cache().acquire(model, prompt_, n_predict, k_seqs);
    }
    if (lease_) {
        ctx_ = lease_->ctx;
        seq_ids_ = lease_->seqs;
        reused_ = lease_->reused;
        held_.assign(prompt_.begin(), prompt_.begin() + static_cast<std::ptrdiff_t>(reused_));
    } else {
        own_ctx_ = model.make_context(static_cast<uint32_t>(cells), static_cast<uint32_t>(k_seqs),
                                      backend_chain_.get());
        ctx_ = own_ctx_.get();
        for (size_t k = 0; k < k_seqs; ++k) {
            seq_ids_.push_back(static_cast<llama_seq_id>(k));
        }
    }
    last_.assign(k_seqs, 0);
    produced_.assign(k_seqs, 0);
    done_.assign(k_seqs, 0);
}

Sequences::~Sequences() {
    if (lease_) {
        model_.prefix_cache().release(*lease_, held_known_ ? &held_ : nullptr);
    }
}

void Sequences::end(size_t k) {
    if (k < done_.size() && !done_[k]) {
        done_[k] = 1;
        --running_;
    }
}

// A decode that fails leaves the cells it wrote unknown: the slot is not kept.
void Sequences::decode(llama_batch & batch) {
    held_known_ = false;
    if (llama_decode(ctx_, batch) != 0) {
        throw std::runtime_error("llama_decode failed: " + take_log());
    }
    held_known_ = true;
}

std::vector<Sampled> Sequences::step() {
    llama_batch & batch = *batch_;
    auto add = [&](llama_token t, size_t pos, size_t k, bool logits) {
        const int32_t j = batch.n_tokens++;
        batch.token[j] = t;
        batch.pos[j] = static_cast<llama_pos>(pos);
        batch.n_seq_id[j] = 1;
        batch.seq_id[j][0] = seq_ids_[k];
        batch.logits[j] = logits;
    };
    batch.n_tokens = 0;
    const bool first = !started_;
    started_ = true;
    std::vector<size_t> active;
    if (first) {
        for (size_t i = reused_; i < prompt_.size(); ++i) {
            add(prompt_[i], i, 0, i + 1 == prompt_.size());
        }
        for (size_t k = 0; k < last_.size(); ++k) {
            active.push_back(k);
        }
    } else {
        for (size_t k = 0; k < last_.size(); ++k) {
            if (!done_[k]) {
                active.push_back(k);
                add(last_[k], prompt_.size() + produced_[k] - 1, k, true);
            }
        }
    }
    std::vector<Sampled> out(active.size());
    if (active.empty()) {
        return out;
    }
    decode(batch);
    if (first) {
        held_.insert(held_.end(), prompt_.begin() + static_cast<std::ptrdiff_t>(reused_), prompt_.end());
        // every sequence continues the prompt's cells, shared rather than copied (kv_unified)
        llama_memory_t mem = llama_get_memory(ctx_);
        for (size_t k = 1; k < last_.size(); ++k) {
            llama_memory_seq_cp(mem, seq_ids_[0], seq_ids_[k], -1, -1);
        }
    } else if (!done_[0]) {
        held_.push_back(last_[0]);
    }
    for (size_t j = 0; j < active.size(); ++j) {
        take(active[j], first ? static_cast<int32_t>(prompt_.size() - reused_ - 1) : static_cast<int32_t>(j), out[j]);
    }
    return out;
}

void Sequences::take(size_t k, int32_t i, Sampled & out) {
    out.seq = k;
    if (backend_chain_) {
        out.token = llama_sampler_sample(backend_chain_.get(), ctx_, i);
        out.logprob = backend_logprob(ctx_, i, out.token);
    } else {
        const float * row = samplers_[k].constrain(llama_get_logits_ith(ctx_, i));
        out.token = samplers_[k].sample(row, out.logprob, want_probs_ ? &out.probs : nullptr);
        samplers_[k].accept(out.token);
        if (keep_rows_) {
            out.row.assign(row, row + model_.n_vocab());
        }
    }
    last_[k] = out.token;
    ++produced_[k];
    out.finish = model_.is_eog(out.token) ? Finish::Eog : produced_[k] >= n_predict_ ? Finish::Length : Finish::None;
    if (out.finish != Finish::None) {
        done_[k] = 1;
        --running_;
    }
}

Generation::Generation(Model & model, const TokenArray & prompt, const py::int_ & n_predict, const ChainSpec & spec,
                       const py::int_ & n_draws, bool keep_logits, const py::int_ & n_probs,
                       const std::string & grammar) {
    const int64_t n = int_in(n_predict, kNPredict);
    const int64_t k_draws = int_in(n_draws, kDrawsTogether);
    const auto top = static_cast<int32_t>(int_in(n_probs, kNProbs));
    std::vector<llama_token> toks = model.prompt(prompt, n);
    seeds_ = spec.draw_seeds(k_draws);
    std::vector<BoundChain> chains;
    for (int64_t i = 0; i < k_draws; ++i) {
        chains.emplace_back(spec.draw(i), model.n_vocab(), &model.eog_tokens());
        jobs_.emplace_back(0, static_cast<size_t>(i));
    }
    n_probs_.assign(chains.size(), top);
    keep_logits_.assign(chains.size(), keep_logits);
    negative_temp_.assign(chains.size(), spec.beta < 0.0);
    start(model, [&] {
        return std::make_unique<Sequences>(model, std::move(toks), n, chains, keep_logits || top > 0, top > 0,
                                           grammar);
    });
}

Generation::Generation(Model & model, const std::vector<TokenArray> & prompts, const std::vector<ChainSpec> & specs,
                       const std::vector<py::int_> & n_predict, const std::vector<py::int_> & n,
                       const std::vector<py::int_> & n_probs, const std::vector<std::string> & grammars,
                       const std::vector<bool> & keep_logits, const pt::Optional<py::int_> & parallel) {
    const size_t n_req = prompts.size();
    if (specs.size() != n_req || n_predict.size() != n_req || n.size() != n_req || n_probs.size() != n_req ||
        grammars.size() != n_req || keep_logits.size() != n_req) {
        throw std::invalid_argument("a batch needs one spec, n_predict, n, n_probs, grammar and keep_logits per "
                                    "prompt");
    }
    if (n_req == 0) {
        throw std::invalid_argument("nothing to decode: give at least one prompt");
    }
    std::vector<SlotRequest> requests;
    for (size_t r = 0; r < n_req; ++r) {
        SlotRequest req;
        req.n_predict = int_in(n_predict[r], kNPredict);
        req.prompt = model.prompt(prompts[r], req.n_predict);
        req.grammar = grammars[r];
        const int64_t k_draws = int_in(n[r], kDraws);
        const auto top = static_cast<int32_t>(int_in(n_probs[r], kNProbs));
        for (uint32_t seed : specs[r].draw_seeds(k_draws)) {
            seeds_.push_back(seed);
        }
        for (int64_t i = 0; i < k_draws; ++i) {
            req.chains.emplace_back(specs[r].draw(i), model.n_vocab(), &model.eog_tokens());
            jobs_.emplace_back(r, static_cast<size_t>(i));
            keep_logits_.push_back(keep_logits[r]);
            n_probs_.push_back(top);
            negative_temp_.push_back(specs[r].beta < 0.0);
        }
        requests.push_back(std::move(req));
    }
    if (jobs_.size() == 1) {
        // one sequence: as complete() runs it, on the prefix cache or the backend path
        SlotRequest & req = requests[0];
        start(model, [&] {
            return std::make_unique<Sequences>(model, std::move(req.prompt), req.n_predict, req.chains,
                                               keep_logits_[0] || n_probs_[0] > 0, n_probs_[0] > 0, req.grammar);
        });
        return;
    }
    for (const SlotRequest & req : requests) {
        for (const BoundChain & c : req.chains) {
            if (c.path() == SamplerPath::Backend) {
                throw std::invalid_argument("several sequences sample on the CPU paths only ('auto', 'fused' "
                                            "or 'chain'); the backend path samples one sequence inside the graph");
            }
        }
    }
    const size_t n_par = parallel.is_none() ? std::min<size_t>(jobs_.size(), Slots::kDefaultParallel)
                                            : static_cast<size_t>(int_in(py::int_(parallel), Slots::kParallel));
    std::vector<char> keep(n_probs_.size()), want(n_probs_.size());
    for (size_t j = 0; j < n_probs_.size(); ++j) {
        keep[j] = keep_logits_[j] || n_probs_[j] > 0;
        want[j] = n_probs_[j] > 0;
    }
    start(model, [&] { return std::make_unique<Slots>(model, std::move(requests), n_par, keep, want); });
}

void Generation::start(Model & model, const std::function<std::unique_ptr<Stepper>()> & make) {
    {
        py::gil_scoped_release release;
        seq_ = model.remote_guard(make);
    }
    model_ = &model;
    model.attach(this);
}

void Generation::release() {
    if (model_) {
        model_->detach(this);
        model_ = nullptr;
    }
    seq_.reset();
}

void Generation::end(size_t k) {
    if (seq_) {
        seq_->end(k);
        if (seq_->done()) {
            close();
        }
    }
}

pt::Optional<Steps> Generation::next() {
    if (done_) {
        return py::none();
    }
    if (!model_) {
        throw Cancelled("the Model was closed while this generation was open");
    }
    if (cancel_.exchange(false)) {
        close();
        throw Cancelled("generation cancelled by Model.cancel() or Model.close() from another thread");
    }
    std::vector<Sampled> sampled;
    std::vector<std::string> pieces;
    try {
        {
            py::gil_scoped_release release;
            sampled = model_->remote_guard([&] { return seq_->step(); });
        }
        for (const Sampled & s : sampled) {
            pieces.push_back(s.finish == Finish::Error ? s.error : model_->piece(s.token));
        }
    } catch (...) {
        close();
        throw;
    }
    if (seq_->done()) {
        close();
    }
    if (PyErr_CheckSignals() != 0) {
        close();
        throw py::error_already_set();
    }
    Steps out;
    for (size_t j = 0; j < sampled.size(); ++j) {
        const Sampled & s = sampled[j];
        py::object logits = py::none();
        if (keep_logits_[s.seq] && s.finish != Finish::Error) {
            logits = Floats(s.row.size(), s.row.data());
        }
        py::object top = py::none();
        if (n_probs_[s.seq] > 0 && s.finish != Finish::Error) {
            top = top_tokens(s.row.data(), s.probs, static_cast<int32_t>(s.row.size()), n_probs_[s.seq],
                             negative_temp_[s.seq] != 0, s.token);
        }
        out.append(py::make_tuple(s.seq, s.token, s.logprob, py::bytes(pieces[j]), finish_name(s.finish), logits, top));
    }
    return out;
}

}  // namespace negtemp
