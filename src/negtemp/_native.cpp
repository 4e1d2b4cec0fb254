// negtemp._native: the generation loop over the patched llama.cpp.
//
// The loop (decode, sample through llama.cpp's sampler chain, detokenize) runs
// here with the GIL released; Python sees numpy arrays and bytes only. The GIL
// is taken back once per token, to stream the piece and to let Ctrl-C through.

#include <pybind11/typing.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "chain.hpp"
#include "fused_sampler.hpp"
#include "ggml-cpu.h"
#include "llama.h"
#include "sampler_probe.hpp"
#ifdef GGML_USE_RPC
#include "ggml-rpc.h"
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace py = pybind11;
namespace pt = pybind11::typing;

namespace {

// The Python types the module's functions return, spelled out so that the
// generated stub (_native.pyi, scripts/stubgen.py) types them exactly.
using Tokens = py::array_t<int32_t>;
using Floats = py::array_t<float>;
using Doubles = py::array_t<double>;
using TopTokens = pt::Tuple<Tokens, Doubles, Doubles>;
using Step = pt::Tuple<py::int_, py::float_, py::bytes, py::str, pt::Optional<Floats>, pt::Optional<TopTokens>>;
using NodeList = pt::List<pt::Tuple<py::str, py::str, py::str, py::str>>;
using SweepRuns = pt::List<pt::Tuple<Tokens, Doubles>>;
using DeviceList = pt::List<pt::Tuple<py::str, py::str, py::str, py::int_>>;

// llama.cpp reports failures through its log; keep the last error lines so an
// exception can say what went wrong instead of "failed to load".
std::mutex g_log_mutex;
std::string g_last_errors;

void log_callback(ggml_log_level level, const char * text, void *) {
    if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN) {
        return;
    }
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_last_errors += text;
    if (g_last_errors.size() > 4096) {
        g_last_errors.erase(0, g_last_errors.size() - 4096);
    }
}

std::string take_log() {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    std::string out;
    out.swap(g_last_errors);
    return out;
}

// A model split over RPC servers (Model(rpc=...)) lost one: what the server
// side said, with its endpoint. The Model cannot be used after it.
struct RemoteFault : std::runtime_error {
    RemoteFault(std::string endpoint, const std::string & what)
        : std::runtime_error(what), endpoint(std::move(endpoint)) {}
    std::string endpoint;
};

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
using ContextPtr = std::unique_ptr<llama_context, ContextDeleter>;
struct ThreadpoolDeleter {
    void operator()(ggml_threadpool * p) const { ggml_threadpool_free(p); }
};
using ThreadpoolPtr = std::unique_ptr<ggml_threadpool, ThreadpoolDeleter>;

// A context and the ggml thread pool its decodes run on, for one call.
// Without a pool ggml starts and joins its threads on every decode (generate
// fell to 0.84x llama-bench's decode rate); a pool kept by the Model would
// outlive a fork with no threads behind it, so each call makes its own.
struct Context {
    ThreadpoolPtr pool;
    ContextPtr ctx;  // declared after the pool: freed before it
    llama_context * get() const { return ctx.get(); }
};
using negtemp::ChainConfig;
using negtemp::SamplerPtr;

// Where a chain runs: negtemp's fused sampler (plain chain only), llama.cpp's
// sampler chain on the CPU, or the chain's ggml graph inside the decode.
enum class SamplerPath { Fused, Chain, Backend };

SamplerPath parse_path(const std::string & path) {
    if (path == "fused") {
        return SamplerPath::Fused;
    }
    if (path == "chain") {
        return SamplerPath::Chain;
    }
    if (path == "backend") {
        return SamplerPath::Backend;
    }
    throw std::invalid_argument("path must be 'fused', 'chain' or 'backend', got '" + path + "'");
}

// One sequence's CPU-path sampler: the fused sampler or llama.cpp's chain.
struct CpuSampler {
    SamplerPtr chain;
    std::unique_ptr<negtemp::FusedSampler> fused;
    std::vector<llama_token_data> cur;

    // probs, when given, gets every token's probability in the distribution drawn from.
    llama_token sample(const float * logits, int32_t n_vocab, double & logprob, std::vector<double> * probs = nullptr) {
        if (fused) {
            if (probs) {
                probs->resize(n_vocab);
                fused->probs(logits, static_cast<size_t>(n_vocab), probs->data());  // all masked: sample throws
            }
            const size_t t = fused->sample(logits, static_cast<size_t>(n_vocab), &logprob);
            if (t == negtemp::FusedSampler::kNoToken) {
                throw negtemp::SamplingError(negtemp::kAllMasked);
            }
            return static_cast<llama_token>(t);
        }
        double p = 0.0;
        const llama_token t = negtemp::chain_sample(chain.get(), logits, n_vocab, cur, &p, probs);
        logprob = std::log(p);
        return t;
    }
};

CpuSampler make_cpu_sampler(const ChainConfig & c, SamplerPath path, int32_t n_vocab) {
    CpuSampler out;
    if (path == SamplerPath::Fused) {
        if (!c.plain()) {
            throw std::invalid_argument(
                "the fused sampler runs the plain chain only (logit bias, temperature, draw); "
                "use path 'chain' for top-k/top-p/min-p/penalties");
        }
        std::vector<float> bias;
        if (!c.logit_bias.empty()) {
            bias.assign(n_vocab, 0.0f);
            for (const auto & kv : c.logit_bias) {
                bias[kv.first] += kv.second;
            }
        }
        out.fused = std::make_unique<negtemp::FusedSampler>(c.temp, std::move(bias), c.seed);
    } else {
        out.chain = negtemp::make_chain(c, n_vocab);
    }
    return out;
}

// log p of the token the backend chain drew, from the probabilities the decode
// copied back; SamplingError when they say every token was masked.
double backend_logprob(llama_context * ctx, llama_token token) {
    const float * probs = llama_get_sampled_probs_ith(ctx, -1);
    if (!probs) {
        throw std::runtime_error("the backend sampler returned no probabilities");
    }
    const bool filtered = llama_get_sampled_candidates_count_ith(ctx, -1) > 0;
    const llama_token * ids = filtered ? llama_get_sampled_candidates_ith(ctx, -1) : nullptr;
    const float p = negtemp::drawn_probability(probs, ids, llama_get_sampled_probs_count_ith(ctx, -1), token);
    return std::log(static_cast<double>(p));
}

// Each node a decode computes, in order: (name, op, device, buffer type). The
// scheduler puts a node's result in memory of the backend that computes it, so
// a node in a device's own buffer type ran on that device ("Vulkan0"); other
// host memory (the CPU's, or the pinned "Vulkan_Host" memory a GPU build gives
// the CPU backend) means the CPU ran it, as it does for an op a device lacks.
struct NodeTrace {
    std::vector<std::tuple<std::string, std::string, std::string, std::string>> nodes;
};

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

// Model.cancel() from another thread: the running generation stops at its next token.
struct Cancelled : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#ifdef GGML_USE_RPC
// The devices of a model split over RPC servers: every device of each server,
// then this machine's GPUs as llama.cpp would choose them (the CPU takes the
// layers not offloaded). The servers are not registered with ggml, so a Model
// made without rpc= never sees them.
std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string> & endpoints) {
    std::vector<ggml_backend_dev_t> out;
    for (const auto & endpoint : endpoints) {
        ggml_backend_reg_t reg = nullptr;
        try {
            reg = ggml_backend_rpc_add_server(endpoint.c_str());
        } catch (const ggml_backend_rpc_error & e) {
            throw RemoteFault(e.endpoint, e.what());
        }
        if (!reg) {
            throw RemoteFault(endpoint, "RPC server " + endpoint + ": it offers no devices");
        }
        for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) {
            out.push_back(ggml_backend_reg_dev_get(reg, i));
        }
    }
    std::vector<ggml_backend_dev_t> igpus;
    bool gpu = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
            out.push_back(dev);
            gpu = true;
        } else if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            igpus.push_back(dev);
        }
    }
    if (!gpu) {
        out.insert(out.end(), igpus.begin(), igpus.end());
    }
    out.push_back(nullptr);
    return out;
}
#endif

class Generation;

class Model {
public:
    static constexpr uint32_t kDefaultCtx = 2048;

    // n_ctx 0: the model's training context, at most kDefaultCtx tokens.
    // n_gpu_layers: layers offloaded to the GPU devices of a GPU build (-1: all).
    // main_gpu >= 0: the whole model on that GPU device alone (llama.cpp's
    // split mode "none"); -1: layers split over every GPU device.
    // rpc: "host:port" of llama.cpp RPC servers the offloaded layers are split
    // over, with rpc_timeout_ms bounding each wait on one of them (0: none).
    // path: the file name's bytes, as the OS takes them (need not be UTF-8)
    Model(const py::bytes & path_bytes, uint32_t n_ctx, int32_t n_threads, int32_t n_gpu_layers, int32_t main_gpu,
          const std::vector<std::string> & rpc, uint32_t rpc_timeout_ms)
        : endpoints_(rpc), n_ctx_(n_ctx), n_threads_(n_threads) {
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
#ifdef GGML_USE_RPC
                ggml_backend_rpc_set_timeout(rpc_timeout_ms);
                devices = rpc_devices(rpc);
                mp.devices = devices.data();
#else
                (void) rpc_timeout_ms;
                throw std::invalid_argument("this build of negtemp has no RPC backend (it was built with "
                                            "-DGGML_RPC=OFF); rebuild it without that option");
#endif
            }
            model_ = llama_model_load_from_file(path.c_str(), mp);
        }
        if (!model_) {
            check_remote();
            // the caller names the file: its path need not be UTF-8
            throw std::runtime_error("llama.cpp could not load it: " + take_log());
        }
        vocab_ = llama_model_get_vocab(model_);
        if (n_ctx_ == 0) {
            const int32_t train = llama_model_n_ctx_train(model_);
            n_ctx_ = train > 0 ? std::clamp<uint32_t>(static_cast<uint32_t>(train), 16, kDefaultCtx) : kDefaultCtx;
        }
    }

    ~Model() { close(); }

    uint32_t n_ctx() const { return n_ctx_; }

    void close();

    // the generations of Model.stream() register here: close() frees their
    // contexts before the model they were made from; cancel() reaches them
    void attach(Generation * g) { live_.insert(g); }
    void detach(Generation * g) { live_.erase(g); }

    bool closed() const { return model_ == nullptr; }

    // Any thread: the generations open on this Model stop at their next token
    // with Cancelled, and so does a sweep or tokenization running now (they
    // clear the request when they start).
    void cancel();

    int32_t n_vocab() const { return llama_vocab_n_tokens(vocab()); }

    int32_t n_ctx_train() const { return llama_model_n_ctx_train(checked()); }

    std::vector<int32_t> eog_tokens() const {
        std::vector<int32_t> out;
        for (int32_t t = 0; t < n_vocab(); ++t) {
            if (llama_vocab_is_eog(vocab(), t)) {
                out.push_back(t);
            }
        }
        return out;
    }

    // parse_special: whether control-token text in `text` ("<|im_end|>") becomes
    // that control token or plain text.
    //
    // llama_tokenize cannot be interrupted, and a long text takes a while (about
    // 1 s per MB on SmolLM2), so it runs on a worker thread and this thread waits
    // without the GIL, checking for Ctrl-C and cancel() every 50 ms. A worker left
    // behind finishes on its own (its work is bounded by the text's length, patch
    // 0004); close() waits for it before freeing the model.
    py::array_t<int32_t> tokenize(const std::string & text, bool add_special, bool parse_special) {
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
            check_tokens(job->tokens);
        } catch (const std::invalid_argument & e) {
            throw std::invalid_argument(std::string("the model's tokenizer cannot cover this text (") + e.what() +
                                        "): it has no token for some of its bytes and no unknown token to stand "
                                        "for them");
        }
        return py::array_t<int32_t>(job->tokens.size(), job->tokens.data());
    }

    // Bytes of KV cache one token of context takes (f16 K and V in every
    // layer): what n_ctx costs, checked before a context is made.
    int64_t kv_bytes_per_token() const {
        const llama_model * m = checked();
        const int64_t n_head = std::max<int32_t>(1, llama_model_n_head(m));
        const int64_t n_embd_kv = static_cast<int64_t>(llama_model_n_embd(m)) * llama_model_n_head_kv(m) / n_head;
        return static_cast<int64_t>(llama_model_n_layer(m)) * 2 * n_embd_kv * 2;
    }

    py::bytes token_to_piece(int32_t token) const { return py::bytes(piece(token)); }

    // The model's own chat template applied to (role, content) messages, with
    // the assistant turn opened; None when the GGUF carries no template.
    // ValueError when llama.cpp does not recognise the template.
    pt::Optional<py::str> chat_prompt(const std::vector<std::pair<std::string, std::string>> & messages) const {
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

    // Logits the model gives after each prefix of `tokens` (row i: after tokens[0..i]).
    py::array_t<float> eval_logits(py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens) {
        std::vector<llama_token> toks(tokens.data(), tokens.data() + tokens.size());
        check_tokens(toks);
        const int32_t nv = n_vocab();
        py::array_t<float> out({static_cast<py::ssize_t>(toks.size()), static_cast<py::ssize_t>(nv)});
        float * dst = out.mutable_data();
        {
            py::gil_scoped_release release;
            remote_guard([&] { fill_logits(toks, dst); });
        }
        return out;
    }

    // The logits after each prefix of toks, written row by row to dst.
    void fill_logits(const std::vector<llama_token> & toks, float * dst) {
        const int32_t nv = n_vocab();
        Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1, nullptr);
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
    }

    // Where one decode of `prompt` ran each node of its graph, in order; with a
    // backend chain the sampler's nodes follow the model's "result_output".
    NodeList op_backends(py::array_t<int32_t, py::array::c_style | py::array::forcecast> prompt,
                         const ChainConfig & config, bool backend) {
        std::vector<llama_token> toks(prompt.data(), prompt.data() + prompt.size());
        check_tokens(toks);
        if (toks.empty()) {
            throw std::invalid_argument("the prompt has no tokens");
        }
        NodeTrace trace;
        {
            py::gil_scoped_release release;
            remote_guard([&] {
                SamplerPtr chain = backend ? negtemp::make_chain(config, n_vocab()) : nullptr;
                Context ctx = make_context(static_cast<uint32_t>(toks.size()), 1, chain.get(), &trace);
                const int rc =
                    llama_decode(ctx.get(), llama_batch_get_one(toks.data(), static_cast<int32_t>(toks.size())));
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

    // One sequence per chain config, decoded together in one batch a step: the
    // prompt is evaluated once and its cache cells shared by every sequence.
    // Returns [(tokens, logprobs)] in the order of configs.
    SweepRuns sweep(py::array_t<int32_t, py::array::c_style | py::array::forcecast> prompt, int32_t n_predict,
                   const std::vector<ChainConfig> & configs, const std::vector<std::string> & paths) {
        std::vector<llama_token> toks(prompt.data(), prompt.data() + prompt.size());
        check_tokens(toks);
        const size_t k_seqs = configs.size();
        if (toks.empty() || k_seqs == 0 || n_predict < 1) {
            throw std::invalid_argument("sweep needs a prompt, at least one setting and n_predict >= 1");
        }
        if (paths.size() != k_seqs) {
            throw std::invalid_argument("sweep needs one path per setting");
        }
        std::vector<SamplerPath> seq_paths;
        for (const auto & p : paths) {
            seq_paths.push_back(parse_path(p));
            if (seq_paths.back() == SamplerPath::Backend) {
                throw std::invalid_argument("sweep samples on the CPU paths only ('fused' or 'chain')");
            }
        }
        if (toks.size() + n_predict > n_ctx_) {
            throw std::invalid_argument("prompt plus n_predict exceeds the context size n_ctx=" + std::to_string(n_ctx_));
        }
        const int32_t nv = n_vocab();
        cancel_ = false;
        std::vector<std::vector<int32_t>> out_tokens(k_seqs);
        std::vector<std::vector<double>> out_logprobs(k_seqs);
        {
            py::gil_scoped_release release;
            remote_guard([&] {
                Context ctx = make_context(static_cast<uint32_t>(toks.size() + k_seqs * n_predict),
                                              static_cast<uint32_t>(k_seqs), nullptr);
                std::vector<CpuSampler> samplers;
                for (size_t k = 0; k < k_seqs; ++k) {
                    samplers.push_back(make_cpu_sampler(configs[k], seq_paths[k], nv));
                }
                const size_t batch_cap = std::max(toks.size(), k_seqs);
                std::unique_ptr<llama_batch, void (*)(llama_batch *)> batch(new llama_batch(llama_batch_init(
                                                                                 static_cast<int32_t>(batch_cap), 0, 1)),
                                                                             [](llama_batch * b) {
                                                                                 llama_batch_free(*b);
                                                                                 delete b;
                                                                             });
                auto add = [&](llama_token t, llama_pos pos, llama_seq_id seq, bool logits) {
                    const int32_t j = batch->n_tokens++;
                    batch->token[j] = t;
                    batch->pos[j] = pos;
                    batch->n_seq_id[j] = 1;
                    batch->seq_id[j][0] = seq;
                    batch->logits[j] = logits;
                };
                auto decode = [&] {
                    if (llama_decode(ctx.get(), *batch) != 0) {
                        throw std::runtime_error("llama_decode failed: " + take_log());
                    }
                };

                batch->n_tokens = 0;
                for (size_t i = 0; i < toks.size(); ++i) {
                    add(toks[i], static_cast<llama_pos>(i), 0, i + 1 == toks.size());
                }
                decode();
                llama_memory_t mem = llama_get_memory(ctx.get());
                for (size_t k = 1; k < k_seqs; ++k) {
                    llama_memory_seq_cp(mem, 0, static_cast<llama_seq_id>(k), -1, -1);
                }

                std::vector<llama_token> next(k_seqs);
                std::vector<char> done(k_seqs, 0);
                auto take = [&](size_t k, const float * row) {
                    double logprob = NAN;
                    next[k] = samplers[k].sample(row, nv, logprob);
                    out_tokens[k].push_back(next[k]);
                    out_logprobs[k].push_back(logprob);
                    done[k] = llama_vocab_is_eog(vocab(), next[k]) || out_tokens[k].size() >= static_cast<size_t>(n_predict);
                };
                const float * prompt_row = llama_get_logits_ith(ctx.get(), static_cast<int32_t>(toks.size() - 1));
                for (size_t k = 0; k < k_seqs; ++k) {
                    take(k, prompt_row);
                }
                for (llama_pos pos = static_cast<llama_pos>(toks.size());; ++pos) {
                    std::vector<size_t> active;
                    batch->n_tokens = 0;
                    for (size_t k = 0; k < k_seqs; ++k) {
                        if (!done[k]) {
                            active.push_back(k);
                            add(next[k], pos, static_cast<llama_seq_id>(k), true);
                        }
                    }
                    if (active.empty()) {
                        break;
                    }
                    decode();
                    for (size_t j = 0; j < active.size(); ++j) {
                        take(active[j], llama_get_logits_ith(ctx.get(), static_cast<int32_t>(j)));
                    }
                    py::gil_scoped_acquire acquire;
                    check_interrupts();
                }
            });
        }
        SweepRuns out;
        for (size_t k = 0; k < k_seqs; ++k) {
            out.append(py::make_tuple(py::array_t<int32_t>(out_tokens[k].size(), out_tokens[k].data()),
                                      py::array_t<double>(out_logprobs[k].size(), out_logprobs[k].data())));
        }
        return out;
    }

private:
    friend class Generation;

    // f(), with an RPC fault in it made a RemoteFault that also marks this Model lost
    template <class F> auto remote_guard(F && f) -> decltype(f()) {
#ifdef GGML_USE_RPC
        try {
            return f();
        } catch (const ggml_backend_rpc_error & e) {
            lose(e.endpoint, e.what());
        }
#else
        return f();
#endif
    }

    [[noreturn]] void lose(const std::string & endpoint, const std::string & what) {
        lost_endpoint_ = endpoint;
        lost_ = what;
        throw RemoteFault(endpoint, what);
    }

    // After llama.cpp returned NULL: the fault of a server of this Model, if
    // one failed (llama.cpp caught what the RPC backend threw and logged it).
    void check_remote() {
#ifdef GGML_USE_RPC
        char why[1024];
        for (const auto & endpoint : endpoints_) {
            if (ggml_backend_rpc_get_fault(endpoint.c_str(), why, sizeof(why))) {
                take_log();
                lose(endpoint, "RPC server " + endpoint + ": " + why);
            }
        }
#endif
    }

    // after the generations: waits for tokenize() workers still reading the vocabulary
    void free_model() {
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

    // With the GIL held, once a token: Ctrl-C (main thread only: Python runs
    // signal handlers there) and cancel() from any thread.
    void check_interrupts() {
        if (PyErr_CheckSignals() != 0) {
            throw py::error_already_set();
        }
        if (cancel_.exchange(false)) {
            throw Cancelled("generation cancelled by Model.cancel() or Model.close() from another thread");
        }
    }

    llama_model * checked() const {
        if (!model_) {
            throw std::runtime_error("this Model is closed; create a new negtemp.Model");
        }
        if (!lost_.empty()) {
            throw RemoteFault(lost_endpoint_, lost_ + "; this Model cannot be used any more: close it, and create "
                                                      "a new Model once the server is back");
        }
        return model_;
    }

    const llama_vocab * vocab() const {
        checked();
        return vocab_;
    }

    void check_tokens(const std::vector<llama_token> & toks) const { negtemp::check_token_ids(toks, n_vocab()); }

    std::string piece(llama_token token) const {
        char buf[256];
        int32_t n = llama_token_to_piece(vocab(), token, buf, sizeof(buf), 0, /*special=*/false);
        if (n >= 0) {
            return std::string(buf, n);
        }
        std::string big(-n, '\0');
        n = llama_token_to_piece(vocab(), token, big.data(), -n, 0, false);
        return big.substr(0, n < 0 ? 0 : n);
    }

    Context make_context(uint32_t n_tokens, uint32_t n_seq, llama_sampler * backend_chain,
                         NodeTrace * trace = nullptr) {
        ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads_);
        ThreadpoolPtr pool(ggml_threadpool_new(&tpp));
        if (!pool) {
            throw std::runtime_error("ggml could not start a pool of " + std::to_string(n_threads_) +
                                     " threads; lower n_threads");
        }
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
        return Context{std::move(pool), ContextPtr(ctx)};
    }

    llama_model * model_ = nullptr;
    const llama_vocab * vocab_ = nullptr;
    std::vector<std::string> endpoints_;  // its RPC servers
    std::string lost_;                    // why a server of it was lost, once one was
    std::string lost_endpoint_;
    std::atomic<bool> cancel_{false};
    std::set<Generation *> live_;  // changed and read with the GIL held
    // tokenize() workers still running; close() waits for them
    std::mutex workers_mutex_;
    std::condition_variable workers_cv_;
    int workers_ = 0;
    uint32_t n_ctx_;
    int32_t n_threads_;
};

// The N tokens most likely in the distribution a step drew from, with their
// log-probabilities there and under the model's own (T = 1) softmax of the raw
// logits. Ties (tokens whose sampled probability underflowed to the same
// value) are ordered as the temperature orders the logits: higher first for
// T >= 0, lower first for T < 0. Non-finite logits count as masked (log p = -inf).
TopTokens top_tokens(const float * logits, const std::vector<double> & sampled, int32_t n_vocab, int32_t n,
                     bool negative_temp) {
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
    py::array_t<int32_t> ids(k);
    py::array_t<double> lp_sampled(k), lp_model(k);
    for (int32_t j = 0; j < k; ++j) {
        ids.mutable_at(j) = order[j];
        lp_sampled.mutable_at(j) = std::log(sampled[order[j]]);
        lp_model.mutable_at(j) = model_lp(order[j]);
    }
    return py::make_tuple(ids, lp_sampled, lp_model);
}

// One generation, advanced a token at a time (Model.stream, and complete()
// through it): its context, sampler and position live here between calls, so
// the caller can stop early and the context is freed at once by close().
// Methods are called with the GIL held; next() releases it for the decode.
class Generation {
public:
    Generation(Model & model, py::array_t<int32_t, py::array::c_style | py::array::forcecast> prompt,
               int32_t n_predict, const ChainConfig & config, const std::string & path_name, bool keep_logits,
               int32_t n_probs)
        : model_(&model), path_(parse_path(path_name)), n_predict_(n_predict), keep_logits_(keep_logits),
          n_probs_(n_probs), negative_temp_(config.temp < 0.0f) {
        const bool backend = path_ == SamplerPath::Backend;
        if (backend && (keep_logits || n_probs > 0)) {
            throw std::invalid_argument("keep_logits and n_probs need a CPU path ('auto', 'fused' or 'chain'): the "
                                        "backend path samples inside the graph");
        }
        if (n_predict < 1 || n_probs < 0) {
            throw std::invalid_argument("n_predict must be at least 1 and n_probs at least 0");
        }
        prompt_.assign(prompt.data(), prompt.data() + prompt.size());
        model.check_tokens(prompt_);
        if (prompt_.empty()) {
            throw std::invalid_argument("the prompt has no tokens");
        }
        const uint64_t need = prompt_.size() + static_cast<uint64_t>(n_predict);
        if (need > model.n_ctx_) {
            throw std::invalid_argument("prompt (" + std::to_string(prompt_.size()) + " tokens) plus n_predict (" +
                                        std::to_string(n_predict) + ") exceeds the context size n_ctx=" +
                                        std::to_string(model.n_ctx_) + "; raise n_ctx or lower n_predict");
        }
        n_vocab_ = model.n_vocab();
        {
            py::gil_scoped_release release;
            chain_ = backend ? negtemp::make_chain(config, n_vocab_) : nullptr;
            ctx_ = model.remote_guard([&] { return model.make_context(static_cast<uint32_t>(need), 1, chain_.get()); });
            cpu_ = backend ? CpuSampler{} : make_cpu_sampler(config, path_, n_vocab_);
        }
        model.attach(this);
    }

    ~Generation() { close(); }

    Generation(const Generation &) = delete;
    Generation & operator=(const Generation &) = delete;

    void cancel() { cancel_ = true; }

    // Frees the context; the next call to next() returns None. From Model.close(),
    // next() raises Cancelled instead: the generation did not end, it was stopped.
    void close() {
        release();
        done_ = true;
    }

    void release() {
        if (model_) {
            model_->detach(this);
            model_ = nullptr;
        }
        cpu_ = CpuSampler{};
        ctx_ = Context{};
        chain_.reset();
    }

    // The next token: (token, log p sampled, piece bytes, finish reason ("", "eog"
    // or "length"), raw logits or None, (ids, log p sampled, log p model) or None);
    // None once the generation has finished or was closed.
    pt::Optional<Step> next() {
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
        llama_token token = 0;
        double logprob = NAN;
        std::vector<float> row_copy;
        std::vector<double> sampled;
        std::string piece;
        try {
            py::gil_scoped_release release;
            model_->remote_guard([&] {
                llama_batch batch = produced_ == 0
                                        ? llama_batch_get_one(prompt_.data(), static_cast<int32_t>(prompt_.size()))
                                        : llama_batch_get_one(&last_, 1);
                if (llama_decode(ctx_.get(), batch) != 0) {
                    throw std::runtime_error("llama_decode failed: " + take_log());
                }
                if (path_ == SamplerPath::Backend) {
                    token = llama_sampler_sample(chain_.get(), ctx_.get(), -1);
                    logprob = backend_logprob(ctx_.get(), token);
                } else {
                    const float * row = llama_get_logits_ith(ctx_.get(), -1);
                    token = cpu_.sample(row, n_vocab_, logprob, n_probs_ > 0 ? &sampled : nullptr);
                    if (keep_logits_ || n_probs_ > 0) {
                        row_copy.assign(row, row + n_vocab_);
                    }
                }
            });
            piece = model_->piece(token);
        } catch (...) {
            close();
            throw;
        }
        last_ = token;
        ++produced_;
        const char * finish = "";
        if (llama_vocab_is_eog(model_->vocab(), token)) {
            finish = "eog";
        } else if (produced_ >= n_predict_) {
            finish = "length";
        }
        if (*finish) {
            close();
        }
        if (PyErr_CheckSignals() != 0) {
            close();
            throw py::error_already_set();
        }
        py::object logits = py::none();
        if (keep_logits_) {
            logits = py::array_t<float>(row_copy.size(), row_copy.data());
        }
        py::object top = py::none();
        if (n_probs_ > 0) {
            top = top_tokens(row_copy.data(), sampled, n_vocab_, n_probs_, negative_temp_);
        }
        return py::make_tuple(token, logprob, py::bytes(piece), finish, logits, top);
    }

private:
    Model * model_;
    SamplerPath path_;
    int32_t n_predict_;
    bool keep_logits_;
    int32_t n_probs_;
    bool negative_temp_;
    int32_t n_vocab_ = 0;
    std::vector<llama_token> prompt_;
    SamplerPtr chain_;
    Context ctx_;  // declared after the chain the context samples with: freed before it
    CpuSampler cpu_;
    llama_token last_ = 0;
    int32_t produced_ = 0;
    bool done_ = false;
    std::atomic<bool> cancel_{false};
};

void Model::close() {
    while (!live_.empty()) {
        (*live_.begin())->release();
    }
    free_model();
}

void Model::cancel() {
    cancel_ = true;
    for (Generation * g : live_) {
        g->cancel();
    }
}

using Logits = py::array_t<float, py::array::c_style | py::array::forcecast>;

void check_logits(const Logits & logits) {
    if (logits.ndim() != 1 || logits.size() == 0) {
        throw std::invalid_argument("logits must be a non-empty 1-D array");
    }
}

py::array_t<double> sampler_probs(const Logits & logits, const ChainConfig & config, const std::string & path_name,
                                  const std::vector<int32_t> & history, const std::string & device) {
    check_logits(logits);
    const SamplerPath path = parse_path(path_name);
    const size_t n = static_cast<size_t>(logits.size());
    negtemp::check_token_ids(history, static_cast<int64_t>(n));
    py::array_t<double> out(logits.size());
    double * dst = out.mutable_data();
    py::gil_scoped_release release;
    if (path == SamplerPath::Fused) {
        // the fused sampler's own weights, through the same entry as generation
        CpuSampler s = make_cpu_sampler(config, path, static_cast<int32_t>(n));
        if (!s.fused->probs(logits.data(), n, dst)) {
            throw negtemp::SamplingError(negtemp::kAllMasked);
        }
    } else {
        negtemp::sampler_probs(config, logits.data(), n, history, path == SamplerPath::Backend, dst, device);
    }
    return out;
}

// Backend draws per graph computation in sample_tokens (BackendChain copies).
constexpr int64_t kBackendDrawsPerRun = 64;

// n draws through one path. Each draw starts from the same logits; the chain
// accepts each drawn token as generation does, so penalties make the draws
// depend on each other (the Python API refuses them here).
py::array_t<int32_t> sample_tokens(const Logits & logits, const ChainConfig & config, const std::string & path_name,
                                   int64_t n_draws, const std::string & device) {
    check_logits(logits);
    const SamplerPath path = parse_path(path_name);
    const auto n = static_cast<int32_t>(logits.size());
    py::array_t<int32_t> out(n_draws);
    int32_t * dst = out.mutable_data();
    py::gil_scoped_release release;
    if (path == SamplerPath::Backend) {
        // draws in batches of copies of the graph: the same draws, fewer computations
        const auto copies = static_cast<size_t>(std::min<int64_t>(n_draws, kBackendDrawsPerRun));
        negtemp::BackendChain chain(config, logits.data(), static_cast<size_t>(n), {}, device, copies);
        for (int64_t k = 0; k < n_draws;) {
            for (llama_token t : chain.run(nullptr)) {
                if (k < n_draws) {
                    dst[k++] = t;
                }
            }
        }
        return out;
    }
    CpuSampler sampler = make_cpu_sampler(config, path, n);
    double logprob = 0.0;
    for (int64_t k = 0; k < n_draws; ++k) {
        dst[k] = sampler.sample(logits.data(), n, logprob);
    }
    return out;
}

// ggml's RPC server over this machine's GPU devices, or its CPU when it has
// none (as llama.cpp's rpc-server chooses), with the GIL released for good:
// the caller runs it on a thread of its own, and ends the process to stop it.
void rpc_server(const std::string & endpoint, const std::string & cache_dir, size_t n_threads) {
#ifdef GGML_USE_RPC
    std::vector<ggml_backend_dev_t> devices;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        const auto type = ggml_backend_dev_type(dev);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            devices.push_back(dev);
        }
    }
    if (devices.empty()) {
        devices.push_back(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
    }
    {
        py::gil_scoped_release release;
        ggml_backend_rpc_start_server(endpoint.c_str(), cache_dir.empty() ? nullptr : cache_dir.c_str(), n_threads,
                                      devices.size(), devices.data());
    }
    // ggml printed its reason on stderr
    throw std::runtime_error("the RPC server could not start at " + endpoint +
                             ": is the address this machine's, and the port free?");
#else
    (void) endpoint;
    (void) cache_dir;
    (void) n_threads;
    throw std::runtime_error("this build of negtemp has no RPC backend (it was built with -DGGML_RPC=OFF)");
#endif
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "negtemp's native generation loop over a patched llama.cpp (private: use the negtemp package)";

    llama_log_set(log_callback, nullptr);
    llama_backend_init();

    m.attr("llama_commit") = NEGTEMP_LLAMA_COMMIT;  // the pinned upstream commit this build patched
    m.attr("patch_count") = NEGTEMP_PATCH_COUNT;    // patches of negtemp's series applied to it

    py::register_exception<negtemp::SamplingError>(m, "SamplingError", PyExc_ValueError);
    py::register_exception<Cancelled>(m, "Cancelled", PyExc_RuntimeError);

    py::class_<ChainConfig>(m, "ChainConfig")
        .def(py::init<>())
        .def_readwrite("temp", &ChainConfig::temp)
        .def_readwrite("seed", &ChainConfig::seed)
        .def_readwrite("top_k", &ChainConfig::top_k)
        .def_readwrite("top_p", &ChainConfig::top_p)
        .def_readwrite("min_p", &ChainConfig::min_p)
        .def_readwrite("repeat_penalty", &ChainConfig::repeat_penalty)
        .def_readwrite("penalty_last_n", &ChainConfig::penalty_last_n)
        .def_readwrite("logit_bias", &ChainConfig::logit_bias);

    // negtemp.errors.RemoteError, looked up when one is raised (that module imports this one)
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) {
                std::rethrow_exception(p);
            }
        } catch (const RemoteFault & e) {
            py::object exc = py::module_::import("negtemp.errors").attr("RemoteError")(e.what(), e.endpoint);
            PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())), exc.ptr());
        }
    });

    py::class_<Model>(m, "Model")
        .def(py::init<const py::bytes &, uint32_t, int32_t, int32_t, int32_t, const std::vector<std::string> &,
                      uint32_t>(),
             py::arg("path"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("n_gpu_layers"), py::arg("main_gpu"),
             py::arg("rpc"), py::arg("rpc_timeout_ms"))
        .def("close", &Model::close)
        .def_property_readonly("closed", &Model::closed)
        .def("cancel", &Model::cancel)
        .def_property_readonly("n_vocab", &Model::n_vocab)
        .def_property_readonly("n_ctx_train", &Model::n_ctx_train)
        .def_property_readonly("n_ctx", &Model::n_ctx)
        .def("eog_tokens", &Model::eog_tokens)
        .def("tokenize", &Model::tokenize, py::arg("text"), py::arg("add_special"), py::arg("parse_special"))
        .def_property_readonly("kv_bytes_per_token", &Model::kv_bytes_per_token)
        .def("token_to_piece", &Model::token_to_piece, py::arg("token"))
        .def("chat_prompt", &Model::chat_prompt, py::arg("messages"))
        .def("eval_logits", &Model::eval_logits, py::arg("tokens"))
        .def("op_backends", &Model::op_backends, py::arg("prompt"), py::arg("config"), py::arg("backend"))
        .def("sweep", &Model::sweep, py::arg("prompt"), py::arg("n_predict"), py::arg("configs"), py::arg("paths"));

    py::class_<Generation>(m, "Generation")
        .def(py::init<Model &, py::array_t<int32_t, py::array::c_style | py::array::forcecast>, int32_t,
                      const ChainConfig &, const std::string &, bool, int32_t>(),
             py::arg("model"), py::arg("prompt"), py::arg("n_predict"), py::arg("config"), py::arg("path"),
             py::arg("keep_logits"), py::arg("n_probs"), py::keep_alive<1, 2>())
        .def("next", &Generation::next)
        .def("close", &Generation::close);

    m.def("sampler_probs", &sampler_probs, py::arg("logits"), py::arg("config"), py::arg("path"), py::arg("history"),
          py::arg("device"));
    m.def("sample_tokens", &sample_tokens, py::arg("logits"), py::arg("config"), py::arg("path"), py::arg("n"),
          py::arg("device"));
    m.def(
        "devices",
        [] {
            DeviceList out;
            for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
                ggml_backend_dev_t dev = ggml_backend_dev_get(i);
                const char * kind = "other";
                switch (ggml_backend_dev_type(dev)) {
                    case GGML_BACKEND_DEVICE_TYPE_CPU: kind = "cpu"; break;
                    case GGML_BACKEND_DEVICE_TYPE_GPU: kind = "gpu"; break;
                    case GGML_BACKEND_DEVICE_TYPE_IGPU: kind = "igpu"; break;
                    case GGML_BACKEND_DEVICE_TYPE_ACCEL: kind = "accel"; break;
                    default: break;
                }
                size_t free = 0, total = 0;
                ggml_backend_dev_memory(dev, &free, &total);
                out.append(py::make_tuple(ggml_backend_dev_name(dev), ggml_backend_dev_description(dev), kind, total));
            }
            return out;
        },
        "(name, description, kind, memory bytes) of every ggml device this build can use");
    m.def(
        "ggml_type_info",
        [](int64_t t) -> pt::Optional<pt::Tuple<py::int_, py::int_>> {
            if (t < 0 || t >= GGML_TYPE_COUNT) {
                return py::none();
            }
            const auto type = static_cast<ggml_type>(t);
            const int64_t block = ggml_blck_size(type);
            const size_t size = ggml_type_size(type);
            if (block <= 0 || size == 0) {
                return py::none();  // a retired type id
            }
            return py::make_tuple(block, size);
        },
        py::arg("type"), "(block size, bytes per block) of a ggml tensor type, or None if ggml has no such type");
    m.def("rpc_server", &rpc_server, py::arg("endpoint"), py::arg("cache_dir"), py::arg("n_threads"),
          "Serve this machine's GPUs (else its CPU) to llama.cpp RPC clients at endpoint (host:port); returns only "
          "if the server cannot start");
    m.def(
        "system_info", [] { return std::string(llama_print_system_info()); },
        "llama.cpp's build and CPU features (SIMD extensions, backends), for bug reports and benchmarks");
}
