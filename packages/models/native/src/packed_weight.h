// A frozen (or per-step) weight packed once for core's GEMM through the engine ABI: 16-bit weights (bf16,
// or fp16 widened exactly at pack time) and, under bf16 compute, fp32 ones rounded to bf16. One pack
// serves both products of a projection (y = x·Wᵀ and, used transposed, dx = dy·W), so the fused decoder
// never needs the weight in another layout. The TypeScript side keeps one per weight and repacks it in
// place when a trainable weight changed (packages/models/src/modeling/native/packs.ts).
#pragma once

#include <node_api.h>

#include <cstdint>

#include "prefkit/engine_abi.h"

namespace prefkit {
namespace decoder {

// Element types of a weight's source array.
enum class WeightDtype : int32_t { kFloat32 = 0, kBfloat16 = 1, kFloat16 = 2 };

struct PackedWeight {
  prefkit_packed_b* packed = nullptr;
  const void* source = nullptr;  // the array it was last packed from (identifies a tied head)
  int rows = 0, cols = 0;        // the weight is [rows, cols] = [out, in]
  int32_t compute = PREFKIT_F32;
  WeightDtype dtype = WeightDtype::kFloat32;
  int64_t bytes = 0;
};

// The PackedWeight behind `value` when it is a decoderPackWeight handle, else null (nothing thrown).
const PackedWeight* AsPackedWeight(napi_env env, napi_value value);

// decoderPackWeight(data, rows, cols, dtype, compute) -> handle
//   data: Float32Array ("float32") or Uint16Array ("bfloat16" | "float16") of rows*cols, row-major [out, in];
//   compute: "float32" (fp32 products: a bf16 pack widened per block, an fp16 one as fp32 panels) or
//   "bfloat16" (bf16 products; fp32 and fp16 values rounded to bf16, nearest even).
napi_value PackWeight(napi_env env, napi_callback_info info);
// decoderRepackWeight(handle, data): packs new values (same shape and dtype) into the same memory.
napi_value RepackWeight(napi_env env, napi_callback_info info);
// decoderUnpackWeight(handle) -> Uint16Array: a bf16 weight's bits back from its pack (exact), row-major
// [out, in], so that the module that stored them may drop its copy while the pack lives.
napi_value UnpackWeight(napi_env env, napi_callback_info info);
// decoderPackedInfo(handle) -> { rows, cols, bytes, compute, dtype }
napi_value PackedInfo(napi_env env, napi_callback_info info);

}  // namespace decoder
}  // namespace prefkit
