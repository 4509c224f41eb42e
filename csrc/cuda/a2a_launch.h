// Launcher of the permute_chunks CUDA kernel (a2a_permute.cu): a torch-free interface (raw
// pointers, sizes in rows and bytes, a stream), so that the kernel compiles with plain nvcc
// and the torch binding (a2a_binding.cpp) with the host compiler.
//
// input and output are contiguous [rows, row_bytes] byte matrices: the op moves bytes, so
// every dtype is the same to it. The chunk plan lists the non-empty output chunks in output
// order: output rows [dst_start[i], dst_start[i] + n_i) are input rows [src_start[i], ...),
// with dst_start strictly increasing from 0 (a row's chunk is the last i with
// dst_start[i] <= row). Both arrays live in device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace recperf::cuda {

// Returns the first CUDA error met (cudaSuccess when none). rows, row_bytes, chunks >= 1.
cudaError_t launch_permute_chunks(const void* input, void* output, int64_t rows,
                                  int64_t row_bytes, const int64_t* dst_start,
                                  const int64_t* src_start, int64_t chunks,
                                  cudaStream_t stream);

}  // namespace recperf::cuda
