// Placeholder until the term bindings land; keeps the module buildable.
#include <pybind11/pybind11.h>
namespace py = pybind11;
void bind_term(py::module_& m) { (void)m; }
