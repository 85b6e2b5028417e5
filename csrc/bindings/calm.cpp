// bwsk._core.calm_search / calm_cuts: the whole problem crosses the boundary in one call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "core/calm.hpp"

namespace py = pybind11;
namespace calm = bwsk::calm;

namespace {

template <class T>
std::vector<T> field(const py::dict& d, const char* key) {
    if (!d.contains(key)) throw std::invalid_argument(std::string("calm: missing field ") + key);
    return d[key].cast<std::vector<T>>();
}

calm::Problem problem_of(const py::dict& d) {
    calm::Problem p;
    p.world = d["world"].cast<std::int32_t>();
    p.alpha = d["alpha"].cast<double>();
    p.outputs_replicated = d["outputs_replicated"].cast<bool>();
    p.val_kind = field<std::int32_t>(d, "val_kind");
    p.val_bytes = field<std::int64_t>(d, "val_bytes");
    p.val_fixed = field<std::int32_t>(d, "val_fixed");
    p.val_price = field<double>(d, "val_price");
    p.val_all_off = field<std::int32_t>(d, "val_all_off");
    p.val_all = field<std::int32_t>(d, "val_all");
    p.val_ok_off = field<std::int32_t>(d, "val_ok_off");
    p.val_ok = field<std::int32_t>(d, "val_ok");
    p.node_in_off = field<std::int32_t>(d, "node_in_off");
    p.node_in = field<std::int32_t>(d, "node_in");
    p.node_out_off = field<std::int32_t>(d, "node_out_off");
    p.node_out = field<std::int32_t>(d, "node_out");
    p.node_linear = field<std::int32_t>(d, "node_linear");
    p.node_mix_off = field<std::int32_t>(d, "node_mix_off");
    p.node_mix = field<std::int32_t>(d, "node_mix");
    p.node_stat_off = field<std::int32_t>(d, "node_stat_off");
    p.node_stat = field<std::int32_t>(d, "node_stat");
    p.node_stat_bytes = field<std::int64_t>(d, "node_stat_bytes");
    p.outputs = field<std::int32_t>(d, "outputs");
    p.preferred = field<std::int32_t>(d, "preferred");
    return p;
}

}  // namespace

void bind_calm(py::module_& m) {
    m.def(
        "calm_search",
        [](const py::dict& d) {
            calm::Problem p = problem_of(d);
            calm::Plan plan;
            {
                py::gil_scoped_release release;
                plan = calm::search(p);
            }
            py::list records;
            for (const auto& r : plan.records)
                records.append(py::make_tuple(r.value, r.node, static_cast<int>(r.phase),
                                              static_cast<int>(r.coll), r.bytes));
            py::dict out;
            out["value_state"] = plan.value_state;
            out["records"] = records;
            out["cost"] = plan.cost;
            return out;
        },
        py::arg("problem"),
        "Search the cheapest placement on one mesh axis; returns value states and collectives.");
    m.def("calm_cuts", &calm::cuts, py::arg("load"), py::arg("crossing"), py::arg("candidate"),
          py::arg("stages"), "Pipeline stage boundaries: balanced load, smallest crossing bytes.");
}
