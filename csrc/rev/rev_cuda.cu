// CUDA implementations of the bwsk_rev operators (built only against a CUDA build of torch).
// Same functors as the CPU kernels (coupling.h), launched on torch's current stream.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>

#include "rev/checks.h"
#include "rev/kernel.cuh"

namespace bwsk::rev {
namespace {

// Writes op(a, b) into `out` (which may be `a` itself); non-contiguous outputs go via a copy.
template <typename Launch>
void write_into(at::Tensor& out, Launch launch) {
  const c10::cuda::CUDAGuard guard(out.device());
  at::Tensor dst = out.is_contiguous() ? out : at::empty_like(out, at::MemoryFormat::Contiguous);
  C10_CUDA_CHECK(launch(dst, c10::cuda::getCurrentCUDAStream()));
  if (!dst.is_same(out)) out.copy_(dst);
}

void couple_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, int64_t sign) {
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "couple_cuda", [&] {
    write_into(out, [&](at::Tensor& dst, cudaStream_t s) {
      auto* o = dst.data_ptr<scalar_t>();
      const auto* pa = ac.const_data_ptr<scalar_t>();
      const auto* pb = bc.const_data_ptr<scalar_t>();
      return sign > 0 ? cuda::launch_binary(o, pa, pb, a.numel(), Couple<1>{}, s)
                      : cuda::launch_binary(o, pa, pb, a.numel(), Couple<-1>{}, s);
    });
  });
}

void couple_fixed_into(at::Tensor& out, const at::Tensor& q, const at::Tensor& f, int64_t sign,
                       int64_t frac_bits) {
  const at::Tensor qc = q.contiguous(), fc = f.contiguous();
  const double scale = std::ldexp(1.0, static_cast<int>(frac_bits));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "couple_fixed_cuda", [&] {
    write_into(out, [&](at::Tensor& dst, cudaStream_t s) {
      auto* o = dst.data_ptr<int64_t>();
      const auto* pq = qc.const_data_ptr<int64_t>();
      const auto* pf = fc.const_data_ptr<scalar_t>();
      return sign > 0 ? cuda::launch_binary(o, pq, pf, q.numel(), CoupleFixed<1>{scale}, s)
                      : cuda::launch_binary(o, pq, pf, q.numel(), CoupleFixed<-1>{scale}, s);
    });
  });
}

at::Tensor couple_cuda(const at::Tensor& a, const at::Tensor& b, int64_t sign) {
  check_couple(a, b, sign);
  at::Tensor out = at::empty_like(a);
  couple_into(out, a, b, sign);
  return out;
}

void couple_inplace_cuda(at::Tensor& a, const at::Tensor& b, int64_t sign) {
  check_couple(a, b, sign);
  couple_into(a, a, b, sign);
}

at::Tensor couple_fixed_cuda(const at::Tensor& q, const at::Tensor& f, int64_t sign,
                             int64_t frac_bits) {
  check_couple_fixed(q, f, sign, frac_bits);
  at::Tensor out = at::empty_like(q);
  couple_fixed_into(out, q, f, sign, frac_bits);
  return out;
}

void couple_fixed_inplace_cuda(at::Tensor& q, const at::Tensor& f, int64_t sign,
                               int64_t frac_bits) {
  check_couple_fixed(q, f, sign, frac_bits);
  couple_fixed_into(q, q, f, sign, frac_bits);
}

at::Tensor quantize_cuda(const at::Tensor& x, int64_t frac_bits) {
  check_quantize(x, frac_bits);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty_like(xc, xc.options().dtype(at::kLong));
  const Quantize op{std::ldexp(1.0, static_cast<int>(frac_bits))};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "quantize_cuda", [&] {
    write_into(out, [&](at::Tensor& dst, cudaStream_t s) {
      return cuda::launch_unary(dst.data_ptr<int64_t>(), xc.const_data_ptr<scalar_t>(),
                                x.numel(), op, s);
    });
  });
  return out;
}

at::Tensor dequantize_cuda(const at::Tensor& q, int64_t frac_bits, at::ScalarType dtype) {
  check_dequantize(q, frac_bits, dtype);
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty_like(qc, qc.options().dtype(dtype));
  const double inv_scale = std::ldexp(1.0, -static_cast<int>(frac_bits));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "dequantize_cuda", [&] {
    write_into(out, [&](at::Tensor& dst, cudaStream_t s) {
      return cuda::launch_unary(dst.data_ptr<scalar_t>(), qc.const_data_ptr<int64_t>(),
                                q.numel(), Dequantize<scalar_t>{inv_scale}, s);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(bwsk_rev, CUDA, m) {
  m.impl("couple", &couple_cuda);
  m.impl("couple_", &couple_inplace_cuda);
  m.impl("couple_fixed", &couple_fixed_cuda);
  m.impl("couple_fixed_", &couple_fixed_inplace_cuda);
  m.impl("quantize", &quantize_cuda);
  m.impl("dequantize", &dequantize_cuda);
}

}  // namespace bwsk::rev
