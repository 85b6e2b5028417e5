// A flat open-addressing map from node ids to values: the per-call memo tables of the
// DAG walks hit it once per node, where std::unordered_map's allocations dominate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/term.hpp"

namespace bwsk {

template <class V>
class IdMap {
public:
    explicit IdMap(std::size_t expected = 16) {
        std::size_t cap = 16;
        while (cap < expected * 2) cap *= 2;
        keys_.assign(cap, kNone);
        values_.resize(cap);
    }

    // The value stored for key, or nullptr.
    const V* find(Id key) const {
        for (std::size_t i = slot(key, keys_.size());; i = (i + 1) & (keys_.size() - 1)) {
            if (keys_[i] == key) return &values_[i];
            if (keys_[i] == kNone) return nullptr;
        }
    }

    void insert(Id key, V value) {  // key must not be present yet
        if ((size_ + 1) * 2 > keys_.size()) grow();
        place(key, std::move(value));
        ++size_;
    }

private:
    static std::size_t slot(Id key, std::size_t cap) {
        return (static_cast<std::uint64_t>(key) * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
    }
    void place(Id key, V value) {
        std::size_t i = slot(key, keys_.size());
        while (keys_[i] != kNone) i = (i + 1) & (keys_.size() - 1);
        keys_[i] = key;
        values_[i] = std::move(value);
    }
    void grow() {
        std::vector<Id> keys(keys_.size() * 2, kNone);
        std::vector<V> values(keys.size());
        keys.swap(keys_);
        values.swap(values_);
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (keys[i] != kNone) place(keys[i], std::move(values[i]));
    }

    std::vector<Id> keys_;
    std::vector<V> values_;
    std::size_t size_ = 0;
};

}  // namespace bwsk
