// The rewrite rules as data: a table of rule texts ("S (K p) (K q) -> K (p q)") read at
// start-up by a tiny pattern reader into match/build patterns, indexed by the head
// combinator and argument count of the left-hand side so matching tries only candidates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/term.hpp"

namespace bwsk {

// One pattern node: a combinator, a metavariable (index into the bindings) or an application.
struct Pat {
    enum Tag : std::uint8_t { Comb, Var, App } tag;
    std::uint8_t value;  // the Kind of a Comb, the variable index of a Var
    std::int16_t fun, arg;  // App children (indices into Rule::pats)
};

struct Rule {
    std::string text;
    std::vector<Pat> pats;
    std::int16_t lhs = -1, rhs = -1;
    int num_vars = 0;
    Kind head = Kind::S;    // the combinator at the head of the left-hand side
    std::uint32_t arity = 0;  // arguments applied to it
};

constexpr int kMaxRuleVars = 8;
constexpr std::uint32_t kMaxRuleArity = 4;

class RuleSet {
public:
    explicit RuleSet(const std::vector<std::string>& texts);

    const std::vector<Rule>& rules() const { return rules_; }
    // Indices of the rules whose left-hand side is `head` applied to `arity` arguments.
    const std::vector<int>& candidates(Kind head, std::uint32_t arity) const;
    // Tries one rule at the root of t; on success fills binds (num_vars entries).
    bool match(const Store& store, const Rule& rule, Id t, Id* binds) const;

    // Names (for statistics and rules()) of the two schematic tuple rules, after the table.
    int projection_rule() const { return static_cast<int>(rules_.size()); }
    int pairing_rule() const { return static_cast<int>(rules_.size()) + 1; }
    std::vector<std::string> texts() const;

private:
    bool match_at(const Store& store, const Rule& rule, int p, Id t, Id* binds) const;

    std::vector<Rule> rules_;
    std::vector<int> by_head_[kNumCombinators][kMaxRuleArity + 1];
};

// The built-in rule table and its parsed form (parsed once, on first use).
const std::vector<std::string>& default_rule_texts();
const RuleSet& default_rules();

}  // namespace bwsk
