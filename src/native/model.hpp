// A loaded model: its vocabulary, tokenizer, chat template and contexts.
//
// Everything here runs with the GIL held unless it says otherwise; the
// generation loop that uses a Model is sequences.hpp.
#pragma once

#include "context.hpp"
#include "errors.hpp"
#include "prefix_cache.hpp"
#include "py_types.hpp"

#include "ggml-rpc.h"
#include "llama.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace negtemp {

// What a Model's close() and cancel() reach: the generations open on it.
class Attachment {
public:
    virtual void release() = 0;  // free the context, before the model it was made from
    virtual void cancel() = 0;   // stop at the next token with Cancelled

protected:
    ~Attachment() = default;
};

// Each node a decode computes, in order: (name, op, device, buffer type).
struct NodeTrace {
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> nodes;
};

// The KV cache element type for a name ("f16", "f32"); ValueError for any other.
ggml_type kv_cache_type(const std::string & name);

class Model : public ContextSource {
public:
    static constexpr uint32_t kDefaultCtx = 2048;

    // n_ctx 0: the model's training context, at most kDefaultCtx tokens.
    // n_gpu_layers: layers offloaded to the GPU devices of a GPU build (-1: all).
    // main_gpu >= 0: the whole model on that GPU device alone (llama.cpp's
    // split mode "none"); -1: layers split over every GPU device.
    // rpc: "host:port" of llama.cpp RPC servers the offloaded layers are split
    // over, with rpc_timeout_ms bounding each wait on one of them (0: none).
    // prefix_slots: how many recent prompts keep their KV cache (prefix_cache.hpp; 0: none).
    // kv_type: the KV cache's element type, "f16" (llama.cpp's default) or "f32".
    // path: the file name's bytes, as the OS takes them (need not be UTF-8)
    Model(const py::bytes & path, uint32_t n_ctx, int32_t n_threads, int32_t n_gpu_layers, int32_t main_gpu,
          const std::vector<std::string> & rpc, uint32_t rpc_timeout_ms, const py::int_ & prefix_slots,
          const std::string & kv_type);
    ~Model() override;
    Model(const Model &) = delete;
    Model & operator=(const Model &) = delete;

    void close();
    bool closed() const { return model_ == nullptr; }
    // Any thread: the generations open on this Model stop at their next token
    // with Cancelled, and so does a sweep or tokenization running now (they
    // clear the request when they start).
    void cancel();

    void attach(Attachment * a) { live_.insert(a); }
    void detach(Attachment * a) { live_.erase(a); }

    uint32_t n_ctx() const { return n_ctx_; }
    int32_t n_ctx_train() const { return llama_model_n_ctx_train(checked()); }
    const llama_vocab * vocab() const {
        checked();
        return vocab_;
    }
    int32_t n_vocab() const override { return llama_vocab_n_tokens(vocab()); }
    const std::vector<int32_t> & eog_tokens() const { return eog_; }
    bool is_eog(llama_token t) const { return llama_vocab_is_eog(vocab(), t); }
    int64_t kv_bytes_per_token() const override;

    Tokens tokenize(const std::string & text, bool add_special, bool parse_special);
    py::bytes token_to_piece(int64_t token) const;
    std::string piece(llama_token token) const;  // token checked by the caller
    // Every token's piece, made at the first call and kept (a Model's calls are serialized by its Python lock).
    const std::vector<std::string> & pieces() const;
    pt::Optional<py::str> chat_prompt(const std::vector<std::pair<std::string, std::string>> & messages) const;
    Floats eval_logits(const TokenArray & tokens);
    NodeList op_backends(const TokenArray & prompt, const ChainSpec & spec);

    // Token ids from Python, checked against the vocabulary; at least one.
    std::vector<llama_token> tokens(const TokenArray & ids) const;
    // The prompt of a generation: tokens(), and ContextOverflow unless they
    // and n_predict more fit the context.
    std::vector<llama_token> prompt(const TokenArray & ids, int64_t n_predict) const;

    // A context for n_tokens cells over n_seq sequences (with a backend
    // sampler chain for sequence 0, and a trace of every node, when given).
    // Call without the GIL, inside remote_guard.
    Context make_context(uint32_t n_tokens, uint32_t n_seq, llama_sampler * backend_chain = nullptr,
                         NodeTrace * trace = nullptr);
    // A ggml thread pool of n_threads threads for one call's decodes.
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> new_pool() const override;
    // the prefix cache's context: no backend chain, no trace
    Context new_context(uint32_t n_cells, uint32_t n_seqs) override { return make_context(n_cells, n_seqs); }

    // The cache of recent prompts' KV, for a call on the CPU paths.
    PrefixCache & prefix_cache() { return cache_; }
    llama_model * llama() const override { return checked(); }

    // f(), with an RPC fault in it made a RemoteFault that also marks this Model lost
    template <class F> auto remote_guard(F && f) -> decltype(f());

    // With the GIL held: Ctrl-C (main thread only: Python runs signal
    // handlers there) and cancel() from any thread.
    void check_interrupts();
    void clear_cancel() { cancel_ = false; }

private:
    [[noreturn]] void lose(const std::string & endpoint, const std::string & what);
    void check_remote();
    void free_model();
    llama_model * checked() const;

    llama_model * model_ = nullptr;
    const llama_vocab * vocab_ = nullptr;
    std::vector<int32_t> eog_;
    mutable std::vector<std::string> pieces_;
    std::vector<std::string> endpoints_;  // its RPC servers
    std::string lost_;                    // why a server of it was lost, once one was
    std::string lost_endpoint_;
    std::atomic<bool> cancel_{false};
    std::set<Attachment *> live_;  // changed and read with the GIL held
    // tokenize() workers still running; close() waits for them
    std::mutex workers_mutex_;
    std::condition_variable workers_cv_;
    int workers_ = 0;
    uint32_t n_ctx_;
    int32_t n_threads_;
    ggml_type kv_type_;
    PrefixCache cache_;  // its context is freed in close(), before the model
};

template <class F> auto Model::remote_guard(F && f) -> decltype(f()) {
    try {
        return f();
    } catch (const ggml_backend_rpc_error & e) {
        lose(e.endpoint, e.what());
    }
}

}  // namespace negtemp
