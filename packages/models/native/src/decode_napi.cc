// N-API marshalling of the decode step (the maths is in decode.cc). Exports:
//
//   decodeCreate(ctx) -> session: a decode session for the model of a decoderCreate context (its dims and
//     rope frequencies); it keeps its KV cache and scratch from call to call, growing them as needed.
//   decodeBind(session, weights [, loraWeights, loraShape]) -> undefined: the weights (decoderLayout()'s
//     order, as decoderForward takes them: Float32Arrays, decoderPackWeight handles packed for "float32"
//     products in projection and LM-head slots, the embedding as a Uint16Array of bf16 bits) and LoRA
//     adapters the next prefill and steps run on, read in place: the caller keeps the arrays and packs
//     alive and unchanged in size until it binds others.
//   decodePrefill(session, ids, mask|null, positions, batch, seqLen, capacity, logits) -> undefined:
//     the left-padded prompts [batch, seqLen] (Int32Arrays; mask 1 real, 0 padding) through the fused
//     forward, filling a cache of `capacity` columns; logits [batch, vocab] of each row's last position.
//   decodeStep(session, ids, positions, logits) -> undefined: one token per row (Int32Array [batch]) at
//     rotary positions [batch], appended to the cache; logits [batch, vocab].
//   decodeInfo(session) -> { batch, columns, capacity, cacheBytes }
#include "decode_napi.h"

#include <cstdio>
#include <utility>

#include "arguments.h"
#include "decode.h"
#include "engine.h"
#include "prefkit/napi_util.h"

namespace prefkit {
namespace decoder {
namespace {

// Type tag of decodeCreate's externals ("prefkitD", "ecodeSes").
const napi_type_tag kSessionTag = {0x707265666b697444ull, 0x65636f6465536573ull};

void Finalize(napi_env, void* data, void*) { delete static_cast<DecodeSession*>(data); }

// The session behind a decodeCreate handle (a JavaScript exception pending when it is not one).
DecodeSession* GetSession(napi_env env, napi_value value) {
  bool tagged = false;
  void* data = nullptr;
  if (napi_check_object_type_tag(env, value, &kSessionTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "decode: the first argument must be a decodeCreate session");
    return nullptr;
  }
  return static_cast<DecodeSession*>(data);
}

// The call's arguments (between `least` and `most` of them) and its session, once an engine is attached.
DecodeSession* Arguments(napi_env env, napi_callback_info info, size_t least, size_t most, napi_value* argv,
                         size_t* argc, const char* usage) {
  *argc = most;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, nullptr) != napi_ok || *argc < least || *argc > most) {
    napi_throw_type_error(env, nullptr, usage);
    return nullptr;
  }
  if (!engine::Attached()) {
    napi_throw_error(env, nullptr, "decoder: no engine attached (call attachEngine with @prefkit/core's engineAbi)");
    return nullptr;
  }
  return GetSession(env, argv[0]);
}

bool GetLogits(napi_env env, napi_value value, const DecodeSession& s, float** out) {
  void* data;
  size_t length;
  if (!GetTypedArray(env, value, napi_float32_array, &data, &length, "decode: logits must be a Float32Array"))
    return false;
  if (length < static_cast<size_t>(s.batch) * s.prefill.d.vocab) {
    napi_throw_range_error(env, nullptr, "decode: logits must hold batch * vocab floats");
    return false;
  }
  *out = static_cast<float*>(data);
  return true;
}

bool CheckIds(napi_env env, const std::vector<int>& ids, int vocab, const char* message) {
  for (const int id : ids) {
    if (id < 0 || id >= vocab) {
      napi_throw_range_error(env, nullptr, message);
      return false;
    }
  }
  return true;
}

napi_value CreateJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr));
  if (argc != 1) {
    napi_throw_type_error(env, nullptr, "decodeCreate expects a decoderCreate context");
    return nullptr;
  }
  const Context* model = GetContext(env, arg);
  if (model == nullptr) return nullptr;
  auto* s = new DecodeSession();
  s->prefill.d = model->d;
  s->prefill.invFreq = model->invFreq;
  napi_value result;
  if (napi_create_external(env, s, Finalize, nullptr, &result) != napi_ok ||
      napi_type_tag_object(env, result, &kSessionTag) != napi_ok) {
    napi_throw_error(env, nullptr, "decodeCreate: napi_create_external failed");
    return nullptr;
  }
  return result;
}

napi_value BindJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[4];
  DecodeSession* s = Arguments(env, info, 2, 4, argv, &argc, "decodeBind expects (session, weights[, loraWeights, loraShape])");
  if (s == nullptr) return nullptr;
  std::vector<float*> weights;
  Packs packs;
  bool embedBf16 = false;
  if (!GetWeights(env, s->prefill.d, argv[1], false, &weights, &packs, &embedBf16)) return nullptr;
  for (const PackedWeight* pack : packs) {
    if (pack != nullptr && pack->compute != PREFKIT_F32) {
      napi_throw_range_error(env, nullptr, "decodeBind: a packed weight must be packed for float32 products");
      return nullptr;
    }
  }
  napi_value none;
  CHECK_NAPI(env, napi_get_null(env, &none));
  // No dropout masks: generation runs the adapters as in eval mode.
  if (!GetLora(env, s->prefill, 0, argc > 2 ? argv[2] : none, argc > 3 ? argv[3] : none, none, nullptr)) {
    s->w.clear();
    s->prefill.packs.clear();
    return nullptr;
  }
  s->w.assign(weights.begin(), weights.end());
  s->prefill.packs = std::move(packs);
  s->prefill.embedBf16 = embedBf16;
  return nullptr;
}

napi_value PrefillJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[8];
  DecodeSession* s = Arguments(env, info, 8, 8, argv, &argc,
                               "decodePrefill expects (session, ids, mask, positions, batch, seqLen, capacity, logits)");
  if (s == nullptr) return nullptr;
  if (s->w.empty()) {
    napi_throw_error(env, nullptr, "decodePrefill: no weights bound (call decodeBind first)");
    return nullptr;
  }
  int64_t batch, seqLen, capacity;
  if (!GetInt(env, argv[4], &batch, "decodePrefill: batch must be an int32 >= 0") ||
      !GetInt(env, argv[5], &seqLen, "decodePrefill: seqLen must be an int32 >= 0") ||
      !GetInt(env, argv[6], &capacity, "decodePrefill: capacity must be an int32 >= 0"))
    return nullptr;
  if (batch <= 0) {
    napi_throw_range_error(env, nullptr, "decodePrefill: batch must be > 0");
    return nullptr;
  }
  Context& c = s->prefill;
  const size_t n = static_cast<size_t>(batch * seqLen);
  std::vector<int> positions;
  if (!GetInts(env, argv[1], n, &c.ids, "decodePrefill: ids must be an Int32Array of batch*seqLen", false) ||
      !GetInts(env, argv[2], n, &c.mask, "decodePrefill: mask must be an Int32Array of batch*seqLen or null", true) ||
      !GetInts(env, argv[3], n, &positions, "decodePrefill: positions must be an Int32Array of batch*seqLen", false) ||
      !CheckIds(env, c.ids, c.d.vocab, "decodePrefill: a token id is outside [0, vocab)"))
    return nullptr;
  s->batch = static_cast<int>(batch);
  float* logits;
  if (!GetLogits(env, argv[7], *s, &logits)) return nullptr;
  const char* error = nullptr;
  if (!Prefill(*s, static_cast<int>(batch), static_cast<int>(seqLen), static_cast<int>(capacity), positions, logits,
               &error))
    napi_throw_range_error(env, nullptr, error);
  return nullptr;
}

napi_value StepJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[4];
  DecodeSession* s = Arguments(env, info, 4, 4, argv, &argc, "decodeStep expects (session, ids, positions, logits)");
  if (s == nullptr) return nullptr;
  if (s->w.empty() || s->cache.capacity == 0) {
    napi_throw_error(env, nullptr, "decodeStep: no prefill ran on this session (call decodePrefill first)");
    return nullptr;
  }
  std::vector<int> ids, positions;
  float* logits;
  if (!GetInts(env, argv[1], s->batch, &ids, "decodeStep: ids must be an Int32Array of batch", false) ||
      !GetInts(env, argv[2], s->batch, &positions, "decodeStep: positions must be an Int32Array of batch", false) ||
      !CheckIds(env, ids, s->prefill.d.vocab, "decodeStep: a token id is outside [0, vocab)") ||
      !GetLogits(env, argv[3], *s, &logits))
    return nullptr;
  const char* error = nullptr;
  if (!Step(*s, ids.data(), positions, logits, &error)) napi_throw_range_error(env, nullptr, error);
  return nullptr;
}

napi_value InfoJs(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[1];
  DecodeSession* s = Arguments(env, info, 1, 1, argv, &argc, "decodeInfo expects (session)");
  if (s == nullptr) return nullptr;
  double bytes = 0;
  for (size_t l = 0; l < s->cache.keys.size(); l++)
    bytes += static_cast<double>(s->cache.keys[l].capacity() + s->cache.values[l].capacity()) * sizeof(float);
  napi_value result;
  CHECK_NAPI(env, napi_create_object(env, &result));
  const std::pair<const char*, double> fields[] = {{"batch", s->batch},
                                                   {"columns", s->cache.columns},
                                                   {"capacity", s->cache.capacity},
                                                   {"cacheBytes", bytes}};
  for (const auto& [name, value] : fields) {
    napi_value v;
    CHECK_NAPI(env, napi_create_double(env, value, &v));
    CHECK_NAPI(env, napi_set_named_property(env, result, name, v));
  }
  return result;
}

}  // namespace

bool RegisterDecode(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"decodeCreate", nullptr, CreateJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeBind", nullptr, BindJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodePrefill", nullptr, PrefillJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeStep", nullptr, StepJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeInfo", nullptr, InfoJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace decoder
}  // namespace prefkit
