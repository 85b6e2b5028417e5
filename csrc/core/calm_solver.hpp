// The plan search's internals (see calm.hpp), shared by its translation units:
// calm_placement.cpp (how a node's strategy places its operands, and what converting a
// placement costs), calm_search.cpp (the dynamic programme), calm_improve.cpp (local moves),
// calm_emit.cpp (the collectives of the chosen plan).
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "core/calm.hpp"

namespace bwsk::calm::detail {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::int32_t kFree = -3;  // val_fixed: no fixed placement
using I32 = std::int32_t;

struct Span {
    const I32* b;
    const I32* e;
    std::size_t size() const { return static_cast<std::size_t>(e - b); }
    bool has(I32 x) const { return std::find(b, e, x) != e; }
    I32 operator[](std::size_t i) const { return b[i]; }
};

inline Span span(const std::vector<I32>& off, const std::vector<I32>& data, std::size_t i) {
    return {data.data() + off[i], data.data() + off[i + 1]};
}

struct Conv {
    Coll fwd = Coll::None, bwd = Coll::None;
};

// Placement s as produced -> placement t as consumed; `gp`: the consumer's gradient for a
// replicated operand is a partial sum (it saw only a shard of the computation).
Conv convert(I32 s, I32 t, bool gp, bool has_grad);

struct Strategy {
    I32 kind;  // 0 replicate, 1 shard on class `arg`, 2 partial sums (`arg`: the partial input)
    I32 arg;
};

struct Demand {
    I32 node;
    I32 state;
    bool gp;
};

class Solver {
  public:
    explicit Solver(const Problem& p);
    Plan run();

  private:
    const Problem& p_;
    std::vector<std::vector<I32>> states_;
    std::vector<std::vector<double>> f_;
    std::vector<std::vector<Demand>> demands_;
    std::vector<Strategy> chosen_;
    std::vector<std::vector<std::pair<I32, I32>>> consumers_;  // per value: (node, input slot)
    std::vector<char> produced_;
    std::vector<I32> producer_;                 // per value: its node, or -1
    std::vector<char> free_;                    // activations no graph input reaches
    std::vector<std::vector<I32>> leaves_;      // ... and the parameters they come from
    std::vector<double> pushed_;                // wire cost of all-reducing those parameters
    bool share_ = true;                         // consumers share a fan-out's cost (see g)

    std::size_t nv() const { return p_.val_kind.size(); }
    std::size_t nn() const { return p_.node_linear.size(); }
    Kind kind(I32 v) const { return static_cast<Kind>(p_.val_kind[v]); }
    bool has_grad(I32 v) const { return kind(v) == Kind::Activation || kind(v) == Kind::Parameter; }
    bool carries(I32 v, I32 c) const { return span(p_.val_all_off, p_.val_all, v).has(c); }
    bool may(I32 v, I32 c) const { return span(p_.val_ok_off, p_.val_ok, v).has(c); }
    Span ins(std::size_t n) const { return span(p_.node_in_off, p_.node_in, n); }
    Span outs(std::size_t n) const { return span(p_.node_out_off, p_.node_out, n); }
    bool stats_on(std::size_t n, Strategy st) const {
        return st.kind == 1 && span(p_.node_stat_off, p_.node_stat, n).has(st.arg);
    }

    double wire(Coll c, std::int64_t bytes) const;
    double conv_cost(I32 v, I32 s, I32 t, bool gp) const;
    double price(I32 v, I32 s) const;

    // calm_search.cpp
    void validate() const;
    void index_graph();
    void init_states();
    void forward();
    void backward(Plan& plan);
    // calm_placement.cpp
    void find_input_free();
    std::vector<Strategy> strategies(std::size_t n) const;
    bool assign(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                std::vector<char>& gp) const;
    bool assign_shard(std::size_t n, I32 c, std::vector<I32>& in, std::vector<I32>& out,
                      std::vector<char>& gp) const;
    double g(I32 v, I32 t, bool gp) const;
    double node_cost(std::size_t n, Strategy st, std::vector<I32>& in, std::vector<I32>& out,
                     std::vector<char>& gp) const;
    // calm_improve.cpp
    double conversions(I32 v, I32 s, const std::vector<Demand>& ds) const;
    double value_cost(I32 v, I32 s, const std::vector<Demand>& ds) const;
    std::vector<Demand> demands_of(I32 v) const;
    void improve(Plan& plan);
    std::vector<std::size_t> chain(std::size_t n) const;
    std::vector<std::size_t> group(std::size_t n) const;
    double group_cost(const std::vector<std::size_t>& nodes, const Plan& plan) const;
    void set(std::size_t n, Strategy st, Plan& plan);
    void collect_demands();
    // calm_emit.cpp
    void emit(Plan& plan) const;
    bool pushable(I32 v, const Plan& plan) const;
};

}  // namespace bwsk::calm::detail
