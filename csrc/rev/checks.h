// User-facing argument checks shared by the CPU and CUDA kernels. They raise through
// TORCH_CHECK (a Python RuntimeError with this message); bwsk/reversible/ops.py validates
// the common cases first so users see bwsk errors, and these guard direct torch.ops calls.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/isfinite.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace bwsk::rev {

inline void check_sign_bits(int64_t sign, int64_t frac_bits) {
  TORCH_CHECK(sign == 1 || sign == -1, "bwsk_rev: sign must be +1 or -1, got ", sign);
  TORCH_CHECK(frac_bits >= 0 && frac_bits <= 52, "bwsk_rev: frac_bits must be in [0, 52], got ",
              frac_bits);
}

inline void check_same_layout(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "bwsk_rev: shapes differ: ", a.sizes(), " vs ", b.sizes());
  TORCH_CHECK(a.device() == b.device(), "bwsk_rev: devices differ: ", a.device(), " vs ",
              b.device());
  TORCH_CHECK(at::isFloatingType(b.scalar_type()), "bwsk_rev: expected a floating tensor, got ",
              b.scalar_type());
}

inline void check_couple(const at::Tensor& a, const at::Tensor& b, int64_t sign) {
  check_sign_bits(sign, 0);
  check_same_layout(a, b);
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "bwsk_rev: dtypes differ: ", a.scalar_type(),
              " vs ", b.scalar_type());
}

inline void check_couple_fixed(const at::Tensor& q, const at::Tensor& f, int64_t sign,
                               int64_t frac_bits) {
  check_sign_bits(sign, frac_bits);
  check_same_layout(q, f);
  TORCH_CHECK(q.scalar_type() == at::kLong, "bwsk_rev: fixed-point stream must be int64, got ",
              q.scalar_type());
}

// Values beyond 2^(62 - frac_bits) or non-finite would overflow int64 (undefined in C++).
inline void check_quantize(const at::Tensor& x, int64_t frac_bits) {
  check_sign_bits(1, frac_bits);
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "bwsk_rev: quantize expects a floating tensor");
  if (x.numel() == 0) return;
  const double limit = std::ldexp(1.0, static_cast<int>(62 - frac_bits));
  TORCH_CHECK(at::isfinite(x).all().item<bool>(), "bwsk_rev: cannot quantize non-finite values");
  TORCH_CHECK(at::abs(x).max().item<double>() < limit, "bwsk_rev: |x| >= 2^",
              62 - frac_bits, " overflows the int64 fixed-point range");
}

inline void check_dequantize(const at::Tensor& q, int64_t frac_bits, at::ScalarType dtype) {
  check_sign_bits(1, frac_bits);
  TORCH_CHECK(q.scalar_type() == at::kLong, "bwsk_rev: dequantize expects int64, got ",
              q.scalar_type());
  TORCH_CHECK(at::isFloatingType(dtype), "bwsk_rev: dequantize target must be floating, got ",
              dtype);
}

}  // namespace bwsk::rev
