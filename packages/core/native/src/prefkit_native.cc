// prefkit native kernels: sgemm on Float32Arrays through the N-API C interface, on prefkit's own GEMM
// (gemm/; or OpenBLAS, loaded at run time, with PREFKIT_BLAS=openblas).
//
// Exports:
//   sgemm(transA, transB, m, n, k, a, aOffsets, b, bOffsets, c)
//     For every batch i < aOffsets.length, C_i = op(A_i) * op(B_i), row-major, where
//     A_i starts at a[aOffsets[i]] (stored [m,k], or [k,m] when transA), B_i starts at
//     b[bOffsets[i]] (stored [k,n], or [n,k] when transB) and C_i is c[i*m*n .. (i+1)*m*n).
//     Offsets are Float64Arrays of element indices. Every range is bounds-checked.
//     Small entries run side by side on the pool's threads, large ones each on all of them.
//   setNumThreads(n), getNumThreads() (the pool's threads: GEMMs and the elementwise loops), config()
//   (a one-line description of the GEMM that runs), the GEMM's own exports (gemm/gemm_napi.cc),
//   AdamW and the gradient norm (optim.cc), and engineAbi: the GEMM and the pool for other addons, such
//   as @prefkit/models' fused decoder (engine_abi.cc, include/prefkit/engine_abi.h).
#include <node_api.h>

#include "gemm/gemm.h"
#include "addon.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace {
namespace gemm = prefkit::gemm;
using prefkit::GetInt;
using prefkit::GetTypedArray;

napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10) {
    napi_throw_type_error(env, nullptr, "sgemm expects 10 arguments");
    return nullptr;
  }
  bool trans_a = false, trans_b = false;
  CHECK_NAPI(env, napi_get_value_bool(env, argv[0], &trans_a));
  CHECK_NAPI(env, napi_get_value_bool(env, argv[1], &trans_b));
  int64_t m, n, k;
  if (!GetInt(env, argv[2], &m, "sgemm: m must be an int32 >= 0")) return nullptr;
  if (!GetInt(env, argv[3], &n, "sgemm: n must be an int32 >= 0")) return nullptr;
  if (!GetInt(env, argv[4], &k, "sgemm: k must be an int32 >= 0")) return nullptr;
  void *a_data, *a_off_data, *b_data, *b_off_data, *c_data;
  size_t a_len, a_off_len, b_len, b_off_len, c_len;
  if (!GetTypedArray(env, argv[5], napi_float32_array, &a_data, &a_len, "sgemm: a must be a Float32Array")) return nullptr;
  if (!GetTypedArray(env, argv[6], napi_float64_array, &a_off_data, &a_off_len, "sgemm: aOffsets must be a Float64Array"))
    return nullptr;
  if (!GetTypedArray(env, argv[7], napi_float32_array, &b_data, &b_len, "sgemm: b must be a Float32Array")) return nullptr;
  if (!GetTypedArray(env, argv[8], napi_float64_array, &b_off_data, &b_off_len, "sgemm: bOffsets must be a Float64Array"))
    return nullptr;
  if (!GetTypedArray(env, argv[9], napi_float32_array, &c_data, &c_len, "sgemm: c must be a Float32Array")) return nullptr;
  if (a_off_len != b_off_len) {
    napi_throw_range_error(env, nullptr, "sgemm: aOffsets and bOffsets differ in length");
    return nullptr;
  }
  const size_t batch = a_off_len;
  const double mn = static_cast<double>(m) * static_cast<double>(n);
  const double mk = static_cast<double>(m) * static_cast<double>(k);
  const double kn = static_cast<double>(k) * static_cast<double>(n);
  if (static_cast<double>(batch) * mn > static_cast<double>(c_len)) {
    napi_throw_range_error(env, nullptr, "sgemm: c is too short for batch*m*n");
    return nullptr;
  }
  const double* a_off = static_cast<const double*>(a_off_data);
  const double* b_off = static_cast<const double*>(b_off_data);
  for (size_t i = 0; i < batch; i++) {
    if (!(a_off[i] >= 0 && a_off[i] + mk <= static_cast<double>(a_len) && a_off[i] == static_cast<double>(static_cast<int64_t>(a_off[i])))) {
      napi_throw_range_error(env, nullptr, "sgemm: an a offset is out of range");
      return nullptr;
    }
    if (!(b_off[i] >= 0 && b_off[i] + kn <= static_cast<double>(b_len) && b_off[i] == static_cast<double>(static_cast<int64_t>(b_off[i])))) {
      napi_throw_range_error(env, nullptr, "sgemm: a b offset is out of range");
      return nullptr;
    }
  }
  const float* a = static_cast<const float*>(a_data);
  const float* b = static_cast<const float*>(b_data);
  float* c = static_cast<float*>(c_data);
  if (batch == 0 || m == 0 || n == 0) return nullptr;
  gemm::Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = {a, gemm::Type::kF32, trans_a, trans_a ? m : k};
  p.b = {b, gemm::Type::kF32, trans_b, trans_b ? k : n};
  p.c = c;
  p.ldc = n;
  std::vector<int64_t> offsets(batch * 3);
  for (size_t i = 0; i < batch; i++) {
    offsets[i] = static_cast<int64_t>(a_off[i]);
    offsets[batch + i] = static_cast<int64_t>(b_off[i]);
    offsets[2 * batch + i] = static_cast<int64_t>(i * m * n);
  }
  gemm::GemmBatched(p, static_cast<int64_t>(batch), offsets.data(), offsets.data() + batch,
                    offsets.data() + 2 * batch);
  return nullptr;
}

napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int64_t threads = 0;
  if (argc != 1 || !GetInt(env, argv[0], &threads, "setNumThreads: threads must be an int32 >= 1")) return nullptr;
  if (threads < 1) {
    napi_throw_range_error(env, nullptr, "setNumThreads: threads must be >= 1");
    return nullptr;
  }
  gemm::SetNumThreads(static_cast<int>(threads));
  return nullptr;
}

napi_value GetNumThreads(napi_env env, napi_callback_info) {
  napi_value result;
  CHECK_NAPI(env, napi_create_int32(env, gemm::Threads(), &result));
  return result;
}

napi_value Config(napi_env env, napi_callback_info) {
  napi_value result;
  CHECK_NAPI(env, napi_create_string_utf8(env, gemm::Describe(), NAPI_AUTO_LENGTH, &result));
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  // First: it reads PREFKIT_ISA and PREFKIT_BLAS, and the addon refuses to load when they cannot be met.
  if (!prefkit::RegisterGemm(env, exports)) return nullptr;
  napi_property_descriptor props[] = {
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setNumThreads", nullptr, SetNumThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"getNumThreads", nullptr, GetNumThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"config", nullptr, Config, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  CHECK_NAPI(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  if (!prefkit::RegisterOptim(env, exports) || !prefkit::RegisterEngineAbi(env, exports)) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
