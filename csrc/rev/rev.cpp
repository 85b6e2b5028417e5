// bwsk._rev: registers the coupling operators (namespace bwsk_rev) and their CPU kernels.
//
// Importing the module only loads this library; the static TORCH_LIBRARY blocks register the
// schemas with the dispatcher. Typed wrappers, fake kernels and autograd formulas live in
// bwsk/reversible/ops.py. The CUDA kernels (rev_cuda.cu) register under the same schemas.
//
// The loops run through TensorIterator: cpu_kernel_vec applies the functor to at::vec
// vectors with a scalar tail, and TensorIterator::for_each splits the range over threads
// with at::parallel_for. The trailing-underscore ops write into their first argument, which
// the reversible backward uses on buffers it owns to avoid an allocation per block.
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/TensorIterator.h>
#include <ATen/native/cpu/Loops.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <cmath>

#include "rev/checks.h"
#include "rev/coupling.h"

namespace bwsk::rev {
namespace {

template <int Sign>
void couple_loop(at::TensorIterator& iter) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, iter.common_dtype(), "couple", [&] {
    using Vec = at::vec::Vectorized<scalar_t>;
    const Couple<Sign> op{};
    at::native::cpu_kernel_vec(
        iter, [op](scalar_t a, scalar_t b) -> scalar_t { return op(a, b); },
        [op](Vec a, Vec b) -> Vec { return op(a, b); });
  });
}

template <int Sign>
void couple_fixed_loop(at::TensorIterator& iter, const at::Tensor& f, int64_t frac_bits) {
  const double scale = std::ldexp(1.0, static_cast<int>(frac_bits));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "couple_fixed", [&] {
    const CoupleFixed<Sign> op{scale};
    at::native::cpu_kernel(iter, [op](int64_t q, scalar_t v) -> int64_t { return op(q, v); });
  });
}

void run_couple(at::TensorIterator& iter, int64_t sign) {
  sign > 0 ? couple_loop<1>(iter) : couple_loop<-1>(iter);
}

void run_couple_fixed(at::TensorIterator& iter, const at::Tensor& f, int64_t sign,
                      int64_t frac_bits) {
  sign > 0 ? couple_fixed_loop<1>(iter, f, frac_bits) : couple_fixed_loop<-1>(iter, f, frac_bits);
}

at::Tensor couple_cpu(const at::Tensor& a, const at::Tensor& b, int64_t sign) {
  check_couple(a, b, sign);
  at::Tensor out = at::empty_like(a);
  auto iter = at::TensorIteratorConfig().add_output(out).add_const_input(a).add_const_input(b).build();
  run_couple(iter, sign);
  return out;
}

void couple_inplace_cpu(at::Tensor& a, const at::Tensor& b, int64_t sign) {
  check_couple(a, b, sign);
  auto iter = at::TensorIteratorConfig().add_output(a).add_const_input(a).add_const_input(b).build();
  run_couple(iter, sign);
}

at::TensorIterator fixed_iter(const at::Tensor& out, const at::Tensor& q, const at::Tensor& f) {
  return at::TensorIteratorConfig()
      .check_all_same_dtype(false)
      .add_output(out)
      .add_const_input(q)
      .add_const_input(f)
      .build();
}

at::Tensor couple_fixed_cpu(const at::Tensor& q, const at::Tensor& f, int64_t sign,
                            int64_t frac_bits) {
  check_couple_fixed(q, f, sign, frac_bits);
  at::Tensor out = at::empty_like(q);
  auto iter = fixed_iter(out, q, f);
  run_couple_fixed(iter, f, sign, frac_bits);
  return out;
}

void couple_fixed_inplace_cpu(at::Tensor& q, const at::Tensor& f, int64_t sign,
                              int64_t frac_bits) {
  check_couple_fixed(q, f, sign, frac_bits);
  auto iter = fixed_iter(q, q, f);
  run_couple_fixed(iter, f, sign, frac_bits);
}

at::Tensor quantize_cpu(const at::Tensor& x, int64_t frac_bits) {
  check_quantize(x, frac_bits);
  at::Tensor out = at::empty_like(x, x.options().dtype(at::kLong));
  auto iter = at::TensorIteratorConfig().check_all_same_dtype(false).add_output(out).add_const_input(x).build();
  const Quantize op{std::ldexp(1.0, static_cast<int>(frac_bits))};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "quantize", [&] {
    at::native::cpu_kernel(iter, [op](scalar_t v) -> int64_t { return op(v); });
  });
  return out;
}

at::Tensor dequantize_cpu(const at::Tensor& q, int64_t frac_bits, at::ScalarType dtype) {
  check_dequantize(q, frac_bits, dtype);
  at::Tensor out = at::empty_like(q, q.options().dtype(dtype));
  auto iter = at::TensorIteratorConfig().check_all_same_dtype(false).add_output(out).add_const_input(q).build();
  const double inv_scale = std::ldexp(1.0, -static_cast<int>(frac_bits));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "dequantize", [&] {
    const Dequantize<scalar_t> op{inv_scale};
    at::native::cpu_kernel(iter, [op](int64_t v) -> scalar_t { return op(v); });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(bwsk_rev, m) {
  m.def("couple(Tensor a, Tensor b, int sign) -> Tensor");
  m.def("couple_(Tensor(a!) a, Tensor b, int sign) -> ()");
  m.def("couple_fixed(Tensor q, Tensor f, int sign, int frac_bits) -> Tensor");
  m.def("couple_fixed_(Tensor(a!) q, Tensor f, int sign, int frac_bits) -> ()");
  m.def("quantize(Tensor x, int frac_bits) -> Tensor");
  m.def("dequantize(Tensor q, int frac_bits, ScalarType dtype) -> Tensor");
}

TORCH_LIBRARY_IMPL(bwsk_rev, CPU, m) {
  m.impl("couple", &couple_cpu);
  m.impl("couple_", &couple_inplace_cpu);
  m.impl("couple_fixed", &couple_fixed_cpu);
  m.impl("couple_fixed_", &couple_fixed_inplace_cpu);
  m.impl("quantize", &quantize_cpu);
  m.impl("dequantize", &dequantize_cpu);
}

}  // namespace bwsk::rev

// A Python module with no functions: importing bwsk._rev runs the registrations above.
extern "C" PyObject* PyInit__rev(void) {
  static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_rev", nullptr, -1, nullptr};
  return PyModule_Create(&def);
}
