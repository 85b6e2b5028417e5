// bwsk._core term functions: a one-to-one mirror of the engine over node ids (bwsk.term
// wraps them in Term objects). Every call takes the store mutex with the GIL released;
// whole terms cross in one call (build, export). TermError becomes bwsk.errors.TermError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/abstract.hpp"
#include "core/dag.hpp"
#include "core/normalize.hpp"
#include "core/rules.hpp"
#include "core/term.hpp"

namespace py = pybind11;
using bwsk::Id;
using bwsk::Kind;

namespace {

// Runs fn on the global store under its mutex, without the GIL.
template <class Fn>
auto locked(Fn&& fn) {
    py::gil_scoped_release release;
    bwsk::Store& store = bwsk::global_store();
    std::lock_guard<std::mutex> lock(store.mutex);
    return fn(store);
}

std::uint32_t index_field(const py::tuple& rec, std::size_t i) {
    return py::cast<std::uint32_t>(rec[i]);
}

std::size_t record_fields(Kind k) {
    switch (k) {
        case Kind::Ref: case Kind::Tuple: return 2;
        case Kind::Prim: case Kind::App: case Kind::Lam: case Kind::Proj: return 3;
        default: return 1;
    }
}

bwsk::Record record_from_python(const py::tuple& rec, std::size_t i) {
    bwsk::Record r;
    r.kind = bwsk::kind_from_name(py::cast<std::string>(rec[0]));
    std::size_t want = record_fields(r.kind);
    if (rec.size() != want)
        throw bwsk::TermError("record " + std::to_string(i) + ": a " + bwsk::kind_name(r.kind) +
                              " record has " + std::to_string(want) + " fields");
    switch (r.kind) {
        case Kind::Prim: r.s1 = py::cast<std::string>(rec[1]), r.s2 = py::cast<std::string>(rec[2]); break;
        case Kind::Ref: r.s1 = py::cast<std::string>(rec[1]); break;
        case Kind::App: case Kind::Proj: r.a = index_field(rec, 1), r.b = index_field(rec, 2); break;
        case Kind::Lam: r.s1 = py::cast<std::string>(rec[1]), r.a = index_field(rec, 2); break;
        case Kind::Tuple: r.a = index_field(rec, 1); break;
        default: break;
    }
    return r;
}

std::vector<bwsk::Record> records_from_python(const py::sequence& records) {
    std::vector<bwsk::Record> out;
    out.reserve(py::len(records));
    std::size_t i = 0;
    for (py::handle item : records) {
        if (!py::isinstance<py::tuple>(item) || py::len(item) == 0)
            throw bwsk::TermError("record " + std::to_string(i) + ": expected a non-empty tuple");
        try {
            out.push_back(record_from_python(py::reinterpret_borrow<py::tuple>(item), i));
        } catch (const py::cast_error&) {
            throw bwsk::TermError("record " + std::to_string(i) + ": a field has the wrong type");
        }
        ++i;
    }
    return out;
}

py::tuple record_to_python(const bwsk::Record& r) {
    const char* k = bwsk::kind_name(r.kind);
    switch (r.kind) {
        case Kind::Prim: return py::make_tuple(k, r.s1, r.s2);
        case Kind::Ref: return py::make_tuple(k, r.s1);
        case Kind::Lam: return py::make_tuple(k, r.s1, r.a);
        case Kind::Tuple: return py::make_tuple(k, r.a);
        case Kind::App: case Kind::Proj: return py::make_tuple(k, r.a, r.b);
        default: return py::make_tuple(k);
    }
}

py::dict stats_dict(const std::vector<std::uint64_t>& fired) {
    std::vector<std::string> texts = bwsk::default_rules().texts();
    py::dict out;
    for (std::size_t i = 0; i < fired.size(); ++i)
        if (fired[i]) out[py::str(texts[i])] = fired[i];
    return out;
}

void translate_errors() {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const bwsk::TermError& e) {
            py::object cls = py::module_::import("bwsk.errors").attr("TermError");
            PyErr_SetString(cls.ptr(), e.what());
        }
    });
}

void bind_constructors(py::module_& m) {
    m.def("comb", [](const std::string& name) {
        Kind k = bwsk::kind_from_name(name);
        if (static_cast<int>(k) >= bwsk::kNumCombinators) throw bwsk::TermError("not a combinator: " + name);
        return static_cast<Id>(k);
    }, py::arg("name"), "Node id of a combinator S K I B C W.");
    m.def("prim", [](std::string name, std::string attrs) {
        return locked([&](bwsk::Store& s) { return s.prim(name, attrs); });
    }, py::arg("name"), py::arg("attrs") = "", "A primitive; attrs is canonical text.");
    m.def("ref", [](std::string name) { return locked([&](bwsk::Store& s) { return s.ref(name); }); },
          py::arg("name"), "A weight/constant reference %name.");
    m.def("app", [](Id fun, Id arg) { return locked([&](bwsk::Store& s) { return s.app(fun, arg); }); },
          py::arg("fun"), py::arg("arg"), "The application fun arg.");
    m.def("lam", [](std::string var, Id body) {
        return locked([&](bwsk::Store& s) { return s.lam(var, body); });
    }, py::arg("var"), py::arg("body"), "The lambda \\var. body.");
    m.def("tuple", [](std::uint32_t n) { return locked([&](bwsk::Store& s) { return s.tuple(n); }); },
          py::arg("n"), "The curried n-tuple constructor.");
    m.def("proj", [](std::uint32_t i, std::uint32_t n) {
        return locked([&](bwsk::Store& s) { return s.proj(i, n); });
    }, py::arg("i"), py::arg("n"), "The projection #i/n.");
}

void bind_whole_terms(py::module_& m) {
    m.def("build", [](const py::sequence& records, bool all) -> py::object {
        std::vector<bwsk::Record> recs = records_from_python(records);
        if (recs.empty()) throw bwsk::TermError("build needs at least one record");
        std::vector<Id> ids = locked([&](bwsk::Store& s) { return bwsk::build_records(s, recs); });
        if (all) return py::cast(ids);
        return py::cast(ids.back());
    }, py::arg("records"), py::arg("all") = false,
       "Build postfix records in one call; the last record's id, or every id if all.");
    m.def("export", [](Id t) {
        bwsk::Exported e = locked([&](bwsk::Store& s) { return bwsk::export_dag(s, t); });
        py::list records(e.records.size());
        for (std::size_t i = 0; i < e.records.size(); ++i) records[i] = record_to_python(e.records[i]);
        return py::make_tuple(records, py::cast(e.refs));
    }, py::arg("t"), "(records, refs): the reachable DAG, children first, and per-record reference counts.");
    m.def("node", [](Id t) {
        return record_to_python(locked([&](bwsk::Store& s) { return bwsk::node_record(s, t); }));
    }, py::arg("t"), "One node as a record whose app/lam fields are node ids.");
    m.def("size", [](Id t) { return locked([&](bwsk::Store& s) { return bwsk::reachable(s, t).size(); }); },
          py::arg("t"), "Distinct nodes reachable from t.");
    m.def("tree_size", [](Id t) { return locked([&](bwsk::Store& s) { return bwsk::tree_size(s, t); }); },
          py::arg("t"), "Nodes of the unshared tree of t, saturating at 2**64 - 1.");
}

void bind_rewriting(py::module_& m) {
    m.def("normalize", [](Id t, std::uint64_t max_steps) {
        return locked([&](bwsk::Store& s) { return bwsk::normalize(s, t, nullptr, {max_steps}); });
    }, py::arg("t"), py::arg("max_steps") = bwsk::NormalizeOptions{}.max_steps,
       "The normal form of t; TermError past max_steps rewrites or on a looping term.");
    m.def("normalize_with_stats", [](Id t, std::uint64_t max_steps) {
        std::vector<std::uint64_t> fired;
        Id r = locked([&](bwsk::Store& s) { return bwsk::normalize(s, t, &fired, {max_steps}); });
        return py::make_tuple(r, stats_dict(fired));
    }, py::arg("t"), py::arg("max_steps") = bwsk::NormalizeOptions{}.max_steps,
       "(normal form, {rule text: times fired in this call}) for the rules that fired.");
    m.def("abstract", [](std::string var, Id t) {
        return locked([&](bwsk::Store& s) { return bwsk::abstract(s, var, t); });
    }, py::arg("var"), py::arg("t"), "Bracket abstraction of the free variable var (not normalized).");
    m.def("rules", [] { return bwsk::default_rules().texts(); }, "The rewrite rules, in match order.");
    m.def("store_stats", [] {
        std::pair<std::size_t, std::size_t> nb =
            locked([](bwsk::Store& s) { return std::make_pair(s.size(), s.bytes()); });
        py::dict d;
        d["nodes"] = nb.first;
        d["bytes"] = nb.second;
        return d;
    }, "{'nodes': nodes in the store, 'bytes': bytes it holds}.");
}

}  // namespace

void bind_term(py::module_& m) {
    translate_errors();
    bind_constructors(m);
    bind_whole_terms(m);
    bind_rewriting(m);
}
