// N-API marshalling of the fused decoder (the maths is in decoder.cc and the files it calls). Exports:
//
//   attachEngine(engineAbi) -> undefined: takes @prefkit/core's GEMM and thread pool (its addon's
//     `engineAbi` external, engine.h); throws one line when its version does not fit this build. The
//     other entry points refuse to run before.
//   decoderLayout() -> { global: string[], layer: string[], projections: string[] }: the slot names of
//     layout.h, in the order the weights, grads and LoRA arrays follow.
//   decoderCreate(dims: Float64Array, invFreq: Float32Array) -> context
//     dims = [layers, hidden, heads, kvHeads, headDim, intermediate, vocab, eps, qkvBias, qkNorm,
//             slidingWindow (-1 for none), slidingWindowStartLayer]
//   decoderForward(ctx, weights, ids, mask|null, positions, labels|null, batch, seqLen, save, withStats
//                  [, loraWeights, loraShape, loraMasks]) -> Float32Array
//     [N] (log p(label)) or [N, 4] (log p, mean logit, entropy, argmax == label); with labels null, the
//     final-normed hidden states [N, hidden] (the backward pass then takes d(hidden) as dy)
//   decoderBackward(ctx, weights, dy, grads [, loraWeights, loraShape, loraMasks, loraGrads]) -> undefined
//     writes d(sum dy * out)/dW into every non-null entry of grads (and of loraGrads)
//   decoderProfile(reset) -> { phase: seconds } accumulated since the last reset (profiler.h)
//   decoderSetMode(ctx, compute, checkpointing) -> undefined: the products of the following forward (and
//     its backward): compute "float32" or "bfloat16" (projections, LoRA updates and LM head with operands
//     rounded to bf16, products summed in fp32); checkpointing: keep only each layer's input and recompute
//     the layer in the backward pass. Refused while a forward waits for its backward.
//   decoderPackWeight / decoderRepackWeight / decoderUnpackWeight / decoderPackedInfo: packed weights
//     (packed_weight.h), which a projection or LM-head slot of `weights` may hold instead of a
//     Float32Array; a bf16 pack gives its bits back exactly (the pack as the weight's only storage).
//   decoderInfo() -> { bf16 }: how bf16 products run on core's engine (e.g. "vdpbf16ps (avx512bf16)").
//   decodeCreate, decodeBind, decodePrefill, decodeStep, decodeInfo: the decode step (decode_napi.cc)
//
// `weights` and `grads` follow decoderLayout(): the global slots, then the layer slots once per layer
// (null for a family's absent biases / q-k norms; null grads get no gradient). LoRA (PEFT's
// `y = x W^T + scale * (dropout(x) A^T) B^T`) comes per layer and projection (decoderLayout().projections):
//   loraWeights: [A [r, in], B [out, r]] per layer and projection (nulls for a plain projection)
//   loraShape: Float64Array of [scale, rank] per layer and projection (rank 0: not adapted)
//   loraMasks: the dropout multiplier [N, in] (0 or 1/(1-p)) per layer and projection, or null
//   loraGrads: like loraWeights; null entries get no gradient.
#include <algorithm>
#include <cstring>

#include "arguments.h"
#include "decode_napi.h"
#include "decoder.h"
#include "engine.h"
#include "packed_weight.h"
#include "prefkit/napi_util.h"
#include "profiler.h"

namespace prefkit {
namespace decoder {
namespace {

bool RequireEngine(napi_env env) {
  if (engine::Attached()) return true;
  napi_throw_error(env, nullptr, "decoder: no engine attached (call attachEngine with @prefkit/core's engineAbi)");
  return false;
}

napi_value AttachEngine(napi_env env, napi_callback_info info) {
  static const napi_type_tag kTag = {PREFKIT_ENGINE_ABI_TAG_LOWER, PREFKIT_ENGINE_ABI_TAG_UPPER};
  size_t argc = 1;
  napi_value arg;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr));
  bool tagged = false;
  void* data = nullptr;
  if (argc != 1 || napi_check_object_type_tag(env, arg, &kTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, arg, &data) != napi_ok) {
    napi_throw_type_error(env, nullptr, "attachEngine expects @prefkit/core's engineAbi");
    return nullptr;
  }
  const char* error = nullptr;
  if (!engine::Attach(static_cast<const prefkit_engine_abi*>(data), &error)) napi_throw_error(env, nullptr, error);
  return nullptr;
}

napi_value NameArray(napi_env env, const char* const* names, size_t count) {
  napi_value array;
  CHECK_NAPI(env, napi_create_array_with_length(env, count, &array));
  for (size_t i = 0; i < count; i++) {
    napi_value name;
    CHECK_NAPI(env, napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &name));
    CHECK_NAPI(env, napi_set_element(env, array, static_cast<uint32_t>(i), name));
  }
  return array;
}

napi_value Layout(napi_env env, napi_callback_info) {
  const char* global[layout::kGlobalSlots];
  const char* layer[layout::kLayerSlots];
  const char* projections[layout::kProjections];
  for (int i = 0; i < layout::kGlobalSlots; i++) global[i] = layout::kGlobal[i].name;
  for (int i = 0; i < layout::kLayerSlots; i++) layer[i] = layout::kLayer[i].name;
  for (int i = 0; i < layout::kProjections; i++) projections[i] = layout::kProjection[i].name;
  napi_value result, g, l, p;
  CHECK_NAPI(env, napi_create_object(env, &result));
  if ((g = NameArray(env, global, layout::kGlobalSlots)) == nullptr ||
      (l = NameArray(env, layer, layout::kLayerSlots)) == nullptr ||
      (p = NameArray(env, projections, layout::kProjections)) == nullptr)
    return nullptr;
  CHECK_NAPI(env, napi_set_named_property(env, result, "global", g));
  CHECK_NAPI(env, napi_set_named_property(env, result, "layer", l));
  CHECK_NAPI(env, napi_set_named_property(env, result, "projections", p));
  return result;
}

void Finalize(napi_env, void* data, void*) { delete static_cast<Context*>(data); }

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void *dimsData, *freqData;
  size_t dimsLen, freqLen;
  if (argc != 2 ||
      !GetTypedArray(env, argv[0], napi_float64_array, &dimsData, &dimsLen, "decoderCreate: dims must be a Float64Array") ||
      !GetTypedArray(env, argv[1], napi_float32_array, &freqData, &freqLen, "decoderCreate: invFreq must be a Float32Array"))
    return nullptr;
  if (dimsLen != 12) {
    napi_throw_range_error(env, nullptr, "decoderCreate: dims must have 12 entries");
    return nullptr;
  }
  const double* v = static_cast<const double*>(dimsData);
  Dims d;
  d.layers = static_cast<int>(v[0]);
  d.hidden = static_cast<int>(v[1]);
  d.heads = static_cast<int>(v[2]);
  d.kvHeads = static_cast<int>(v[3]);
  d.headDim = static_cast<int>(v[4]);
  d.inter = static_cast<int>(v[5]);
  d.vocab = static_cast<int>(v[6]);
  d.eps = static_cast<float>(v[7]);
  d.qkvBias = v[8] != 0;
  d.qkNorm = v[9] != 0;
  d.window = static_cast<int>(v[10]);
  d.windowStart = static_cast<int>(v[11]);
  if (d.layers < 0 || d.hidden <= 0 || d.heads <= 0 || d.kvHeads <= 0 || d.heads % d.kvHeads != 0 || d.headDim <= 0 ||
      d.headDim % 2 != 0 || d.inter <= 0 || d.vocab <= 0 || freqLen != static_cast<size_t>(d.headDim / 2)) {
    napi_throw_range_error(env, nullptr, "decoderCreate: inconsistent dims");
    return nullptr;
  }
  auto* c = new Context();
  c->d = d;
  const float* f = static_cast<const float*>(freqData);
  c->invFreq.assign(f, f + freqLen);
  napi_value result;
  if (napi_create_external(env, c, Finalize, nullptr, &result) != napi_ok) {
    delete c;
    napi_throw_error(env, nullptr, "decoderCreate: napi_create_external failed");
    return nullptr;
  }
  return result;
}

// The arguments of a forward or backward call (`plain` of them, or `withLora`) and its context; null
// with an exception pending when they do not fit or no engine is attached.
Context* CallArguments(napi_env env, napi_callback_info info, size_t plain, size_t withLora, const char* usage,
                       napi_value* argv, size_t* argc) {
  *argc = withLora;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, nullptr) != napi_ok || (*argc != plain && *argc != withLora)) {
    napi_throw_type_error(env, nullptr, usage);
    return nullptr;
  }
  return RequireEngine(env) ? GetContext(env, argv[0]) : nullptr;
}

napi_value ForwardJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[13];
  Context* c = CallArguments(env, info, 10, 13, "decoderForward expects 10 arguments, or 13 with LoRA", argv, &argc);
  if (c == nullptr) return nullptr;
  std::vector<float*> wm;
  if (!GetWeights(env, c->d, argv[1], false, &wm, &c->packs, &c->embedBf16)) return nullptr;
  const Weights w(wm.begin(), wm.end());
  int64_t batch, seqLen;
  if (!GetInt(env, argv[6], &batch, "decoderForward: batch must be an int32 >= 0") ||
      !GetInt(env, argv[7], &seqLen, "decoderForward: seqLen must be an int32 >= 0"))
    return nullptr;
  bool save = false, withStats = false;
  CHECK_NAPI(env, napi_get_value_bool(env, argv[8], &save));
  CHECK_NAPI(env, napi_get_value_bool(env, argv[9], &withStats));
  const size_t n = static_cast<size_t>(batch * seqLen);
  std::vector<int> positions;
  if (!GetInts(env, argv[2], n, &c->ids, "decoderForward: ids must be an Int32Array of batch*seqLen", false) ||
      !GetInts(env, argv[3], n, &c->mask, "decoderForward: mask must be an Int32Array of batch*seqLen or null", true) ||
      !GetInts(env, argv[4], n, &positions, "decoderForward: positions must be an Int32Array of batch*seqLen", false) ||
      !GetInts(env, argv[5], n, &c->labels, "decoderForward: labels must be an Int32Array of batch*seqLen or null", true))
    return nullptr;
  napi_valuetype labelsType;
  CHECK_NAPI(env, napi_typeof(env, argv[5], &labelsType));
  c->hiddenMode = labelsType == napi_null || labelsType == napi_undefined;
  for (size_t i = 0; i < n; i++) {
    if (c->ids[i] < 0 || c->ids[i] >= c->d.vocab) {
      napi_throw_range_error(env, nullptr, "decoderForward: a token id is outside [0, vocab)");
      return nullptr;
    }
    if (!c->hiddenMode) c->labels[i] = std::min(std::max(c->labels[i], 0), c->d.vocab - 1);
  }
  if (argc == 13) {
    if (!GetLora(env, *c, n, argv[10], argv[11], argv[12], nullptr)) return nullptr;
  } else {
    c->lora.clear();
  }
  Resize(*c, static_cast<int>(batch), static_cast<int>(seqLen), save);
  RopeTables(*c, positions);
  const size_t width = c->hiddenMode ? static_cast<size_t>(c->d.hidden) : withStats ? 4 : 1;
  void* outData;
  napi_value buffer, result;
  CHECK_NAPI(env, napi_create_arraybuffer(env, n * width * sizeof(float), &outData, &buffer));
  CHECK_NAPI(env, napi_create_typedarray(env, napi_float32_array, n * width, buffer, 0, &result));
  profiler::Clock clock;
  Forward(*c, w, save, withStats, static_cast<float*>(outData));
  return result;
}

napi_value BackwardJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[8];
  Context* c = CallArguments(env, info, 4, 8, "decoderBackward expects 4 arguments, or 8 with LoRA", argv, &argc);
  if (c == nullptr) return nullptr;
  if (!c->saved) {
    napi_throw_error(env, nullptr, "decoderBackward: no saved forward pass (run decoderForward with save = true first)");
    return nullptr;
  }
  std::vector<float*> wm, gm;
  if (!GetWeights(env, c->d, argv[1], false, &wm, &c->packs, &c->embedBf16) || !GetWeights(env, c->d, argv[3], true, &gm))
    return nullptr;
  const Weights w(wm.begin(), wm.end());
  void* dyData;
  size_t dyLen;
  if (!GetTypedArray(env, argv[2], napi_float32_array, &dyData, &dyLen, "decoderBackward: dy must be a Float32Array"))
    return nullptr;
  const size_t rows = static_cast<size_t>(c->batch) * c->seqLen;
  if (dyLen != (c->hiddenMode ? rows * c->d.hidden : rows)) {
    napi_throw_range_error(env, nullptr, "decoderBackward: dy must have batch*seqLen (hidden mode: *hidden) entries");
    return nullptr;
  }
  profiler::Clock clock;
  profiler::Enter(profiler::kBwdElem);
  if (argc == 8) {
    if (!GetLora(env, *c, rows, argv[4], argv[5], argv[6], argv[7])) return nullptr;
  } else {
    c->lora.clear();
  }
  Backward(*c, w, static_cast<const float*>(dyData), gm);
  return nullptr;
}

napi_value Profile(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool reset = false;
  if (argc >= 1) napi_get_value_bool(env, argv[0], &reset);
  napi_value result;
  CHECK_NAPI(env, napi_create_object(env, &result));
  for (int i = 0; i < profiler::kPhases; i++) {
    napi_value v;
    CHECK_NAPI(env, napi_create_double(env, profiler::Seconds(i), &v));
    CHECK_NAPI(env, napi_set_named_property(env, result, profiler::kPhaseNames[i], v));
  }
  if (reset) profiler::Reset();
  return result;
}

napi_value SetMode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Context* c = argc == 3 ? GetContext(env, argv[0]) : nullptr;
  if (c == nullptr) {
    if (argc != 3) napi_throw_type_error(env, nullptr, "decoderSetMode expects (ctx, compute, checkpointing)");
    return nullptr;
  }
  char compute[16];
  size_t len = 0;
  bool checkpoint = false;
  if (napi_get_value_string_utf8(env, argv[1], compute, sizeof(compute), &len) != napi_ok ||
      (std::strcmp(compute, "float32") != 0 && std::strcmp(compute, "bfloat16") != 0) ||
      napi_get_value_bool(env, argv[2], &checkpoint) != napi_ok) {
    napi_throw_type_error(env, nullptr, "decoderSetMode: compute must be float32 or bfloat16, checkpointing a boolean");
    return nullptr;
  }
  if (c->saved) {
    napi_throw_error(env, nullptr, "decoderSetMode: a forward pass is waiting for its backward pass");
    return nullptr;
  }
  c->compute = std::strcmp(compute, "bfloat16") == 0 ? PREFKIT_BF16 : PREFKIT_F32;
  c->checkpoint = checkpoint;
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  if (!RequireEngine(env)) return nullptr;
  napi_value result, bf16;
  CHECK_NAPI(env, napi_create_object(env, &result));
  CHECK_NAPI(env, napi_create_string_utf8(env, engine::Abi().bf16_path(), NAPI_AUTO_LENGTH, &bf16));
  CHECK_NAPI(env, napi_set_named_property(env, result, "bf16", bf16));
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"attachEngine", nullptr, AttachEngine, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderLayout", nullptr, Layout, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderCreate", nullptr, Create, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderForward", nullptr, ForwardJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderBackward", nullptr, BackwardJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderProfile", nullptr, Profile, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderSetMode", nullptr, SetMode, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderPackWeight", nullptr, PackWeight, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderRepackWeight", nullptr, RepackWeight, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderUnpackWeight", nullptr, UnpackWeight, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderPackedInfo", nullptr, PackedInfo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decoderInfo", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  CHECK_NAPI(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  if (!RegisterDecode(env, exports)) return nullptr;
  return exports;
}

}  // namespace
}  // namespace decoder
}  // namespace prefkit

NAPI_MODULE(NODE_GYP_MODULE_NAME, prefkit::decoder::Init)
