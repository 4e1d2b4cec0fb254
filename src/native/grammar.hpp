// Grammars: GBNF text as llama.cpp's grammar sampler, and a JSON schema as GBNF
// (llama.cpp's own converter, the one llama-server uses for json_schema).
#pragma once

#include "chain.hpp"
#include "model.hpp"

#include <string>

namespace negtemp {

// The model's grammar sampler for GBNF text (start rule "root"), or null for "";
// std::invalid_argument for text that does not parse or is past the bounds below.
SamplerPtr make_grammar(const Model & model, const std::string & gbnf);

// GBNF for a JSON schema given as JSON text; std::invalid_argument for text
// that is not JSON or a schema the converter does not support.
std::string json_schema_grammar(const std::string & schema);

}  // namespace negtemp
