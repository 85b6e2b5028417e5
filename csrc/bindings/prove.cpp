// bwsk._core.prove_recoverable: the whole graph crosses the boundary in one call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "core/prove.hpp"

namespace py = pybind11;

void bind_prove(py::module_& m) {
    m.def(
        "prove_recoverable",
        [](std::int32_t num_values, std::vector<std::int32_t> in_off, std::vector<std::int32_t> in_ids,
           std::vector<std::uint8_t> in_recover, std::vector<std::int32_t> out_off,
           std::vector<std::int32_t> out_ids, std::vector<std::uint8_t> out_needed,
           std::vector<std::int32_t> known) {
            bwsk::ProveGraph g{num_values,         std::move(in_off),  std::move(in_ids),
                               std::move(in_recover), std::move(out_off), std::move(out_ids),
                               std::move(out_needed), std::move(known)};
            bwsk::ProveResult r;
            {
                py::gil_scoped_release release;
                r = bwsk::prove_recoverable(g);
            }
            std::vector<std::pair<std::int32_t, std::int32_t>> steps;
            steps.reserve(r.steps.size());
            for (auto s : r.steps) steps.emplace_back(s.node, s.input);
            return py::make_tuple(r.known, steps);
        },
        py::arg("num_values"), py::arg("in_off"), py::arg("in_ids"), py::arg("in_recover"),
        py::arg("out_off"), py::arg("out_ids"), py::arg("out_needed"), py::arg("known"),
        "Fixpoint of recoverability from the known values. in_recover per node input: 0 no, "
        "1 given the other inputs, 2 from the outputs alone; out_needed per node output: whether "
        "recovering inputs needs it. Returns (known per value, "
        "[(node, input slot or -1 for forward)] in inverse-program order).");
}
