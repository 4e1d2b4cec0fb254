#include "py_types.hpp"


namespace negtemp {

namespace {

// value as a 64-bit integer; false when it does not fit
bool as_int64(const py::handle & value, int64_t & out) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (v == -1 && PyErr_Occurred()) {
        throw py::error_already_set();
    }
    out = v;
    return overflow == 0;
}

template <typename Range>
int64_t checked_int(const py::int_ & value, const Range & range) {
    int64_t v = 0;
    if (!as_int64(value, v)) {
        range.refuse(py::str(value).cast<std::string>());
    }
    return range.check(v);
}

}  // namespace

int64_t int_in(const py::int_ & value, const IntRange & range) { return checked_int(value, range); }

int64_t int_in(const py::int_ & value, const Setting & setting) { return checked_int(value, setting); }

ChainSpec make_spec(double beta, const py::int_ & seed, const py::int_ & top_k, double top_p, double min_p,
                    double repeat_penalty, const py::int_ & penalty_last_n, const BiasMap & logit_bias,
                    bool ignore_eos, const std::string & path) {
    ChainSpec s;
    s.beta = beta;
    s.seed = static_cast<uint32_t>(int_in(seed, kSeed));
    s.top_k = static_cast<int32_t>(int_in(top_k, kTopK));
    s.top_p = top_p;
    s.min_p = min_p;
    s.repeat_penalty = repeat_penalty;
    s.penalty_last_n = static_cast<int32_t>(int_in(penalty_last_n, kPenaltyLastN));
    for (const auto & [key, value] : logit_bias) {
        int64_t token = 0;
        if (!as_int64(key, token)) {
            throw std::invalid_argument("logit_bias token " + py::str(key).cast<std::string>() +
                                        " is outside every vocabulary");
        }
        s.logit_bias[token] = value.cast<double>();
    }
    s.ignore_eos = ignore_eos;
    s.path = parse_path(path);
    s.validate();
    return s;
}

}  // namespace negtemp
