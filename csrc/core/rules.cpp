// The rule table and its pattern reader (see rules.hpp).
#include "core/rules.hpp"

#include <cctype>
#include <string_view>

namespace bwsk {

namespace {

// Order matters within a (head, arity) group: S K K -> I is tried before S p (K q).
const std::vector<std::string> kRuleTexts = {
    "I x -> x",
    "K x y -> x",
    "S f g x -> f x (g x)",
    "B f g x -> f (g x)",
    "C f x y -> f y x",
    "W f x -> f x x",
    "S K K -> I",
    "S (K p) (K q) -> K (p q)",
    "S (K p) I -> p",
    "S (K p) q -> B p q",
    "S p (K q) -> C p q",
    "B p I -> p",
    "B I p -> p",
    "W K -> I",
    "C (C p) -> p",
};

const char* const kProjectionText = "#i/n (<,..,> a0 .. a(n-1)) -> ai";
const char* const kPairingText = "<#0/n x, .., #(n-1)/n x> -> x";

// Reads "lhs -> rhs": upper-case S K I B C W are combinators, lower-case names are
// metavariables, juxtaposition is left-associative application.
class Reader {
public:
    Reader(std::string_view text, Rule& rule) : s_(text), rule_(rule) {}

    void read() {
        rule_.lhs = sequence();
        skip_space();
        if (s_.substr(pos_, 2) != "->") fail("expected '->'");
        pos_ += 2;
        in_lhs_ = false;
        rule_.rhs = sequence();
        skip_space();
        if (pos_ != s_.size()) fail("unexpected text after the right-hand side");
        rule_.num_vars = static_cast<int>(vars_.size());
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw TermError("bad rule '" + std::string(s_) + "': " + why);
    }
    void skip_space() {
        while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
    }
    bool at_atom() {
        skip_space();
        if (pos_ >= s_.size()) return false;
        return s_[pos_] == '(' || std::isalpha(static_cast<unsigned char>(s_[pos_]));
    }
    std::int16_t add(Pat p) {
        rule_.pats.push_back(p);
        return static_cast<std::int16_t>(rule_.pats.size() - 1);
    }
    std::int16_t sequence() {
        if (!at_atom()) fail("expected a pattern");
        std::int16_t t = atom();
        while (at_atom()) {
            std::int16_t x = atom();
            t = add({Pat::App, 0, t, x});
        }
        return t;
    }
    std::int16_t atom() {
        char c = s_[pos_];
        if (c == '(') {
            ++pos_;
            std::int16_t t = sequence();
            skip_space();
            if (pos_ >= s_.size() || s_[pos_] != ')') fail("expected ')'");
            ++pos_;
            return t;
        }
        std::size_t start = pos_;
        while (pos_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_]))) ++pos_;
        std::string_view name = s_.substr(start, pos_ - start);
        if (std::isupper(static_cast<unsigned char>(c))) {
            Kind k = kind_from_name(name);
            if (static_cast<int>(k) >= kNumCombinators) fail("unknown combinator");
            return add({Pat::Comb, static_cast<std::uint8_t>(k), -1, -1});
        }
        return add({Pat::Var, variable(name), -1, -1});
    }
    std::uint8_t variable(std::string_view name) {
        for (std::size_t i = 0; i < vars_.size(); ++i)
            if (vars_[i] == name) return static_cast<std::uint8_t>(i);
        if (!in_lhs_) fail("variable '" + std::string(name) + "' is not bound by the left side");
        if (vars_.size() >= kMaxRuleVars) fail("too many variables");
        vars_.emplace_back(name);
        return static_cast<std::uint8_t>(vars_.size() - 1);
    }

    std::string_view s_;
    Rule& rule_;
    std::size_t pos_ = 0;
    bool in_lhs_ = true;
    std::vector<std::string_view> vars_;
};

}  // namespace

RuleSet::RuleSet(const std::vector<std::string>& texts) {
    for (const std::string& text : texts) {
        Rule rule;
        rule.text = text;
        Reader(text, rule).read();
        int p = rule.lhs;
        while (rule.pats[p].tag == Pat::App) {
            ++rule.arity;
            p = rule.pats[p].fun;
        }
        if (rule.pats[p].tag != Pat::Comb || rule.arity == 0 || rule.arity > kMaxRuleArity)
            throw TermError("bad rule '" + text + "': the left side must apply a combinator");
        rule.head = static_cast<Kind>(rule.pats[p].value);
        by_head_[rule.pats[p].value][rule.arity].push_back(static_cast<int>(rules_.size()));
        rules_.push_back(std::move(rule));
    }
}

const std::vector<int>& RuleSet::candidates(Kind head, std::uint32_t arity) const {
    static const std::vector<int> none;
    int h = static_cast<int>(head);
    if (h >= kNumCombinators || arity > kMaxRuleArity) return none;
    return by_head_[h][arity];
}

bool RuleSet::match(const Store& store, const Rule& rule, Id t, Id* binds) const {
    for (int v = 0; v < rule.num_vars; ++v) binds[v] = kNone;
    return match_at(store, rule, rule.lhs, t, binds);
}

bool RuleSet::match_at(const Store& store, const Rule& rule, int p, Id t, Id* binds) const {
    const Pat& pat = rule.pats[p];
    switch (pat.tag) {
        case Pat::Comb:
            return t == store.comb(static_cast<Kind>(pat.value));
        case Pat::Var:
            if (binds[pat.value] == kNone) binds[pat.value] = t;
            return binds[pat.value] == t;  // a repeated variable needs the same (shared) node
        case Pat::App:
            return store.kind(t) == Kind::App &&
                   match_at(store, rule, pat.fun, store.node(t).a, binds) &&
                   match_at(store, rule, pat.arg, store.node(t).b, binds);
    }
    return false;
}

std::vector<std::string> RuleSet::texts() const {
    std::vector<std::string> out;
    for (const Rule& r : rules_) out.push_back(r.text);
    out.emplace_back(kProjectionText);
    out.emplace_back(kPairingText);
    return out;
}

const std::vector<std::string>& default_rule_texts() { return kRuleTexts; }

const RuleSet& default_rules() {
    static const RuleSet rules(kRuleTexts);
    return rules;
}

}  // namespace bwsk
