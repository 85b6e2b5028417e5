// Whole terms cross the boundary in one call: a flat postfix record list in (build) and
// the reachable DAG in topological order out (export). All walks here are iterative.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/term.hpp"

namespace bwsk {

// One node. a/b: app (fun, arg) and lam (-, body) as record indices in a list, or as node
// ids in Store terms; tuple (n, -); proj (i, n). s1: prim/ref name, lam variable;
// s2: prim attrs.
struct Record {
    Kind kind = Kind::S;
    std::uint32_t a = 0, b = 0;
    std::string s1, s2;
};

// Builds every record (indices must point to earlier records); returns one id per record.
std::vector<Id> build_records(Store& store, const std::vector<Record>& records);

// The nodes reachable from root, children before parents (ascending ids).
std::vector<Id> reachable(const Store& store, Id root);

struct Exported {
    std::vector<Record> records;  // a/b are indices into records
    std::vector<std::uint32_t> refs;  // how many records refer to each record
};
Exported export_dag(const Store& store, Id root);

// The record of one node, with a/b as node ids.
Record node_record(const Store& store, Id t);

// Nodes of the tree that the DAG unfolds to, saturating at 2^64 - 1.
std::uint64_t tree_size(const Store& store, Id root);

}  // namespace bwsk
