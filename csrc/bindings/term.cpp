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
#include "core/deep.hpp"
#include "core/normalize.hpp"
#include "core/rules.hpp"
#include "core/term.hpp"

namespace py = pybind11;
using bwsk::Id;
using bwsk::Kind;
using bwsk::Store;

namespace {

// Runs fn on the global store under its mutex, without the GIL.
template <class Fn>
auto locked(Fn&& fn) {
    py::gil_scoped_release release;
    Store& store = bwsk::global_store();
    std::lock_guard<std::mutex> lock(store.mutex);
    return fn(store);
}

// Record conversion uses the CPython API directly: a million-record term crosses the
// boundary in each direction, and pybind11's generic casts dominated the build time.
[[noreturn]] void bad_field(std::size_t i) {
    PyErr_Clear();
    throw bwsk::TermError("record " + std::to_string(i) + ": a field has the wrong type");
}

std::string_view text_field(PyObject* rec, Py_ssize_t k, std::size_t i) {
    Py_ssize_t len = 0;
    const char* text = PyUnicode_Check(PyTuple_GET_ITEM(rec, k))
                           ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(rec, k), &len)
                           : nullptr;
    if (text == nullptr) bad_field(i);
    return {text, static_cast<std::size_t>(len)};
}

std::uint32_t index_field(PyObject* rec, Py_ssize_t k, std::size_t i) {
    PyObject* item = PyTuple_GET_ITEM(rec, k);
    if (!PyLong_Check(item)) bad_field(i);
    unsigned long v = PyLong_AsUnsignedLong(item);
    if ((v == static_cast<unsigned long>(-1) && PyErr_Occurred()) || v > 0xFFFFFFFFul) bad_field(i);
    return static_cast<std::uint32_t>(v);
}

Py_ssize_t record_fields(Kind k) {
    switch (k) {
        case Kind::Ref: case Kind::Tuple: return 2;
        case Kind::Prim: case Kind::App: case Kind::Lam: case Kind::Proj: return 3;
        default: return 1;
    }
}

bwsk::Record record_from_python(PyObject* rec, std::size_t i) {
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) == 0)
        throw bwsk::TermError("record " + std::to_string(i) + ": expected a non-empty tuple");
    bwsk::Record r;
    r.kind = bwsk::kind_from_name(text_field(rec, 0, i));
    Py_ssize_t want = record_fields(r.kind);
    if (PyTuple_GET_SIZE(rec) != want)
        throw bwsk::TermError("record " + std::to_string(i) + ": a " + bwsk::kind_name(r.kind) +
                              " record has " + std::to_string(want) + " fields");
    switch (r.kind) {
        case Kind::Prim: r.s1 = text_field(rec, 1, i), r.s2 = text_field(rec, 2, i); break;
        case Kind::Ref: r.s1 = text_field(rec, 1, i); break;
        case Kind::App: case Kind::Proj:
            r.a = index_field(rec, 1, i), r.b = index_field(rec, 2, i);
            break;
        case Kind::Lam: r.s1 = text_field(rec, 1, i), r.a = index_field(rec, 2, i); break;
        case Kind::Tuple: r.a = index_field(rec, 1, i); break;
        default: break;
    }
    return r;
}

std::vector<bwsk::Record> records_from_python(const py::sequence& records) {
    py::object fast = py::reinterpret_steal<py::object>(PySequence_Fast(records.ptr(), "records"));
    if (!fast) throw py::error_already_set();
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.ptr());
    PyObject** items = PySequence_Fast_ITEMS(fast.ptr());
    std::vector<bwsk::Record> out;
    out.reserve(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i)
        out.push_back(record_from_python(items[i], static_cast<std::size_t>(i)));
    return out;
}

PyObject* kind_object(Kind k) {  // one interned str per kind, alive for the process
    static PyObject* names[static_cast<int>(Kind::Proj) + 1] = {};
    PyObject*& name = names[static_cast<int>(k)];
    if (name == nullptr) name = PyUnicode_InternFromString(bwsk::kind_name(k));
    Py_INCREF(name);
    return name;
}

PyObject* text_object(const std::string& s) {
    return PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
}

PyObject* index_object(std::uint32_t v) { return PyLong_FromUnsignedLong(v); }

py::tuple record_to_python(const bwsk::Record& r) {
    PyObject* fields[3] = {kind_object(r.kind), nullptr, nullptr};
    switch (r.kind) {
        case Kind::Prim: fields[1] = text_object(r.s1), fields[2] = text_object(r.s2); break;
        case Kind::Ref: fields[1] = text_object(r.s1); break;
        case Kind::Lam: fields[1] = text_object(r.s1), fields[2] = index_object(r.a); break;
        case Kind::Tuple: fields[1] = index_object(r.a); break;
        case Kind::App: case Kind::Proj: fields[1] = index_object(r.a), fields[2] = index_object(r.b); break;
        default: break;
    }
    Py_ssize_t n = record_fields(r.kind);
    py::tuple t(n);
    for (Py_ssize_t k = 0; k < n; ++k) {
        if (fields[k] == nullptr) throw py::error_already_set();
        PyTuple_SET_ITEM(t.ptr(), k, fields[k]);
    }
    return t;
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
        } catch (const bwsk::Interrupted&) {
            if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);  // else the handler's
        }
    });
}

// Long normalizations stop on Ctrl-C: the calling thread runs Python's signal handlers while
// it waits (a handler that calls back into bwsk._core would wait on the store lock forever).
bwsk::NormalizeOptions interruptible(std::uint64_t max_steps) {
    bwsk::NormalizeOptions options;
    options.max_steps = max_steps;
    options.interrupted = [] {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
    return options;
}

void bind_constructors(py::module_& m) {
    m.def("comb", [](const std::string& name) {
        Kind k = bwsk::kind_from_name(name);
        if (static_cast<int>(k) >= bwsk::kNumCombinators)
            throw bwsk::TermError("not a combinator: " + name);
        return static_cast<Id>(k);
    }, py::arg("name"), "Node id of a combinator S K I B C W.");
    m.def("prim", [](std::string name, std::string attrs) {
        return locked([&](Store& s) { return s.prim(name, attrs); });
    }, py::arg("name"), py::arg("attrs") = "", "A primitive; attrs is canonical text.");
    m.def("ref", [](std::string name) { return locked([&](Store& s) { return s.ref(name); }); },
          py::arg("name"), "A weight/constant reference %name.");
    m.def("app", [](Id fun, Id arg) { return locked([&](Store& s) { return s.app(fun, arg); }); },
          py::arg("fun"), py::arg("arg"), "The application fun arg.");
    m.def("lam", [](std::string var, Id body) {
        return locked([&](Store& s) { return s.lam(var, body); });
    }, py::arg("var"), py::arg("body"), "The lambda \\var. body.");
    m.def("tuple", [](std::uint32_t n) { return locked([&](Store& s) { return s.tuple(n); }); },
          py::arg("n"), "The curried n-tuple constructor.");
    m.def("proj", [](std::uint32_t i, std::uint32_t n) {
        return locked([&](Store& s) { return s.proj(i, n); });
    }, py::arg("i"), py::arg("n"), "The projection #i/n.");
}

void bind_whole_terms(py::module_& m) {
    m.def("build", [](const py::sequence& records, bool all) -> py::object {
        std::vector<bwsk::Record> recs = records_from_python(records);
        if (recs.empty()) throw bwsk::TermError("build needs at least one record");
        std::vector<Id> ids = locked([&](Store& s) { return bwsk::build_records(s, recs); });
        if (all) return py::cast(ids);
        return py::cast(ids.back());
    }, py::arg("records"), py::arg("all") = false,
       "Build postfix records in one call; the last record's id, or every id if all.");
    m.def("export", [](Id t) {
        bwsk::Exported e = locked([&](Store& s) { return bwsk::export_dag(s, t); });
        py::list records(e.records.size());
        for (std::size_t i = 0; i < e.records.size(); ++i)
            records[i] = record_to_python(e.records[i]);
        return py::make_tuple(records, py::cast(e.refs));
    }, py::arg("t"), "(records, refs): the reachable DAG, children first, and per-record "
       "reference counts.");
    m.def("node", [](Id t) {
        return record_to_python(locked([&](Store& s) { return bwsk::node_record(s, t); }));
    }, py::arg("t"), "One node as a record whose app/lam fields are node ids.");
    m.def("size", [](Id t) { return locked([&](Store& s) { return bwsk::reachable(s, t).size(); }); },
          py::arg("t"), "Distinct nodes reachable from t.");
    m.def("tree_size", [](Id t) { return locked([&](Store& s) { return bwsk::tree_size(s, t); }); },
          py::arg("t"), "Nodes of the unshared tree of t, saturating at 2**64 - 1.");
}

void bind_rewriting(py::module_& m) {
    m.def("normalize", [](Id t, std::uint64_t max_steps) {
        bwsk::NormalizeOptions options = interruptible(max_steps);
        return locked([&](Store& s) { return bwsk::normalize(s, t, nullptr, options); });
    }, py::arg("t"), py::arg("max_steps") = bwsk::NormalizeOptions{}.max_steps,
       "The normal form of t; TermError past max_steps rewrites or on a looping term.");
    m.def("normalize_with_stats", [](Id t, std::uint64_t max_steps) {
        std::vector<std::uint64_t> fired;
        bwsk::NormalizeOptions options = interruptible(max_steps);
        Id r = locked([&](Store& s) { return bwsk::normalize(s, t, &fired, options); });
        return py::make_tuple(r, stats_dict(fired));
    }, py::arg("t"), py::arg("max_steps") = bwsk::NormalizeOptions{}.max_steps,
       "(normal form, {rule text: times fired in this call}) for the rules that fired.");
    m.def("abstract", [](std::string var, Id t) {
        return locked([&](Store& s) { return bwsk::abstract(s, var, t); });
    }, py::arg("var"), py::arg("t"), "Bracket abstraction of the free variable var (unnormalized).");
    m.def("rules", [] { return bwsk::default_rules().texts(); }, "The rewrite rules, in match order.");
    m.def("store_stats", [] {
        std::pair<std::size_t, std::size_t> nb =
            locked([](Store& s) { return std::make_pair(s.size(), s.bytes()); });
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
