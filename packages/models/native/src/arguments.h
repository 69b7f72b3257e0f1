// Reading the fused decoder's N-API arguments into a Context (arguments.cc): the context handle, the
// weights and gradients arrays in the layout's order, int32 inputs, and the LoRA arguments. Each
// returns false with a JavaScript exception pending when an argument does not fit.
#pragma once

#include <node_api.h>

#include <vector>

#include "context.h"

namespace prefkit {
namespace decoder {

// The Context behind a decoderCreate handle.
Context* GetContext(napi_env env, napi_value value);

// An array of Float32Array|null in the layout's order (layout.h), each of its slot's size; `grads`
// allows null anywhere, weights only where the family has no such weight. With `packs`, a projection or
// LM-head weight may be a decoderPackWeight handle of its slot's [rows, cols] instead (its pointer in `out`
// is then null, the pack in `packs`; packs is left empty when there is none). With `embedBf16`, the
// embedding may be a Uint16Array of bf16 bits instead (its pointer in `out`, reinterpreted; *embedBf16 says so).
bool GetWeights(napi_env env, const Dims& d, napi_value array, bool grads, std::vector<float*>* out,
                Packs* packs = nullptr, bool* embedBf16 = nullptr);

// An Int32Array of exactly `want` entries (or, when `nullable`, null/undefined: out is cleared).
bool GetInts(napi_env env, napi_value value, size_t want, std::vector<int>* out, const char* name, bool nullable);

// (loraWeights, loraShape, loraMasks[, loraGrads]) into c.lora for `rows` = batch * seqLen rows;
// loraWeights null means no adapter. grads may be nullptr (the forward pass).
bool GetLora(napi_env env, Context& c, size_t rows, napi_value weights, napi_value shape, napi_value masks,
             napi_value grads);

}  // namespace decoder
}  // namespace prefkit
