// Sharding propagation and plan search for one mesh axis (the parallelism report).
//
// CALM-inspired: an op is coordination-free along a sharded logical dimension when it acts
// on each shard independently; everything else is a sync point with a collective. The
// graph arrives as flat arrays; per-atom sharding rules have already been instantiated by
// Python into per-node class lists (which logical dims each operand carries, which dims
// the op mixes, how it treats partial sums). Pure C++17, no Python, no torch.
#pragma once

#include <cstdint>
#include <vector>

namespace bwsk::calm {

// A value's placement on the axis: replicated, partial sum, or sharded on a class (>= 0).
constexpr std::int32_t kReplicated = -2;
constexpr std::int32_t kPartial = -1;

enum class Kind : std::int32_t { Activation = 0, Parameter = 1, Input = 2, Constant = 3 };
enum class Coll : std::int32_t { None = 0, AllReduce = 1, AllGather = 2, ReduceScatter = 3, AllToAll = 4 };
enum class Phase : std::int32_t { Fwd = 0, Bwd = 1, Optim = 2 };
// How an op treats partial-sum inputs.
enum class Linear : std::int32_t { None = 0, Unary = 1, Multilinear = 2, Additive = 3 };

struct Problem {
    std::int32_t world = 2;
    double alpha = 1.0;       // per-collective latency, in byte-equivalents (breaks ties)
    // values
    std::vector<std::int32_t> val_kind;
    std::vector<std::int64_t> val_bytes;
    std::vector<std::int32_t> val_fixed;            // -3 free, else the only allowed state
    std::vector<double> val_price;  // per byte, when not sharded: what the axis is meant to split
    std::vector<std::int32_t> val_all_off, val_all;  // every class the value carries
    std::vector<std::int32_t> val_ok_off, val_ok;    // classes it may be sharded on
    // nodes, in topological order
    std::vector<std::int32_t> node_in_off, node_in;  // -1 for an omitted input
    std::vector<std::int32_t> node_out_off, node_out;
    std::vector<std::int32_t> node_linear;
    std::vector<std::int32_t> node_mix_off, node_mix;    // classes the op mixes (never sharded)
    std::vector<std::int32_t> node_stat_off, node_stat;  // sharded at the price of a stats all-reduce
    std::vector<std::int64_t> node_stat_bytes;
    std::vector<std::int32_t> preferred;     // classes the axis is for (the tokens): a value
                                             // that could be split on one pays a sliver when
                                             // split on another, so ties go to the tokens
    std::vector<std::int32_t> outputs;       // graph outputs
    bool outputs_replicated = true;          // else outputs may stay sharded
};

struct Record {  // one collective of the chosen plan
    std::int32_t value, node;  // the value reconciled; the consumer (or stats) node, -1 if shared
    Phase phase;
    Coll coll;
    std::int64_t bytes;  // logical: unsharded input (all-reduce, reduce-scatter) or output (all-gather)
};

struct Plan {
    std::vector<std::int32_t> value_state;  // per value: kReplicated, kPartial or a class
    std::vector<Record> records;
    double cost = 0.0;  // the objective the search minimized
};

// Choose a placement per value minimizing collective bytes (fwd, bwd and optimizer phases).
// A replicated activation no graph input reaches (a position table looked up at fixed
// positions) hands a partial gradient to its parameters, whose optimizer-phase all-reduces
// (node -1) replace a backward all-reduce. Throws std::invalid_argument on malformed input.
Plan search(const Problem& p);

// Pipeline cuts: for `stages` stages, boundary indices (0 < b < n) balancing `load` (per
// node, non-negative) where `crossing` (per boundary 0..n) bytes are smallest among `candidate`s.
std::vector<std::int32_t> cuts(const std::vector<double>& load, const std::vector<std::int64_t>& crossing,
                               const std::vector<std::uint8_t>& candidate, std::int32_t stages);

}  // namespace bwsk::calm
