#include "grammar.hpp"

#include "errors.hpp"
#include "json-schema-to-grammar.h"
#include "json.h"

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

SamplerPtr make_grammar(const Model & model, const std::string & gbnf) {
    if (gbnf.empty()) {
        return nullptr;
    }
    check_bounds(gbnf);
    take_log();
    SamplerPtr g(llama_sampler_init_grammar(model.vocab(), gbnf.c_str(), "root"));
    if (!g) {
        throw std::invalid_argument("the grammar does not parse (GBNF, with a rule named root): " + take_log());
    }
    return g;
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
