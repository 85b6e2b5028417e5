// The coupling arithmetic of a reversible block, written once for every device.
//
// An additive coupling y = x + f(other stream) is undone by x = y - f, and its gradient
// is accumulated as dx = dy + vjp: all three are `a + sign * b` elementwise. The functors
// below are the single definition used by the CPU kernels (on scalars and on at::vec
// vectors) and by the CUDA kernels (on device scalars). No torch or CUDA headers here.
//
// Exact mode carries the streams as int64 fixed point with `frac_bits` fractional bits
// (value = q * 2^-frac_bits). Integer addition is associative and exact, so the inverse
// subtracts precisely what the forward added and reconstruction is bit-identical, whatever
// precision f was computed in. Rounding is to nearest, ties to even (llrint), on host and
// device alike.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define BWSK_HD __host__ __device__ __forceinline__
#else
#define BWSK_HD inline
#endif

namespace bwsk::rev {

// Default fixed-point scale: step 2^-24 (about 6e-8); entry values must be below 2^38 in
// magnitude (checked), leaving headroom for the additions. With 24 fractional
// bits a float32 value round-trips through quantize/dequantize within half a step.
constexpr int kDefaultFracBits = 24;

// out = a + b (Sign > 0) or a - b (Sign < 0). V is a scalar or an at::vec::Vectorized.
template <int Sign>
struct Couple {
  template <typename V>
  BWSK_HD V operator()(const V& a, const V& b) const {
    if constexpr (Sign > 0) {
      return a + b;
    } else {
      return a - b;
    }
  }
};

// q + Sign * round(f * 2^frac_bits), all in int64.
template <int Sign>
struct CoupleFixed {
  double scale;  // 2^frac_bits
  template <typename T>
  BWSK_HD int64_t operator()(int64_t q, T f) const {
    const int64_t step = static_cast<int64_t>(llrint(static_cast<double>(f) * scale));
    if constexpr (Sign > 0) {
      return q + step;
    } else {
      return q - step;
    }
  }
};

// Entry to the fixed-point domain: round(x * 2^frac_bits).
struct Quantize {
  double scale;
  template <typename T>
  BWSK_HD int64_t operator()(T x) const {
    return static_cast<int64_t>(llrint(static_cast<double>(x) * scale));
  }
};

// Exit: q * 2^-frac_bits, computed in double then rounded once to the target type.
template <typename T>
struct Dequantize {
  double inv_scale;
  BWSK_HD T operator()(int64_t q) const {
    return static_cast<T>(static_cast<double>(q) * inv_scale);
  }
};

}  // namespace bwsk::rev
