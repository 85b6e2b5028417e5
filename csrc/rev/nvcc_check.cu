// Compile-only check of the CUDA kernels where no CUDA build of torch exists: instantiates
// every functor/kernel pair rev_cuda.cu uses, for float and double (tests/test_nvcc.py).
#include "rev/kernel.cuh"

namespace bwsk::rev::cuda {

template <typename T>
cudaError_t instantiate_all(T* out, const T* a, const T* b, int64_t* q, int64_t n,
                            cudaStream_t s) {
  const double scale = 16777216.0;
  cudaError_t err = launch_binary(out, a, b, n, Couple<1>{}, s);
  if (err == cudaSuccess) err = launch_binary(out, a, b, n, Couple<-1>{}, s);
  if (err == cudaSuccess) err = launch_binary(q, q, a, n, CoupleFixed<1>{scale}, s);
  if (err == cudaSuccess) err = launch_binary(q, q, a, n, CoupleFixed<-1>{scale}, s);
  if (err == cudaSuccess) err = launch_unary(q, a, n, Quantize{scale}, s);
  if (err == cudaSuccess) err = launch_unary(out, q, n, Dequantize<T>{1.0 / scale}, s);
  return err;
}

template cudaError_t instantiate_all<float>(float*, const float*, const float*, int64_t*,
                                            int64_t, cudaStream_t);
template cudaError_t instantiate_all<double>(double*, const double*, const double*, int64_t*,
                                             int64_t, cudaStream_t);

}  // namespace bwsk::rev::cuda
