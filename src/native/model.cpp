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

// The scheduler puts a node's result in memory of the backend that computes
// it, so a node in a device's own buffer type ran on that device ("Vulkan0");
// other host memory (the CPU's, or the pinned "Vulkan_Host" memory a GPU build
// gives the CPU backend) means the CPU ran it, as it does for an op a device lacks.
std::string computed_on(ggml_backend_buffer_type_t buft) {
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (dev && ggml_backend_dev_buffer_type(dev) == buft) {
        return ggml_backend_dev_name(dev);
    }
    return ggml_backend_buft_is_host(buft) || !dev ? "CPU" : ggml_backend_dev_name(dev);
}

bool trace_node(ggml_tensor * t, bool ask, void * user_data) {
    if (ask) {
        return true;  // observe every node
    }
    ggml_backend_buffer_type_t buft = t->buffer ? ggml_backend_buffer_get_type(t->buffer) : nullptr;
    static_cast<NodeTrace *>(user_data)->nodes.emplace_back(ggml_get_name(t), ggml_op_desc(t),
                                                            buft ? computed_on(buft) : "unallocated",
                                                            buft ? ggml_backend_buft_name(buft) : "unallocated");
    return true;
}

// f32 keeps keys and values unrounded (and so runs without flash attention),
// for comparing logits with a float32 implementation of the same weights
// (negtemp.hf); quantized caches are not offered: their error would need its
// own tolerance in every check
ggml_type kv_cache_type(const std::string & name) {
    if (name == "f16") {
        return GGML_TYPE_F16;
    }
    if (name == "f32") {
        return GGML_TYPE_F32;
    }
    throw std::invalid_argument("kv_type must be \"f16\" (llama.cpp's default) or \"f32\", not \"" + name + "\"");
}

}  // namespace

Model::Model(const py::bytes & path_bytes, uint32_t n_ctx, int32_t n_threads, int32_t n_gpu_layers, int32_t main_gpu,
             const std::vector<std::string> & rpc, uint32_t rpc_timeout_ms, const py::int_ & prefix_slots,
             const std::string & kv_type)
    : endpoints_(rpc), n_ctx_(n_ctx), n_threads_(n_threads), kv_type_(kv_cache_type(kv_type)), cache_(0, 0) {
    const auto slots = static_cast<uint32_t>(int_in(prefix_slots, kPrefixSlots));
    const std::string path(path_bytes);
    take_log();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = n_gpu_layers;
    if (main_gpu >= 0) {
        mp.split_mode = LLAMA_SPLIT_MODE_NONE;
        mp.main_gpu = main_gpu;
    }
    std::vector<ggml_backend_dev_t> devices;
    {
        py::gil_scoped_release release;
        if (!rpc.empty()) {
            devices = rpc_devices(rpc, rpc_timeout_ms);
            mp.devices = devices.data();
        }
        model_ = llama_model_load_from_file(path.c_str(), mp);
    }
    if (!model_) {
        check_remote();
        // the caller names the file: its path need not be UTF-8
        throw std::runtime_error("llama.cpp could not load it: " + take_log());
    }
    vocab_ = llama_model_get_vocab(model_);
    for (int32_t t = 0; t < llama_vocab_n_tokens(vocab_); ++t) {
        if (llama_vocab_is_eog(vocab_, t)) {
            eog_.push_back(t);
        }
    }
    if (n_ctx_ == 0) {
        const int32_t train = llama_model_n_ctx_train(model_);
        n_ctx_ = train > 0 ? std::clamp<uint32_t>(static_cast<uint32_t>(train), 16, kDefaultCtx) : kDefaultCtx;
    }
    cache_.reset(slots, n_ctx_);
}

Model::~Model() { close(); }

void Model::close() {
    while (!live_.empty()) {
        Attachment * a = *live_.begin();
        a->release();
        live_.erase(a);
    }
    cache_.reset(0, 0);
    free_model();
}

void Model::cancel() {
    cancel_ = true;
    for (Attachment * a : live_) {
        a->cancel();
    }
}

// Bytes of KV cache one token of context takes (f16 K and V in every layer):
// what n_ctx costs, checked before a context is made. The heads' width is the
// GGUF's key/value length where it gives one (gemma-3's 256 is not n_embd / n_head).
int64_t Model::kv_bytes_per_token() const {
    const llama_model * m = checked();
    const int64_t n_head = std::max<int32_t>(1, llama_model_n_head(m));
    auto meta = [&](const std::string & key, int64_t fallback) {
        char arch[64] = {0};
        char value[32] = {0};
        if (llama_model_meta_val_str(m, "general.architecture", arch, sizeof(arch)) < 0 ||
            llama_model_meta_val_str(m, (std::string(arch) + "." + key).c_str(), value, sizeof(value)) < 0) {
            return fallback;
        }
        return static_cast<int64_t>(std::strtoll(value, nullptr, 10));
    };
    const int64_t head = llama_model_n_embd(m) / n_head;
    const int64_t width = meta("attention.key_length", head) + meta("attention.value_length", head);
    return static_cast<int64_t>(llama_model_n_layer(m)) * llama_model_n_head_kv(m) * width *
           static_cast<int64_t>(ggml_type_size(kv_type_));
}

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

// Logits the model gives after each prefix of `tokens` (row i: after tokens[0..i]).
Floats Model::eval_logits(const TokenArray & ids) {
    const std::vector<llama_token> toks = tokens(ids);
    if (toks.size() > n_ctx_) {
        throw std::invalid_argument(std::to_string(toks.size()) + " tokens do not fit n_ctx=" +
                                    std::to_string(n_ctx_) + "; ask for fewer at a time");
    }
    const int32_t nv = n_vocab();
    Floats out({static_cast<py::ssize_t>(toks.size()), static_cast<py::ssize_t>(nv)});
    float * dst = out.mutable_data();
    py::gil_scoped_release release;
    remote_guard([&] {
        Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1);
        llama_batch batch = llama_batch_init(static_cast<int32_t>(toks.size()), 0, 1);
        for (size_t i = 0; i < toks.size(); ++i) {
            batch.token[i] = toks[i];
            batch.pos[i] = static_cast<llama_pos>(i);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        batch.n_tokens = static_cast<int32_t>(toks.size());
        int rc = 0;
        try {
            rc = llama_decode(ctx.get(), batch);
        } catch (...) {
            llama_batch_free(batch);
            throw;
        }
        llama_batch_free(batch);
        if (rc != 0) {
            throw std::runtime_error("llama_decode failed (" + std::to_string(rc) + "): " + take_log());
        }
        for (size_t i = 0; i < toks.size(); ++i) {
            const float * row = llama_get_logits_ith(ctx.get(), static_cast<int32_t>(i));
            std::copy(row, row + nv, dst + i * nv);
        }
    });
    return out;
}

// Where one decode of `prompt` ran each node of its graph, in order; with a
// backend chain the sampler's nodes follow the model's "result_output".
NodeList Model::op_backends(const TokenArray & prompt_tokens, const ChainSpec & spec) {
    std::vector<llama_token> toks = tokens(prompt_tokens);
    const BoundChain bound(spec, n_vocab(), &eog_);
    NodeTrace trace;
    {
        py::gil_scoped_release release;
        remote_guard([&] {
            SamplerPtr chain = bound.path() == SamplerPath::Backend ? make_chain(bound) : nullptr;
            Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1, chain.get(), &trace);
            const int rc = llama_decode(ctx.get(), llama_batch_get_one(toks.data(), static_cast<int32_t>(toks.size())));
            if (rc != 0) {
                throw std::runtime_error("llama_decode failed (" + std::to_string(rc) + "): " + take_log());
            }
        });
    }
    NodeList out;
    for (const auto & [name, op, device, buffer] : trace.nodes) {
        out.append(py::make_tuple(name, op, device, buffer));
    }
    return out;
}

std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> Model::new_pool() const {
    ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads_);
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> pool(threadpool_new(&tpp));
    if (!pool) {
        throw std::runtime_error("ggml could not start a pool of " + std::to_string(n_threads_) +
                                 " threads; lower n_threads");
    }
    return pool;
}

Context Model::make_context(uint32_t n_tokens, uint32_t n_seq, llama_sampler * backend_chain, NodeTrace * trace) {
    auto pool = new_pool();
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = std::max<uint32_t>(n_tokens, 16);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = std::min<uint32_t>(cp.n_ctx, 512);
    cp.n_seq_max = n_seq;
    // one cache for all sequences, so a sweep's prompt cells are shared, not copied
    // (per-sequence streams measured no faster for a sweep of 8 x 128 tokens)
    cp.kv_unified = true;
    cp.n_threads = n_threads_;
    cp.n_threads_batch = n_threads_;
    cp.no_perf = true;
    cp.type_k = kv_type_;
    cp.type_v = kv_type_;
    if (kv_type_ == GGML_TYPE_F32) {
        // flash attention casts keys and values to f16 whatever the cache holds
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    llama_sampler_seq_config seq_cfg{0, backend_chain};
    if (backend_chain) {
        cp.samplers = &seq_cfg;
        cp.n_samplers = 1;
    }
    if (trace) {
        cp.cb_eval = trace_node;
        cp.cb_eval_user_data = trace;
    }
    llama_context * ctx = llama_init_from_model(checked(), cp);
    if (!ctx) {
        check_remote();
        throw std::runtime_error("llama.cpp could not create a context: " + take_log());
    }
    llama_attach_threadpool(ctx, pool.get(), pool.get());
    return Context{std::move(pool), std::unique_ptr<llama_context, ContextDeleter>(ctx)};
}

void Model::check_interrupts() {
    if (PyErr_CheckSignals() != 0) {
        throw py::error_already_set();
    }
    if (cancel_.exchange(false)) {
        throw Cancelled("generation cancelled by Model.cancel() or Model.close() from another thread");
    }
}

void Model::lose(const std::string & endpoint, const std::string & what) {
    lost_endpoint_ = endpoint;
    lost_ = what;
    throw RemoteFault(endpoint, what);
}

// After llama.cpp returned NULL: the fault of a server of this Model, if
// one failed (llama.cpp caught what the RPC backend threw and logged it).
void Model::check_remote() {
    std::string why;
    for (const auto & endpoint : endpoints_) {
        if (rpc_fault(endpoint, why)) {
            take_log();
            lose(endpoint, "RPC server " + endpoint + ": " + why);
        }
    }
}

// after the generations: waits for tokenize() workers still reading the vocabulary
void Model::free_model() {
    if (model_) {
        std::unique_lock<std::mutex> lock(workers_mutex_);
        if (workers_ > 0) {
            py::gil_scoped_release release;
            workers_cv_.wait(lock, [&] { return workers_ == 0; });
        }
        llama_model_free(model_);
        model_ = nullptr;
    }
}

llama_model * Model::checked() const {
    if (!model_) {
        throw std::runtime_error("this Model is closed; create a new negtemp.Model");
    }
    if (!lost_.empty()) {
        throw RemoteFault(lost_endpoint_, lost_ + "; this Model cannot be used any more: close it, and create "
                                                  "a new Model once the server is back");
    }
    return model_;
}

}  // namespace negtemp
