// Grammars: GBNF text as llama.cpp's grammar sampler, with well-formed UTF-8
// on top, and a JSON schema as GBNF (llama.cpp's own converter, the one
// llama-server uses for json_schema).
#pragma once

#include "chain.hpp"
#include "model.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace negtemp {

// Where a UTF-8 byte stream stands: how many continuation bytes a code point
// still needs, and the range the next one must fall in (Unicode's table of
// well-formed sequences: no overlong forms, surrogates or code points past U+10FFFF).
struct Utf8State {
    int need = 0;
    uint8_t lo = 0x80, hi = 0xBF;

    // false (and the state unchanged) when the bytes would not be well-formed UTF-8
    bool advance(const std::string & bytes);
};

// One sequence's grammar, matched against the text the caller gets. Besides
// the tokens llama.cpp's sampler rejects, two kinds are masked: a token whose
// bytes would make the text ill-formed UTF-8 (the sampler decodes leniently:
// an overlong form or a surrogate passes), and a control token other than an
// end of generation (it adds no text, while the sampler matches its name,
// "<unk>", as if it did).
class Grammar {
public:
    // std::invalid_argument for GBNF that does not parse or is past negtemp's bounds.
    Grammar(const Model & model, const std::string & gbnf);

    // Sets the logit of every token not allowed now to -inf.
    void mask(llama_token_data_array & cur);
    // The grammar moves past the token drawn (one mask allowed).
    void accept(llama_token token);

private:
    SamplerPtr sampler_;
    const Model * model_;
    const std::vector<std::string> * pieces_;
    Utf8State utf8_;
};

// A sequence's grammar, or null for "".
std::unique_ptr<Grammar> make_grammar(const Model & model, const std::string & gbnf);

// GBNF for a JSON schema given as JSON text; std::invalid_argument for text
// that is not JSON or a schema the converter does not support.
std::string json_schema_grammar(const std::string & schema);

}  // namespace negtemp
