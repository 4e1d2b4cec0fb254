// The Python side of the boundary: the types the module takes and returns,
// spelled out so that the generated stub (_native.pyi, scripts/stubgen.py)
// types them exactly, and the one conversion of Python values into a ChainSpec.
#pragma once

#include "sampling_rules.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <cstdint>
#include <string>

namespace py = pybind11;
namespace pt = pybind11::typing;

namespace negtemp {

using Tokens = py::array_t<int32_t>;
using Floats = py::array_t<float>;
using Doubles = py::array_t<double>;
using TokenArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using Logits = py::array_t<float, py::array::c_style | py::array::forcecast>;
using TopTokens = pt::Tuple<Tokens, Doubles, Doubles, py::float_, py::int_>;
using Step = pt::Tuple<py::int_, py::int_, py::float_, py::bytes, py::str, pt::Optional<Floats>,
                       pt::Optional<TopTokens>>;
using Steps = pt::List<Step>;
using NodeList = pt::List<pt::Tuple<py::str, py::str, py::str, py::str>>;
using DeviceList = pt::List<pt::Tuple<py::str, py::str, py::str, py::int_>>;
using BiasMap = pt::Dict<py::int_, py::float_>;
using CacheInfo = pt::Tuple<py::int_, py::int_, py::int_, py::int_, py::int_, py::int_, bool>;

// A Python int within range's bounds, or ValueError naming the setting and
// its range: a value past 64 bits is out of every range.
int64_t int_in(const py::int_ & value, const IntRange & range);
int64_t int_in(const py::int_ & value, const Setting & setting);

// Python's values as a ChainSpec, validated (std::invalid_argument, i.e.
// ValueError, naming the first setting out of range).
ChainSpec make_spec(double beta, const py::int_ & seed, const py::int_ & top_k, double top_p, double min_p,
                    double repeat_penalty, const py::int_ & penalty_last_n, const BiasMap & logit_bias,
                    bool ignore_eos, const std::string & path);

}  // namespace negtemp
