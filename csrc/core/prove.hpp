// Recoverability analysis: which values of a dataflow graph can be recomputed from its
// outputs, and in what order (the inverse program). Pure C++17; the catalogue decides, per
// node input, whether it is recoverable, and this fixpoint composes those local facts.
#pragma once

#include <cstdint>
#include <vector>

namespace bwsk {

// How a node input can be recovered once the node's required outputs are known.
enum class Recover : std::uint8_t {
    No = 0,         // not recoverable (erased, or not proved)
    GivenOthers = 1,  // from the outputs once every other input is known (add, mul by c, ...)
    Alone = 2,        // from the outputs alone (reshape, concat, exp, ...)
};

struct ProveGraph {
    std::int32_t num_values = 0;
    // CSR layout: node k's inputs are in_ids[in_off[k] .. in_off[k+1]), likewise outputs.
    std::vector<std::int32_t> in_off, in_ids;
    std::vector<std::uint8_t> in_recover;  // one Recover per entry of in_ids
    std::vector<std::int32_t> out_off, out_ids;  // every output a forward run produces
    std::vector<std::uint8_t> out_needed;  // per out_ids entry: does recovering inputs need it
    std::vector<std::int32_t> known_from_start;  // graph outputs and constants
};

struct Step {
    std::int32_t node;
    std::int32_t input;  // -1: run the node forward; otherwise recover this input slot
};

struct ProveResult {
    std::vector<std::uint8_t> known;  // per value
    std::vector<Step> steps;          // the inverse program, in execution order
};

// Propagates knowledge to a fixpoint. Throws std::invalid_argument on malformed input.
ProveResult prove_recoverable(const ProveGraph& g);

}  // namespace bwsk
