// The failures the native layer reports, and llama.cpp's log kept for them.
// bindings.cpp maps each C++ exception to its Python exception.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace negtemp {

// Model.cancel() from another thread, or Model.close(): the running generation stops at its next token.
struct Cancelled : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A model split over RPC servers (Model(rpc=...)) lost one: what the server
// side said, with its endpoint. The Model cannot be used after it.
struct RemoteFault : std::runtime_error {
    RemoteFault(std::string endpoint, const std::string & what)
        : std::runtime_error(what), endpoint(std::move(endpoint)) {}
    std::string endpoint;
};

// The prompt plus the tokens asked for do not fit the context: Python's
// negtemp.ContextOverflowError, whose fields let a front end name its options.
struct ContextOverflow : std::invalid_argument {
    ContextOverflow(int64_t prompt_tokens, int64_t n_predict, int64_t n_ctx, int64_t n_ctx_train)
        : std::invalid_argument("the prompt does not fit the context"), prompt_tokens(prompt_tokens),
          n_predict(n_predict), n_ctx(n_ctx), n_ctx_train(n_ctx_train) {}
    int64_t prompt_tokens, n_predict, n_ctx, n_ctx_train;
};

// llama.cpp reports failures through its log: the last error and warning
// lines are kept so that an exception can say what went wrong instead of
// "failed to load". log_to_buffer is installed once, when the module loads.
void log_to_buffer();
std::string take_log();

}  // namespace negtemp
