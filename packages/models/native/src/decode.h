// The native decode step (decode.cc): prefill with the fused forward, then one call per generated token
// for the whole model (embedding, every layer over its KV cache, the final norm, the LM head), on the
// fused decoder's weights in place, its layout (layout.h) and its LoRA adapters (unmerged). Projections
// read each weight once per token for every row (the engine ABI's gemv), split by rows over the pool;
// packed 16-bit weights run the engine's packed GEMM.
#pragma once

#include <cstdint>
#include <vector>

#include "context.h"
#include "kv_cache.h"
#include "prefkit/engine_abi.h"

namespace prefkit {
namespace decoder {

struct DecodeSession {
  // The fused forward's context (prefill): dims, rope frequencies, inputs, and the bound LoRA adapters
  // (c.lora, without dropout masks), packs (c.packs) and bf16 embedding flag (c.embedBf16), which the
  // step reads too.
  Context prefill;
  Weights w;  // the bound weights, in the layout's order
  KvCache cache;
  int batch = 0;
  // One step's activations [batch, ...] and scratch, reused from step to step.
  std::vector<float> x, xn, rms, q, k, v, ctx, o, gate, up, low, scores, hidden;
};

// Runs the left-padded prompts in s.prefill (ids, mask, batch x seqLen, set by the caller) with the fused
// forward at `positions`, fills the cache (sized for `capacity` columns), and writes each row's next-token
// logits [batch, vocab]. False with a one-line reason when the mask is not left padding.
bool Prefill(DecodeSession& s, int batch, int seqLen, int capacity, const std::vector<int>& positions, float* logits,
             const char** error);

// Runs one token per row (`ids` [batch]) at rotary `positions` [batch] over the cache, appends its keys
// and values, and writes the logits [batch, vocab]. False when the cache is full.
bool Step(DecodeSession& s, const int* ids, const std::vector<int>& positions, float* logits, const char** error);

}  // namespace decoder
}  // namespace prefkit
