// A llama.cpp context and the ggml thread pool its decodes run on, for one call.
#pragma once

#include "backends.hpp"
#include "llama.h"

#include <cstdint>
#include <exception>
#include <memory>

namespace negtemp {

struct ContextDeleter {
    void operator()(llama_context * c) const {
        // llama_free synchronizes in a destructor, where an RPC fault would end
        // the process; met here first, it is already reported (patch 0009)
        try {
            llama_synchronize(c);
        } catch (const std::exception &) {
        }
        llama_free(c);
    }
};

struct ThreadpoolDeleter {
    void operator()(ggml_threadpool * p) const { threadpool_free(p); }
};

// Without a pool ggml starts and joins its threads on every decode (generate
// fell to 0.84x llama-bench's decode rate). A call's own context has its own
// pool; the prefix cache's context keeps one, and replaces it in a forked
// child, which has the pool but not its threads (prefix_cache.cpp).
struct Context {
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> pool;
    std::unique_ptr<llama_context, ContextDeleter> ctx;  // declared after the pool: freed before it
    llama_context * get() const { return ctx.get(); }
};

// What the prefix cache asks of the model it caches for (Model implements it): a context of its
// own, a thread pool for a forked child, and the model's facts. The cache needs nothing else of a
// Model, so neither includes the other.
class ContextSource {
public:
    virtual ~ContextSource() = default;
    virtual Context new_context(uint32_t n_cells, uint32_t n_seqs) = 0;
    virtual std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> new_pool() const = 0;
    virtual llama_model * llama() const = 0;
    virtual int64_t kv_bytes_per_token() const = 0;
    virtual int32_t n_vocab() const = 0;
};

}  // namespace negtemp
