// The bwsk._core extension: one registration function per bindings file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_term(py::module_& m);  // bindings/term.cpp
void bind_prove(py::module_& m);  // bindings/prove.cpp
void bind_calm(py::module_& m);  // bindings/calm.cpp

PYBIND11_MODULE(_core, m) {
    m.doc() = "bwsk native core: hash-consed terms, bracket abstraction, normalizer, proofs.";
    bind_term(m);
    bind_prove(m);
    bind_calm(m);
}
