// Elementwise CUDA kernels over the coupling functors of coupling.h.
//
// Needs only the CUDA runtime, so nvcc can compile it on machines whose torch has no CUDA
// headers (tests/test_nvcc.py does, via nvcc_check.cu); rev_cuda.cu wraps it for torch.
// Launches go on the caller's stream.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "rev/coupling.h"

namespace bwsk::rev::cuda {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

template <typename Out, typename A, typename B, typename Op>
__global__ void binary_kernel(Out* out, const A* a, const B* b, int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = op(a[i], b[i]);
  }
}

template <typename Out, typename A, typename Op>
__global__ void unary_kernel(Out* out, const A* a, int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = op(a[i]);
  }
}

inline unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

// out[i] = op(a[i], b[i]) over contiguous buffers; out may alias a (in-place coupling).
template <typename Out, typename A, typename B, typename Op>
cudaError_t launch_binary(Out* out, const A* a, const B* b, int64_t n, Op op,
                          cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  binary_kernel<<<grid_for(n), kThreads, 0, stream>>>(out, a, b, n, op);
  return cudaGetLastError();
}

template <typename Out, typename A, typename Op>
cudaError_t launch_unary(Out* out, const A* a, int64_t n, Op op, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  unary_kernel<<<grid_for(n), kThreads, 0, stream>>>(out, a, n, op);
  return cudaGetLastError();
}

}  // namespace bwsk::rev::cuda
