// Optimizer kernels of the prefkit native addon (see RegisterOptim).
//
// Exports:
//   adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale)
//     One torch.optim.AdamW step (non-fused, non-amsgrad) over Float32Arrays of equal length,
//     updating param, m and v IN PLACE; grad is only read. Per element, in float32 and in
//     torch's (and prefkit's tfjs path's) order:
//       g = grad * gradScale
//       p *= 1 - lr * weightDecay                      (only when weightDecay != 0)
//       m = beta1 * m + (1 - beta1) * g
//       v = beta2 * v + (1 - beta2) * g * g
//       p -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//     step is the 1-based step count of this variable.
//   sumSquares(a) -> number
//     The sum of a[i]^2 over a Float32Array, accumulated in double (for gradient norms).
//
// Large arrays are split over up to OptimThreads() threads (the pool's, i.e. the engine's
// `threads`): both kernels are memory-bound streams.
#include "gemm/pool.h"
#include "addon.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace prefkit {
namespace {

// Below these many elements per thread a second thread costs more than it saves. Measured here
// (2 cores): starting a thread costs ~50 us; AdamW streams ~0.4 ms per 1M elements on one thread
// and gains from a second one from ~512K elements on; the read-only sum of squares (~0.07 ms per
// 1M) only from ~4M.
constexpr size_t kAdamWMinPerThread = size_t{1} << 18;
constexpr size_t kSumSquaresMinPerThread = size_t{1} << 21;

// Threads for n elements: the pool's (the engine's `threads`), capped by n / minPerThread.
size_t OptimThreads(size_t n, size_t min_per_thread) {
  const size_t threads = static_cast<size_t>(gemm::Threads());
  return std::min(threads, std::max<size_t>(1, n / min_per_thread));
}

// Runs fn(chunk, begin, end) over [0, n) cut into `threads` contiguous chunks on the pool. Chunk
// edges are multiples of 16 elements, so every chunk starts on a cache line.
template <typename Fn>
void ParallelChunks(size_t n, size_t threads, const Fn& fn) {
  if (threads <= 1) {
    fn(size_t{0}, size_t{0}, n);
    return;
  }
  const size_t chunk = ((n + threads - 1) / threads + 15) / 16 * 16;
  gemm::Run(static_cast<int>(threads), [&](int t, int) {
    const size_t begin = std::min(n, static_cast<size_t>(t) * chunk);
    fn(static_cast<size_t>(t), begin, std::min(n, begin + chunk));
  });
}

struct AdamWConstants {
  float grad_scale;
  bool scale_grad;
  float decay;  // 1 - lr * weightDecay
  bool apply_decay;
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps;
  float step_size;  // lr / (1 - beta1^step)
};

// Compiled without -ffast-math's liberties (no FMA contraction, no reciprocal of the invariant
// divisor, no reassociation): every operation rounds to float32 as the tfjs path's kernels do, so
// both paths give bit-identical results (checked on 1M elements over 5 steps). It still vectorizes
// (vsqrtps/vdivps): __builtin_sqrtf, because std::sqrt would not inline across the option change,
// and noinline so the caller's fast-math options never apply to it.
#pragma GCC push_options
#pragma GCC optimize("no-fast-math", "no-math-errno", "no-trapping-math", "fp-contract=off")
__attribute__((noinline)) void AdamWRange(float* __restrict p, const float* __restrict grad,
                                          float* __restrict m, float* __restrict v, const AdamWConstants& k,
                                          size_t begin, size_t end) {
  const float gs = k.grad_scale, decay = k.decay, b1 = k.beta1, omb1 = k.one_minus_beta1, b2 = k.beta2,
              omb2 = k.one_minus_beta2, bc2 = k.bias_correction2_sqrt, eps = k.eps, step_size = k.step_size;
  const bool scale = k.scale_grad, apply_decay = k.apply_decay;
  for (size_t i = begin; i < end; i++) {
    const float g = scale ? grad[i] * gs : grad[i];
    const float mi = b1 * m[i] + omb1 * g;
    const float vi = b2 * v[i] + omb2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    const float denom = __builtin_sqrtf(vi) / bc2 + eps;
    const float pi = apply_decay ? p[i] * decay : p[i];
    p[i] = pi - step_size * (mi / denom);
  }
}

#pragma GCC pop_options

// Eight interleaved partial sums: they vectorize without -ffast-math's reassociation, and they
// accumulate less rounding than one running sum.
double SumSquaresRange(const float* a, size_t begin, size_t end) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    for (int j = 0; j < 8; j++) {
      const double x = a[i + j];
      part[j] += x * x;
    }
  }
  for (; i < end; i++) {
    const double x = a[i];
    part[0] += x * x;
  }
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

bool GetDouble(napi_env env, napi_value value, double* out, const char* message) {
  if (napi_get_value_double(env, value, out) != napi_ok || !std::isfinite(*out)) {
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  return true;
}

bool Overlaps(const void* a, const void* b, size_t bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return bytes > 0 && x < y + bytes && y < x + bytes;
}

napi_value AdamW(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 11) {
    napi_throw_type_error(env, nullptr,
                          "adamw expects 11 arguments (param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, "
                          "gradScale)");
    return nullptr;
  }
  static const char* const kNames[4] = {"param", "grad", "m", "v"};
  static const char* const kTypeErrors[4] = {"adamw: param must be a Float32Array",
                                             "adamw: grad must be a Float32Array", "adamw: m must be a Float32Array",
                                             "adamw: v must be a Float32Array"};
  void* data[4];
  size_t length[4];
  for (int i = 0; i < 4; i++) {
    if (!GetTypedArray(env, argv[i], napi_float32_array, &data[i], &length[i], kTypeErrors[i])) return nullptr;
  }
  for (int i = 1; i < 4; i++) {
    if (length[i] != length[0]) {
      char message[160];
      std::snprintf(message, sizeof(message), "adamw: %s has %zu elements, param has %zu", kNames[i], length[i],
                    length[0]);
      napi_throw_range_error(env, nullptr, message);
      return nullptr;
    }
  }
  // param, m and v are written, so no two arguments may share memory (every pair has a written one).
  const size_t bytes = length[0] * sizeof(float);
  for (int i = 0; i < 4; i++) {
    for (int j = i + 1; j < 4; j++) {
      if (Overlaps(data[i], data[j], bytes)) {
        char message[160];
        std::snprintf(message, sizeof(message), "adamw: %s and %s share memory", kNames[i], kNames[j]);
        napi_throw_range_error(env, nullptr, message);
        return nullptr;
      }
    }
  }
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
  if (!GetDouble(env, argv[4], &lr, "adamw: lr must be a finite number")) return nullptr;
  if (!GetDouble(env, argv[5], &beta1, "adamw: beta1 must be a finite number")) return nullptr;
  if (!GetDouble(env, argv[6], &beta2, "adamw: beta2 must be a finite number")) return nullptr;
  if (!GetDouble(env, argv[7], &eps, "adamw: eps must be a finite number")) return nullptr;
  if (!GetDouble(env, argv[8], &weight_decay, "adamw: weightDecay must be a finite number")) return nullptr;
  int64_t step;
  if (!GetInt(env, argv[9], &step, "adamw: step must be an int32 >= 1")) return nullptr;
  if (step < 1) {
    napi_throw_range_error(env, nullptr, "adamw: step must be an int32 >= 1");
    return nullptr;
  }
  if (!GetDouble(env, argv[10], &grad_scale, "adamw: gradScale must be a finite number")) return nullptr;
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
    napi_throw_range_error(env, nullptr, "adamw: beta1 and beta2 must be in [0, 1)");
    return nullptr;
  }

  // The scalars are rounded to float32 as tfjs rounds its scalar operands, so both paths agree.
  AdamWConstants k;
  k.grad_scale = static_cast<float>(grad_scale);
  k.scale_grad = grad_scale != 1.0;
  k.apply_decay = weight_decay != 0.0;
  k.decay = static_cast<float>(1.0 - lr * weight_decay);
  k.beta1 = static_cast<float>(beta1);
  k.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  k.beta2 = static_cast<float>(beta2);
  k.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  k.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  k.eps = static_cast<float>(eps);
  k.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, static_cast<double>(step))));

  float* p = static_cast<float*>(data[0]);
  const float* g = static_cast<const float*>(data[1]);
  float* m = static_cast<float*>(data[2]);
  float* v = static_cast<float*>(data[3]);
  const size_t n = length[0];
  ParallelChunks(n, OptimThreads(n, kAdamWMinPerThread),
                 [&](size_t, size_t begin, size_t end) { AdamWRange(p, g, m, v, k, begin, end); });
  return nullptr;
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data;
  size_t n;
  if (argc != 1) {
    napi_throw_type_error(env, nullptr, "sumSquares expects 1 argument (a Float32Array)");
    return nullptr;
  }
  if (!GetTypedArray(env, argv[0], napi_float32_array, &data, &n, "sumSquares: a must be a Float32Array"))
    return nullptr;
  const float* a = static_cast<const float*>(data);
  constexpr size_t kMaxThreads = 64;
  const size_t threads = std::min(OptimThreads(n, kSumSquaresMinPerThread), kMaxThreads);
  double partial[kMaxThreads] = {0};
  ParallelChunks(n, threads, [&](size_t t, size_t begin, size_t end) { partial[t] = SumSquaresRange(a, begin, end); });
  double sum = 0;
  for (size_t t = 0; t < threads; t++) sum += partial[t];
  napi_value result;
  CHECK_NAPI(env, napi_create_double(env, sum, &result));
  return result;
}

}  // namespace

bool RegisterOptim(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) {
    napi_throw_error(env, nullptr, "prefkit_native: defining the optimizer exports failed");
    return false;
  }
  return true;
}

}  // namespace prefkit
