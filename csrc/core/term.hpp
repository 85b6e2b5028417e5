// The hash-consed term store: every structurally distinct term is exactly one node, so
// equality is id equality and shared subterms (twelve identical blocks) cost one node.
// Pure C++17. Node ids are topological: a node's children always have smaller ids.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bwsk {

using Id = std::uint32_t;
constexpr Id kNone = 0xFFFFFFFFu;

// A term that is ill-formed or cannot be processed; the bindings turn it into
// bwsk.errors.TermError with the same one-line message.
struct TermError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Order matters: the six combinators come first so they can index rule tables.
enum class Kind : std::uint8_t { S, K, I, B, C, W, Prim, Ref, App, Lam, Tuple, Proj };
constexpr int kNumCombinators = 6;

const char* kind_name(Kind k);
Kind kind_from_name(std::string_view name);  // throws TermError on an unknown name

// Payload by kind: prim (name sid, attrs sid), ref (name sid, 0), app (fun, arg),
// lam (var sid, body), tuple (n, 0), proj (i, n); combinators (0, 0). sid = string id.
struct Node {
    Id a, b;
    Kind kind;
};

class Store {
public:
    Store();

    Id string_id(std::string_view s) { return intern_string(s); }
    Id comb(Kind k) const { return static_cast<Id>(k); }  // combinators are ids 0..5
    Id prim(std::string_view name, std::string_view attrs);
    Id ref(std::string_view name);
    Id app(Id fun, Id arg);  // throws "cannot apply a tuple" on a full tuple spine
    Id lam(std::string_view var, Id body);
    Id tuple(std::uint32_t n);
    Id proj(std::uint32_t i, std::uint32_t n);

    const Node& node(Id t) const { return nodes_[t]; }
    Kind kind(Id t) const { return nodes_[t].kind; }
    Id head(Id t) const { return head_[t]; }  // the head of t's application spine
    std::uint32_t nargs(Id t) const { return nargs_[t]; }  // arguments applied to head(t)
    const std::string& str(Id sid) const { return strings_[sid]; }
    bool valid(Id t) const { return t < nodes_.size(); }
    void check(Id t) const;  // throws TermError on an unknown node id

    std::size_t size() const { return nodes_.size(); }
    std::size_t bytes() const;

    // The normal form of each node once known (kNone: not yet), shared by every
    // normalization so repeated and shared work is done once per node.
    std::vector<Id> nf;
    // A variable (string id) known not to occur in the node, which has no lambdas either
    // (kNone: none known): lets abstractions skip big closed subterms such as weights or
    // earlier layers, which many lambdas of one variable name would otherwise re-walk.
    std::vector<Id> lacks_var;

    // Whether the variable (string id) var surely does not occur in t, which has no lambdas
    // either: answered in O(1) from a per-node summary of the attribute-less primitives in
    // t, so abstracting many nested lambdas does not re-walk each intermediate result.
    bool lacks(Id t, Id var) const {
        const VarSummary& v = vars_[t];
        if (lacks_var[t] == var) return true;
        if (v.bloom & kHasLam) return false;
        return var > v.hi || !(v.bloom & var_bit(var));
    }

    // A node under t with the same possible variables (t itself unless t applies a
    // variable-free term, as in K M): whether t lacks a variable is whether it does.
    Id var_rep(Id t) const { return var_rep_[t]; }
    bool has_lam(Id t) const { return (vars_[t].bloom & kHasLam) != 0; }

    // Guards the whole store; the bindings hold it for every native call.
    std::mutex mutex;

private:
    // The string ids of the attribute-less primitives (possible variables) in a node: the
    // largest (0 for none; variables made after the body exceed it) and a bloom filter whose
    // top bit says that the node contains a lambda. 8 bytes: the store stays <= 100 B/node.
    struct VarSummary {
        Id hi;
        std::uint32_t bloom;
    };
    static constexpr std::uint32_t kHasLam = 1U << 31;
    static std::uint32_t var_bit(Id var) { return 1U << (var % 31); }
    VarSummary summarize(Kind k, Id a, Id b) const;

    Id intern_string(std::string_view s);
    Id intern(Kind k, Id a, Id b);
    void grow_table();

    std::vector<Node> nodes_;
    std::vector<Id> head_;
    std::vector<std::uint32_t> nargs_;
    std::vector<VarSummary> vars_;
    std::vector<Id> var_rep_;
    Id no_attrs_ = kNone;  // the string id of ""
    std::vector<Id> table_;  // open addressing over node ids, kNone = empty slot
    std::deque<std::string> strings_;  // a deque keeps the views in string_ids_ valid
    std::unordered_map<std::string_view, Id> string_ids_;
};

// The process-wide store behind bwsk.Term.
Store& global_store();

}  // namespace bwsk
