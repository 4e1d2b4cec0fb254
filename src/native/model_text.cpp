// Model's text: tokenizing (on a worker thread, interruptible), token pieces, prompts checked
// against the vocabulary and the context, and the model's own chat template.
#include "model.hpp"

#include "chain.hpp"
#include "rpc.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <thread>

namespace negtemp {
namespace {

// One tokenization on a worker thread, shared with the caller waiting for it.
struct TokenizeJob {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::vector<llama_token> tokens;
    std::exception_ptr error;  // rethrown in the caller: one escaping a thread would end the process
};

std::vector<llama_token> tokenize_text(const llama_vocab * v, const std::string & text, bool add_special,
                                       bool parse_special) {
    std::vector<llama_token> toks(text.size() + 16);
    int32_t n = llama_tokenize(v, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                               static_cast<int32_t>(toks.size()), add_special, parse_special);
    if (n < 0) {
        toks.resize(-n);
        n = llama_tokenize(v, text.data(), static_cast<int32_t>(text.size()), toks.data(), -n, add_special,
                           parse_special);
    }
    if (n < 0) {
        throw std::runtime_error("llama.cpp could not tokenize the text: " + take_log());
    }
    toks.resize(n);
    return toks;
}

}  // namespace

// llama_tokenize cannot be interrupted, and a long text takes a while (about
// 1 s per MB on SmolLM2), so it runs on a worker thread and this thread waits
// without the GIL, checking for Ctrl-C and cancel() every 50 ms. A worker left
// behind finishes on its own (its work is bounded by the text's length, patch
// 0004); close() waits for it before freeing the model.
Tokens Model::tokenize(const std::string & text, bool add_special, bool parse_special) {
    const llama_vocab * v = vocab();
    auto job = std::make_shared<TokenizeJob>();
    {
        std::lock_guard<std::mutex> lock(workers_mutex_);
        ++workers_;
    }
    cancel_ = false;
    std::thread worker;
    try {
        worker = std::thread([this, job, v, text, add_special, parse_special] {
            std::vector<llama_token> toks;
            std::exception_ptr error;
            try {
                toks = tokenize_text(v, text, add_special, parse_special);
            } catch (...) {
                error = std::current_exception();
            }
            {
                std::lock_guard<std::mutex> lock(job->mutex);
                job->tokens = std::move(toks);
                job->error = error;
                job->done = true;
                job->cv.notify_all();
            }
            std::lock_guard<std::mutex> lock(workers_mutex_);
            --workers_;
            workers_cv_.notify_all();
        });
    } catch (...) {
        std::lock_guard<std::mutex> lock(workers_mutex_);
        --workers_;
        throw;
    }
    worker.detach();
    {
        py::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(job->mutex);
        while (!job->cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return job->done; })) {
            lock.unlock();
            {
                py::gil_scoped_acquire acquire;
                check_interrupts();
            }
            lock.lock();
        }
    }
    if (job->error) {
        std::rethrow_exception(job->error);
    }
    try {
        check_token_ids(job->tokens, n_vocab());
    } catch (const std::invalid_argument & e) {
        throw std::invalid_argument(std::string("the model's tokenizer cannot cover this text (") + e.what() +
                                    "): it has no token for some of its bytes and no unknown token to stand "
                                    "for them");
    }
    return Tokens(job->tokens.size(), job->tokens.data());
}

py::bytes Model::token_to_piece(int64_t token) const {
    check_token_id(token, n_vocab());
    return py::bytes(piece(static_cast<llama_token>(token)));
}

std::string Model::piece(llama_token token) const {
    char buf[256];
    int32_t n = llama_token_to_piece(vocab(), token, buf, sizeof(buf), 0, /*special=*/false);
    if (n >= 0) {
        return std::string(buf, n);
    }
    std::string big(-n, '\0');
    n = llama_token_to_piece(vocab(), token, big.data(), -n, 0, false);
    return big.substr(0, n < 0 ? 0 : n);
}

const std::vector<std::string> & Model::pieces() const {
    if (pieces_.empty()) {
        const int32_t n = n_vocab();
        pieces_.reserve(static_cast<size_t>(n));
        for (int32_t t = 0; t < n; ++t) {
            pieces_.push_back(piece(t));
        }
    }
    return pieces_;
}

// The model's own chat template applied to (role, content) messages, with
// the assistant turn opened; None when the GGUF carries no template.
// ValueError when llama.cpp does not recognise the template.
pt::Optional<py::str> Model::chat_prompt(const std::vector<std::pair<std::string, std::string>> & messages) const {
    const char * tmpl = llama_model_chat_template(checked(), nullptr);
    if (!tmpl) {
        return py::none();
    }
    std::vector<llama_chat_message> msgs;
    size_t size = 256;
    for (const auto & [role, content] : messages) {
        msgs.push_back({role.c_str(), content.c_str()});
        size += 2 * (role.size() + content.size()) + 64;
    }
    std::vector<char> buf(size);
    int32_t n = llama_chat_apply_template(tmpl, msgs.data(), msgs.size(), true, buf.data(),
                                          static_cast<int32_t>(buf.size()));
    if (n > static_cast<int32_t>(buf.size())) {
        buf.resize(n);
        n = llama_chat_apply_template(tmpl, msgs.data(), msgs.size(), true, buf.data(),
                                      static_cast<int32_t>(buf.size()));
    }
    if (n < 0) {
        throw std::invalid_argument("llama.cpp does not recognise this model's chat template, so it cannot "
                                    "format a chat; format the prompt yourself and call complete()");
    }
    return py::str(std::string(buf.data(), n));
}

std::vector<llama_token> Model::tokens(const TokenArray & ids) const {
    if (ids.ndim() != 1) {
        throw std::invalid_argument("token ids must be a 1-D sequence");
    }
    std::vector<llama_token> toks(ids.data(), ids.data() + ids.size());
    check_token_ids(toks, n_vocab());
    if (toks.empty()) {
        throw std::invalid_argument("the prompt has no tokens");
    }
    return toks;
}

std::vector<llama_token> Model::prompt(const TokenArray & ids, int64_t n_predict) const {
    std::vector<llama_token> toks = tokens(ids);
    kNPredict.check(n_predict);
    if (static_cast<int64_t>(toks.size()) + n_predict > static_cast<int64_t>(n_ctx_)) {
        throw ContextOverflow(static_cast<int64_t>(toks.size()), n_predict, n_ctx_, n_ctx_train());
    }
    return toks;
}

}  // namespace negtemp
