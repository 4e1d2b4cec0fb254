// negtemp._native: the module definition, and nothing else. The loop it
// exposes is sequences.hpp, the rules it enforces sampling_rules.hpp.
#include "backends.hpp"
#include "sampling_rules.hpp"
#include "errors.hpp"
#include "fused_sampler.hpp"
#include "model.hpp"
#include "logits.hpp"
#include "py_types.hpp"
#include "rpc.hpp"
#include "grammar.hpp"
#include "sequences.hpp"
#include "slots.hpp"

#include "ggml-backend.h"
#include "llama.h"

#include <cmath>
#include <optional>

namespace {

std::optional<double> optional_number(double v) {
    return std::isnan(v) ? std::nullopt : std::optional<double>(v);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    using namespace negtemp;
    m.doc() = "negtemp's native generation loop over a patched llama.cpp (private: use the negtemp package)";

    log_to_buffer();
    load_backends();  // before llama.cpp, which would otherwise search the working directory for them
    llama_backend_init();

    m.attr("llama_commit") = NEGTEMP_LLAMA_COMMIT;  // the pinned upstream commit this build patched
    m.attr("patch_count") = NEGTEMP_PATCH_COUNT;    // patches of negtemp's series applied to it
    m.attr("default_n_ctx") = Model::kDefaultCtx;   // a sequence's context when none is given (at most)
    m.attr("all_masked") = kAllMasked;              // SamplingError's message, for every path and the references
    m.def(
        "sampler_paths", [] { return std::vector<std::string>(std::begin(kPathNames), std::end(kPathNames)); },
        "the names of the sampling paths, 'auto' first");

    py::class_<Setting>(m, "Setting", "One sampling setting as every door shows it (sampling_schema())")
        .def_readonly("name", &Setting::name, "the library's keyword")
        .def_property_readonly(
            "kind",
            [](const Setting & s) {
                static const char * const kinds[] = {"int", "float", "bool", "str", "bias"};
                return std::string(kinds[static_cast<int>(s.kind)]);
            },
            "the Python type of a value: 'int', 'float', 'bool', 'str' (a choice) or 'bias' (token id -> number)")
        .def_property_readonly(
            "default", [](const Setting & s) { return optional_number(s.fallback); },
            "the value when none is given; None where there is none (seed: one is drawn)")
        .def_property_readonly(
            "neutral", [](const Setting & s) { return optional_number(s.neutral); },
            "the value that turns the setting off; None where none does")
        .def_readonly("lo", &Setting::lo)
        .def_readonly("hi", &Setting::hi)
        .def_readonly("open", &Setting::open, "whether the range excludes lo and hi")
        .def_property_readonly("range", &Setting::range_text, "the range as text: [0, 1], (0, inf)")
        .def_readonly("flag", &Setting::flag, "negtemp's CLI flag: llama.cpp's where it has one")
        .def_readonly("field", &Setting::field, "llama-server's request field ('' if none)")
        .def_readonly("server_flag", &Setting::server_flag,
                      "llama-server's flag for its default, which negtemp serve sets to this default ('' if none)")
        .def_readonly("meaning", &Setting::meaning)
        .def_property_readonly("expects", &Setting::expects, "what a value is, as messages say it: 'an int'")
        .def(
            "check", [](const Setting & s, double v) { return s.check(v); }, py::arg("value"),
            "value, or ValueError with the setting's range when it is outside it");
    m.def(
        "sampling_schema",
        [] {
            pt::List<Setting> out;
            for (const Setting * s : kSettings) {
                out.append(py::cast(s, py::return_value_policy::reference));
            }
            return out;
        },
        "every sampling setting, in the chain's order: the one table the library, the CLI, negtemp serve and "
        "llama-server read");

    m.def(
        "unoffered_samplers",
        [] {
            pt::Dict<py::str, py::str> out;
            for (const Unoffered & u : kUnoffered) {
                out[py::str(u.name)] = py::str(u.why);
            }
            return out;
        },
        "llama.cpp's samplers negtemp does not offer, each with why (the library refuses them by name)");

    py::register_exception<SamplingError>(m, "SamplingError", PyExc_ValueError);
    py::register_exception<Cancelled>(m, "Cancelled", PyExc_RuntimeError);

    // negtemp.errors' exceptions, looked up when one is raised (that module imports this one)
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) {
                std::rethrow_exception(p);
            }
        } catch (const RemoteFault & e) {
            py::object exc = py::module_::import("negtemp.errors").attr("RemoteError")(e.what(), e.endpoint);
            PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())), exc.ptr());
        } catch (const ContextOverflow & e) {
            py::object exc = py::module_::import("negtemp.errors")
                                 .attr("ContextOverflowError")(e.prompt_tokens, e.n_predict, e.n_ctx, e.n_ctx_train);
            PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())), exc.ptr());
        }
    });

    py::class_<ChainSpec>(m, "ChainSpec",
                          "Every sampling setting, validated (negtemp.SamplingConfig makes these; ValueError names "
                          "the setting out of range)")
        .def(py::init(&make_spec), py::kw_only(), py::arg("beta"), py::arg("seed"), py::arg("top_k"),
             py::arg("top_p"), py::arg("min_p"), py::arg("repeat_penalty"), py::arg("penalty_last_n"),
             py::arg("logit_bias"), py::arg("ignore_eos"), py::arg("path"))
        .def("check", &check_chain, py::arg("n_vocab"), py::arg("history"),
            "ValueError unless the logit bias and the history are token ids of a vocabulary of n_vocab tokens")
        .def(
            "draw_seeds", [](const ChainSpec & s, const py::int_ & n) { return s.draw_seeds(int_in(n, kDrawsTogether)); },
            py::arg("n"), "the seeds of n draws decoded together (seed + i for draw i); ValueError names the range")
        .def_property_readonly("plain", &ChainSpec::plain, "logit bias, temperature and the draw only")
        .def_property_readonly(
            "resolved_path", [](const ChainSpec & s) { return std::string(path_name(s.resolved_path())); },
            "the path that runs: 'auto' is 'fused' for a plain chain, else 'chain'");

    py::class_<Model>(m, "Model")
        .def(py::init<const py::bytes &, uint32_t, int32_t, int32_t, int32_t, const std::vector<std::string> &,
                      uint32_t, const py::int_ &, const std::string &>(),
             py::arg("path"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("n_gpu_layers"), py::arg("main_gpu"),
             py::arg("rpc"), py::arg("rpc_timeout_ms"), py::arg("prefix_slots"), py::arg("kv_type"))
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
        .def("op_backends", &Model::op_backends, py::arg("prompt"), py::arg("spec"))
        .def(
            "check_request",
            [](Model & m, const TokenArray & prompt, const py::int_ & n_predict, const std::string & grammar) {
                m.prompt(prompt, int_in(n_predict, kNPredict));
                make_grammar(m, grammar);
            },
            py::arg("prompt"), py::arg("n_predict"), py::arg("grammar"),
            "ValueError (ContextOverflowError) unless the prompt's tokens and n_predict fit a sequence and the GBNF "
            "parses: what a batch checks of each request before it decodes")
        .def(
            "clear_prefix_cache", [](Model & m) { m.prefix_cache().clear(); },
            "forget every cached prompt (one in use now, when its call ends)")
        .def(
            "prefix_cache_info",
            [](Model & m) -> CacheInfo {
                const PrefixCache::Info i = m.prefix_cache().info();
                return py::make_tuple(i.prompts, i.tokens, i.capacity, i.bytes, i.last_reused, i.last_evaluated,
                                      i.reuses);
            },
            "(prompts held, tokens held, capacity in tokens, KV bytes, prompt tokens the last cached call reused, "
            "prompt tokens it evaluated, whether this model's prefixes are reused)");

    py::class_<Generation>(m, "Generation")
        .def(py::init<Model &, const TokenArray &, const py::int_ &, const ChainSpec &, const py::int_ &, bool,
                      const py::int_ &, const std::string &>(),
             py::arg("model"), py::arg("prompt"), py::arg("n_predict"), py::arg("spec"), py::arg("n"),
             py::arg("keep_logits"), py::arg("n_probs"), py::arg("grammar"), py::keep_alive<1, 2>(),
             "n draws of one prompt (stream, complete, draws), on the prefix cache or the backend path")
        .def(py::init<Model &, const std::vector<TokenArray> &, const std::vector<ChainSpec> &,
                      const std::vector<py::int_> &, const std::vector<py::int_> &, const std::vector<py::int_> &,
                      const std::vector<std::string> &, const std::vector<bool> &, const pt::Optional<py::int_> &>(),
             py::arg("model"), py::arg("prompts"), py::arg("specs"), py::arg("n_predict"), py::arg("n"),
             py::arg("n_probs"), py::arg("grammars"), py::arg("keep_logits"), py::arg("parallel"),
             py::keep_alive<1, 2>(),
             "many requests through `parallel` sequences on a context of their own (batch, sweep); None: "
             "min(jobs, default_parallel)")
        .def_property_readonly("seeds", &Generation::seeds, "each sequence's seed: its request's seed + its draw")
        .def_property_readonly("jobs", &Generation::jobs, "each sequence's (request, draw)")
        .def("next", &Generation::next)
        .def("end", &Generation::end, py::arg("sequence"), "sequence decodes no more (a stop string ended it)")
        .def("close", &Generation::close);
    m.attr("default_parallel") = Slots::kDefaultParallel;  // a batch's sequences decoded together, by default
    m.def("json_schema_grammar", &json_schema_grammar, py::arg("schema"),
          "GBNF for a JSON schema given as JSON text (llama.cpp's converter, as llama-server's json_schema)");

    m.def("sampler_probs", &sampler_probs, py::arg("logits"), py::arg("spec"), py::arg("history"), py::arg("device"));
    m.def("sample_tokens", &sample_tokens, py::arg("logits"), py::arg("spec"), py::arg("n"), py::arg("device"));
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
    m.def(
        "rpc_server",
        [](const std::string & endpoint, const std::string & cache_dir, size_t n_threads) {
            // the caller runs it on a thread of its own, and ends the process to stop it
            py::gil_scoped_release release;
            serve_rpc(endpoint, cache_dir, n_threads);
        },
        py::arg("endpoint"), py::arg("cache_dir"), py::arg("n_threads"),
        "Serve this machine's GPUs (else its CPU) to llama.cpp RPC clients at endpoint (host:port); returns only "
        "if the server cannot start");
    m.def("portable", [] { return kPortable; },
          "whether ggml's backends are loaded at run time, the best CPU variant for this CPU (a portable build)");
    m.def("cpu_backend", &cpu_backend_description,
          "which CPU backend runs: the variant's file in a portable build, else what the build targeted");
    m.def("fused_target", &fused_target, "the instruction set the fused sampler's loops run with");
    m.def(
        "system_info",
        [] {
            return "negtemp: CPU backend " + cpu_backend_description() + "; fused sampler " + fused_target() +
                   "\n" + llama_print_system_info();
        },
        "which CPU code runs, llama.cpp's build and CPU features (SIMD extensions, backends), for bug reports "
        "and benchmarks");
}
