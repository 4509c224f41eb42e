// Launchers of the FM CUDA kernels: a torch-free interface (raw pointers, sizes, strides in
// elements, a stream), so that the kernels (fm_pairwise.cu, fm_projected.cu) compile with
// plain nvcc and the torch binding (fm_binding.cpp) with the host compiler.
//
// Shapes: x [B, n, d], proj [n, k]. x and grad may be strided; every output is contiguous.
// proj, weight and bias are fp32 and contiguous (the binding converts them). Partial
// workspaces are fp32, zero-filled by the caller, and summed over their first dimension by
// the caller (a fixed grid, so the result is deterministic on a given device).
// Every launcher returns the first CUDA error it met (cudaSuccess when none); shapes
// beyond the kernels' limits are reported by the plan_* functions before anything runs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace recperf::cuda {

enum class DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// A strided tensor of up to three dimensions (unused strides are 0).
struct Strided {
  const void* data;
  int64_t s0, s1, s2;
};

// Which projected op a plan is for.
enum class FmProjectedOp : int { kFwd = 0, kBwd = 1, kNormFwd = 2, kNormBwd = 3 };

// What a launch needs, worked out on the host before any kernel runs.
struct FmPlan {
  bool fits = false;           // false: the shape is beyond the kernels (see below)
  const char* limit = "";      // what was exceeded, e.g. "bytes of shared memory per block"
  int64_t needed = 0;          // how much of it the shape needs ...
  int64_t available = 0;       // ... and how much the device (or the kernel) allows
  int kt = 0;                  // forward: columns of proj per block (1 <= kt <= k)
  int kt_bwd = 0;              // backward: columns of proj per step
  bool fused_norm = false;     // norm forward: the whole n*k row in one block
  int64_t partial_rows = 0;    // backward: rows of the grad_proj / grad_weight partials
  int64_t smem_fwd = 0;        // bytes of dynamic shared memory of the forward kernel
  int64_t smem_bwd = 0;        // ... and of the backward kernel
};

// fm_pairwise: out [B, pairs] in torch.triu_indices(n, n, include_self ? 0 : 1) order.
cudaError_t plan_fm_pairwise(int64_t B, int64_t n, int64_t d, bool backward, FmPlan* plan);

// out: [B, pairs], x's dtype.
cudaError_t launch_fm_pairwise_fwd(Strided x, int64_t B, int64_t n, int64_t d,
                                   bool include_self, void* out, DType dtype,
                                   cudaStream_t stream);

// grad: [B, pairs] (s0, s1); grad_x: [B, n, d], x's dtype.
cudaError_t launch_fm_pairwise_bwd(Strided grad, Strided x, int64_t B, int64_t n, int64_t d,
                                   bool include_self, void* grad_x, DType dtype,
                                   cudaStream_t stream);

// fm_projected and fm_projected_norm.
cudaError_t plan_fm_projected(int64_t B, int64_t n, int64_t d, int64_t k, FmProjectedOp op,
                              FmPlan* plan);

// out: [B, n, k], x's dtype.
cudaError_t launch_fm_projected_fwd(const FmPlan& plan, Strided x, const float* proj,
                                    int64_t B, int64_t n, int64_t d, int64_t k, void* out,
                                    DType dtype, cudaStream_t stream);

// grad: [B, n, k] (s0, s1, s2), x's dtype; grad_x: [B, n, d], x's dtype;
// grad_proj_partials: [plan.partial_rows, n * k] fp32, zero-filled.
cudaError_t launch_fm_projected_bwd(const FmPlan& plan, Strided grad, Strided x,
                                    const float* proj, int64_t B, int64_t n, int64_t d,
                                    int64_t k, void* grad_x, float* grad_proj_partials,
                                    DType dtype, cudaStream_t stream);

// weight, bias: [n * k] or null; out: [B, n * k], x's dtype;
// f_workspace: [B, n * k] fp32 when !plan.fused_norm, else unused (may be null).
cudaError_t launch_fm_projected_norm_fwd(const FmPlan& plan, Strided x, const float* proj,
                                         const float* weight, const float* bias, double eps,
                                         int64_t B, int64_t n, int64_t d, int64_t k,
                                         void* out, float* f_workspace, DType dtype,
                                         cudaStream_t stream);

// grad: [B, n * k] (s0, s1), x's dtype; weight: [n * k] or null; grad_x: [B, n, d];
// f_workspace: [B, n * k] fp32 (scratch); grad_proj_partials: [plan.partial_rows, n * k]
// fp32, zero-filled; grad_weight_partials: the same shape, or null when weight is absent.
// grad_bias is the caller's sum of grad over the batch.
cudaError_t launch_fm_projected_norm_bwd(const FmPlan& plan, Strided grad, Strided x,
                                         const float* proj, const float* weight, double eps,
                                         int64_t B, int64_t n, int64_t d, int64_t k,
                                         void* grad_x, float* f_workspace,
                                         float* grad_proj_partials,
                                         float* grad_weight_partials, DType dtype,
                                         cudaStream_t stream);

}  // namespace recperf::cuda
