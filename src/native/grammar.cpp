#include "grammar.hpp"

#include "errors.hpp"
#include "json-schema-to-grammar.h"
#include "json.h"

#include <cmath>
#include <stdexcept>

namespace negtemp {
namespace {

// llama.cpp parses nested groups and advances through rule references by
// recursion: bounds on both keep a hostile grammar from overflowing the stack.
constexpr int kMaxNesting = 256;
constexpr size_t kMaxRules = 4096;

void check_bounds(const std::string & gbnf) {
    int depth = 0;
    size_t rules = 0;
    for (size_t i = 0; i < gbnf.size(); ++i) {
        depth += gbnf[i] == '(' ? 1 : gbnf[i] == ')' ? -1 : 0;
        if (depth > kMaxNesting) {
            throw std::invalid_argument("the grammar nests groups more than " + std::to_string(kMaxNesting) +
                                        " deep; name the inner groups as rules");
        }
        rules += gbnf.compare(i, 3, "::=") == 0 ? 1 : 0;
    }
    if (rules > kMaxRules) {
        throw std::invalid_argument("the grammar has " + std::to_string(rules) + " rules, more than the " +
                                    std::to_string(kMaxRules) + " negtemp takes");
    }
}

}  // namespace

bool Utf8State::advance(const std::string & bytes) {
    Utf8State s = *this;
    for (const char ch : bytes) {
        const auto b = static_cast<uint8_t>(ch);
        if (s.need > 0) {
            if (b < s.lo || b > s.hi) {
                return false;
            }
            --s.need;
            s.lo = 0x80;
            s.hi = 0xBF;
            continue;
        }
        if (b < 0x80) {
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            s.need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            s.need = 2;
            s.lo = b == 0xE0 ? 0xA0 : 0x80;
            s.hi = b == 0xED ? 0x9F : 0xBF;
        } else if (b >= 0xF0 && b <= 0xF4) {
            s.need = 3;
            s.lo = b == 0xF0 ? 0x90 : 0x80;
            s.hi = b == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
    }
    *this = s;
    return true;
}

Grammar::Grammar(const Model & model, const std::string & gbnf) : model_(&model), pieces_(&model.pieces()) {
    check_bounds(gbnf);
    take_log();
    sampler_.reset(llama_sampler_init_grammar(model.vocab(), gbnf.c_str(), "root"));
    if (!sampler_) {
        throw std::invalid_argument("the grammar does not parse (GBNF, with a rule named root): " + take_log());
    }
}

void Grammar::mask(llama_token_data_array & cur) {
    llama_sampler_apply(sampler_.get(), &cur);
    for (size_t i = 0; i < cur.size; ++i) {
        llama_token_data & d = cur.data[i];
        if (d.logit == -INFINITY || model_->is_eog(d.id)) {
            continue;
        }
        const std::string & piece = (*pieces_)[static_cast<size_t>(d.id)];
        Utf8State s = utf8_;
        if (piece.empty() || !s.advance(piece)) {
            d.logit = -INFINITY;
        }
    }
}

void Grammar::accept(llama_token token) {
    llama_sampler_accept(sampler_.get(), token);
    utf8_.advance((*pieces_)[static_cast<size_t>(token)]);
}

std::unique_ptr<Grammar> make_grammar(const Model & model, const std::string & gbnf) {
    return gbnf.empty() ? nullptr : std::make_unique<Grammar>(model, gbnf);
}

std::string json_schema_grammar(const std::string & schema) {
    common_json parsed;
    try {
        parsed = common_json::parse(schema);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("the JSON schema is not JSON: ") + e.what());
    }
    try {
        return json_schema_to_grammar(parsed);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("the JSON schema cannot be turned into a grammar: ") + e.what());
    }
}

}  // namespace negtemp
