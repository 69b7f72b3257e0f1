// N-API marshalling of prefkit's GEMM (the maths is in the other files of this folder). Exports:
//
//   gemm(opts) -> undefined: C = alpha op(A) op(B) + beta C, row-major, for `batch` strided entries.
//     opts: m, n, k; a, b: Float32Array, or Uint16Array holding bf16 (b may be a gemmPack handle);
//     c: Float32Array; transA, transB (false); alpha (1), beta (0); lda, ldb, ldc (the dense ones);
//     aOffset, bOffset, cOffset (0, elements); batch (1), strideA, strideB, strideC (elements between
//     entries; A's and B's may be 0 to share one operand); dtype: "float32" (default) or "bfloat16"
//     (operands rounded to bf16, products summed in fp32); isa: run the built-in GEMM on this ISA
//     (refused when the CPU lacks it); blas: "builtin" or "openblas" (loaded on first use; fp32 only)
//     instead of the process's choice (isa and blas are for tests and benchmarks).
//     Every range is bounds-checked; C may not overlap A or B, nor (with batch > 1) itself.
//     A gemmPack handle as b is op(B) as packed, or with transB its transpose (packed k x n = this n x k).
//   gemmPack(opts) -> handle: op(B) packed once for products with it (b, transB, k, n, ldb, bOffset,
//     dtype, isa as above). gemmRepack(handle, opts): packs a new b (same k, n, transB...) into it in
//     place. gemmPackedInfo(handle) -> { k, n, bytes }.
//   gemmInfo() -> { isa, detectedIsa, isas, blas, threads, config, bf16 }
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../addon.h"
#include "gemm.h"

namespace prefkit {
namespace {

using gemm::Isa;
using gemm::Operand;
using gemm::Type;

bool Fail(napi_env env, const char* message) {
  napi_throw_range_error(env, nullptr, message);
  return false;
}

// Property `name` of `obj`, or false (with *present = false) when it is absent or undefined.
bool Property(napi_env env, napi_value obj, const char* name, napi_value* out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  napi_valuetype type;
  if (napi_get_named_property(env, obj, name, out) != napi_ok || napi_typeof(env, *out, &type) != napi_ok) return false;
  return type != napi_undefined;
}

// An integer property >= 0 (or `fallback` when absent).
bool IntProperty(napi_env env, napi_value obj, const char* name, int64_t fallback, int64_t* out) {
  napi_value v;
  if (!Property(env, obj, name, &v)) {
    *out = fallback;
    return true;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
    char message[120];
    std::snprintf(message, sizeof(message), "gemm: %s must be an integer >= 0", name);
    return Fail(env, message);
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool FloatProperty(napi_env env, napi_value obj, const char* name, float fallback, float* out) {
  napi_value v;
  *out = fallback;
  if (!Property(env, obj, name, &v)) return true;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !std::isfinite(d)) {
    char message[120];
    std::snprintf(message, sizeof(message), "gemm: %s must be a finite number", name);
    return Fail(env, message);
  }
  *out = static_cast<float>(d);
  return true;
}

bool BoolProperty(napi_env env, napi_value obj, const char* name, bool* out) {
  napi_value v;
  *out = false;
  if (!Property(env, obj, name, &v)) return true;
  return napi_get_value_bool(env, v, out) == napi_ok || Fail(env, "gemm: transA and transB must be booleans");
}

// dtype -> compute type; isa and blas -> the route (the process's when both are absent).
bool Modes(napi_env env, napi_value obj, Type* compute, gemm::Route* route) {
  char text[32];
  size_t len;
  napi_value v;
  *compute = Type::kF32;
  if (Property(env, obj, "dtype", &v)) {
    if (napi_get_value_string_utf8(env, v, text, sizeof(text), &len) != napi_ok) return Fail(env, "gemm: bad dtype");
    if (std::strcmp(text, "bfloat16") == 0) *compute = Type::kBF16;
    else if (std::strcmp(text, "float32") != 0) return Fail(env, "gemm: dtype must be \"float32\" or \"bfloat16\"");
  }
  *route = gemm::DefaultRoute();
  if (Property(env, obj, "isa", &v)) {
    if (napi_get_value_string_utf8(env, v, text, sizeof(text), &len) != napi_ok || !gemm::ParseIsa(text, &route->isa))
      return Fail(env, "gemm: isa must be one of avx512bf16, avx512, avx2, scalar");
    if (!gemm::IsaSupported(route->isa)) return Fail(env, "gemm: this CPU lacks the requested isa");
    route->blas = gemm::Blas::kBuiltin;
  }
  if (Property(env, obj, "blas", &v)) {
    if (napi_get_value_string_utf8(env, v, text, sizeof(text), &len) != napi_ok ||
        (std::strcmp(text, "openblas") != 0 && std::strcmp(text, "builtin") != 0))
      return Fail(env, "gemm: blas must be \"openblas\" or \"builtin\"");
    route->blas = std::strcmp(text, "openblas") == 0 ? gemm::Blas::kOpenBlas : gemm::Blas::kBuiltin;
    const char* error = nullptr;
    if (route->blas == gemm::Blas::kOpenBlas && !gemm::LoadOpenBlas(&error)) return Fail(env, error);
  }
  return true;
}

// A typed-array operand: Float32Array (fp32) or Uint16Array (bf16).
struct Array {
  void* data = nullptr;
  size_t length = 0;
  Type type = Type::kF32;
};

bool GetArray(napi_env env, napi_value v, bool allow_bf16, Array* out, const char* what) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, &out->length, &out->data, &buffer, &offset) != napi_ok ||
      !(type == napi_float32_array || (allow_bf16 && type == napi_uint16_array))) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  out->type = type == napi_uint16_array ? Type::kBF16 : Type::kF32;
  return true;
}

// Checks that `batch` entries of a rows x cols matrix (leading dimension ld, `stride` apart, from
// `offset`) lie inside `length` elements; *span gets the element range they cover.
bool InBounds(int64_t rows, int64_t cols, int64_t ld, int64_t offset, int64_t batch, int64_t stride, size_t length,
              const char* what, napi_env env, int64_t* begin, int64_t* end) {
  if (ld < (cols > 0 ? cols : 1)) {
    char message[120];
    std::snprintf(message, sizeof(message), "gemm: the leading dimension of %s is below its row length", what);
    return Fail(env, message);
  }
  *begin = offset;
  *end = offset;
  if (rows == 0 || cols == 0 || batch == 0) return true;
  const double last = static_cast<double>(offset) + static_cast<double>(batch - 1) * stride +
                      static_cast<double>(rows - 1) * ld + cols;
  if (last > static_cast<double>(length)) {
    char message[120];
    std::snprintf(message, sizeof(message), "gemm: %s is too short for its shape, offset, batch and stride", what);
    return Fail(env, message);
  }
  *end = static_cast<int64_t>(last);
  return true;
}

bool Overlap(const void* x, int64_t x0, int64_t x1, int xs, const void* y, int64_t y0, int64_t y1, int ys) {
  const auto a = reinterpret_cast<uintptr_t>(x), b = reinterpret_cast<uintptr_t>(y);
  const uintptr_t a0 = a + x0 * xs, a1 = a + x1 * xs, b0 = b + y0 * ys, b1 = b + y1 * ys;
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

// The single options-object argument of a call.
bool OptionsArgument(napi_env env, napi_callback_info info, const char* message, napi_value* opts) {
  size_t argc = 1;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, opts, nullptr, nullptr) != napi_ok || argc != 1 ||
      napi_typeof(env, *opts, &t) != napi_ok || t != napi_object) {
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  return true;
}

void FinalizePacked(napi_env, void* data, void*) { gemm::FreePackedB(static_cast<gemm::PackedB*>(data)); }

napi_value GemmJs(napi_env env, napi_callback_info info) {
  napi_value opts;
  if (!OptionsArgument(env, info, "gemm expects one options object", &opts)) return nullptr;
  int64_t m, n, k, batch, a_off, b_off, c_off, sa, sb, sc, lda, ldb, ldc;
  bool ta, tb;
  float alpha, beta;
  Type compute;
  gemm::Route route;
  if (!IntProperty(env, opts, "m", 0, &m) || !IntProperty(env, opts, "n", 0, &n) || !IntProperty(env, opts, "k", 0, &k) ||
      !BoolProperty(env, opts, "transA", &ta) || !BoolProperty(env, opts, "transB", &tb) ||
      !FloatProperty(env, opts, "alpha", 1.0f, &alpha) || !FloatProperty(env, opts, "beta", 0.0f, &beta) ||
      !IntProperty(env, opts, "batch", 1, &batch) || !IntProperty(env, opts, "aOffset", 0, &a_off) ||
      !IntProperty(env, opts, "bOffset", 0, &b_off) || !IntProperty(env, opts, "cOffset", 0, &c_off) ||
      !IntProperty(env, opts, "lda", ta ? m : k, &lda) || !IntProperty(env, opts, "ldb", tb ? k : n, &ldb) ||
      !IntProperty(env, opts, "ldc", n, &ldc) || !Modes(env, opts, &compute, &route))
    return nullptr;
  if (!IntProperty(env, opts, "strideA", m * k, &sa) || !IntProperty(env, opts, "strideB", k * n, &sb) ||
      !IntProperty(env, opts, "strideC", m * ldc, &sc))
    return nullptr;
  if (batch > 0x7FFFFFFF) {
    Fail(env, "gemm: batch must be below 2^31");
    return nullptr;
  }
  napi_value va, vb, vc;
  if (!Property(env, opts, "a", &va) || !Property(env, opts, "b", &vb) || !Property(env, opts, "c", &vc)) {
    napi_throw_type_error(env, nullptr, "gemm: a, b and c are required");
    return nullptr;
  }
  Array a, b, c;
  if (!GetArray(env, va, true, &a, "gemm: a must be a Float32Array or a Uint16Array (bf16)") ||
      !GetArray(env, vc, false, &c, "gemm: c must be a Float32Array"))
    return nullptr;
  gemm::PackedB* packed = nullptr;
  napi_valuetype bt;
  CHECK_NAPI(env, napi_typeof(env, vb, &bt));
  if (bt == napi_external) {
    void* data;
    CHECK_NAPI(env, napi_get_value_external(env, vb, &data));
    packed = static_cast<gemm::PackedB*>(data);
    const int64_t rows = tb ? n : k, cols = tb ? k : n;
    if (gemm::PackedBRows(*packed) != rows || gemm::PackedBCols(*packed) != cols || batch != 1) {
      Fail(env, "gemm: the packed b was packed for another k x n (or batch > 1)");
      return nullptr;
    }
  } else if (!GetArray(env, vb, true, &b, "gemm: b must be a Float32Array, a Uint16Array (bf16) or a gemmPack handle")) {
    return nullptr;
  }
  int64_t a0, a1, b0 = 0, b1 = 0, c0, c1;
  if (!InBounds(ta ? k : m, ta ? m : k, lda, a_off, batch, sa, a.length, "a", env, &a0, &a1) ||
      (packed == nullptr && !InBounds(tb ? n : k, tb ? k : n, ldb, b_off, batch, sb, b.length, "b", env, &b0, &b1)) ||
      !InBounds(m, n, ldc, c_off, batch, sc, c.length, "c", env, &c0, &c1))
    return nullptr;
  if (batch > 1 && m > 0 && n > 0 && sc < (m - 1) * ldc + n) {
    Fail(env, "gemm: the C entries overlap");
    return nullptr;
  }
  const int a_size = a.type == Type::kBF16 ? 2 : 4, b_size = b.type == Type::kBF16 ? 2 : 4;
  if (Overlap(c.data, c0, c1, 4, a.data, a0, a1, a_size) || Overlap(c.data, c0, c1, 4, b.data, b0, b1, b_size)) {
    Fail(env, "gemm: c overlaps a or b");
    return nullptr;
  }
  gemm::Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = {static_cast<char*>(a.data) + a_off * a_size, a.type, ta, lda};
  p.c = static_cast<float*>(c.data) + c_off;
  p.ldc = ldc;
  p.alpha = alpha;
  p.beta = beta;
  p.compute = compute;
  if (packed != nullptr) {
    gemm::GemmPacked(m, p.a, *packed, alpha, beta, p.c, ldc, tb);
    return nullptr;
  }
  p.b = {static_cast<char*>(b.data) + b_off * b_size, b.type, tb, ldb};
  if (batch == 1) {
    gemm::Gemm(p, route);
    return nullptr;
  }
  std::vector<int64_t> offsets(static_cast<size_t>(batch) * 3);
  for (int64_t i = 0; i < batch; i++) {
    offsets[i] = i * sa;
    offsets[batch + i] = i * sb;
    offsets[2 * batch + i] = i * sc;
  }
  gemm::GemmBatched(p, batch, offsets.data(), offsets.data() + batch, offsets.data() + 2 * batch, route);
  return nullptr;
}

// The B operand of gemmPack / gemmRepack options, bounds-checked; false with an exception pending.
bool PackOperand(napi_env env, napi_value opts, const char* name, int64_t* k, int64_t* n, Type* compute,
                 gemm::Route* route, Operand* operand) {
  int64_t ldb, off;
  bool tb;
  napi_value vb;
  Array b;
  char what[96];
  std::snprintf(what, sizeof(what), "%s: b must be a Float32Array or a Uint16Array (bf16)", name);
  if (!IntProperty(env, opts, "k", 0, k) || !IntProperty(env, opts, "n", 0, n) ||
      !BoolProperty(env, opts, "transB", &tb) || !IntProperty(env, opts, "ldb", tb ? *k : *n, &ldb) ||
      !IntProperty(env, opts, "bOffset", 0, &off) || !Modes(env, opts, compute, route))
    return false;
  if (!Property(env, opts, "b", &vb) || !GetArray(env, vb, true, &b, what)) return false;
  int64_t b0, b1;
  if (!InBounds(tb ? *n : *k, tb ? *k : *n, ldb, off, 1, 0, b.length, "b", env, &b0, &b1)) return false;
  *operand = {static_cast<char*>(b.data) + off * (b.type == Type::kBF16 ? 2 : 4), b.type, tb, ldb};
  return true;
}

napi_value PackJs(napi_env env, napi_callback_info info) {
  napi_value opts;
  if (!OptionsArgument(env, info, "gemmPack expects one options object", &opts)) return nullptr;
  int64_t k, n;
  Type compute;
  gemm::Route route;
  Operand operand;
  if (!PackOperand(env, opts, "gemmPack", &k, &n, &compute, &route, &operand)) return nullptr;
  gemm::PackedB* packed = gemm::PackB(operand, k, n, compute, route.isa);
  if (packed == nullptr) {
    napi_throw_error(env, nullptr, "gemmPack: out of memory");
    return nullptr;
  }
  napi_value result;
  if (napi_create_external(env, packed, FinalizePacked, nullptr, &result) != napi_ok) {
    gemm::FreePackedB(packed);
    napi_throw_error(env, nullptr, "gemmPack: napi_create_external failed");
    return nullptr;
  }
  return result;
}

napi_value RepackJs(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data = nullptr;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 2 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "gemmRepack expects a gemmPack handle and an options object");
    return nullptr;
  }
  auto* packed = static_cast<gemm::PackedB*>(data);
  int64_t k, n;
  Type compute;
  gemm::Route route;
  Operand operand;
  if (!PackOperand(env, argv[1], "gemmRepack", &k, &n, &compute, &route, &operand)) return nullptr;
  if (k != gemm::PackedBRows(*packed) || n != gemm::PackedBCols(*packed) || !gemm::RepackB(packed, operand)) {
    Fail(env, "gemmRepack: b does not fit the pack (another k x n, or another element type)");
    return nullptr;
  }
  return nullptr;
}

bool SetNumber(napi_env env, napi_value obj, const char* name, double value) {
  napi_value v;
  return napi_create_double(env, value, &v) == napi_ok && napi_set_named_property(env, obj, name, v) == napi_ok;
}

bool SetString(napi_env env, napi_value obj, const char* name, const char* value) {
  napi_value v;
  return napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v) == napi_ok &&
         napi_set_named_property(env, obj, name, v) == napi_ok;
}

napi_value PackedInfoJs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value handle;
  void* data = nullptr;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, &handle, nullptr, nullptr));
  if (argc != 1 || napi_get_value_external(env, handle, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "gemmPackedInfo expects a gemmPack handle");
    return nullptr;
  }
  const auto* packed = static_cast<const gemm::PackedB*>(data);
  napi_value result;
  CHECK_NAPI(env, napi_create_object(env, &result));
  if (!SetNumber(env, result, "k", static_cast<double>(gemm::PackedBRows(*packed))) ||
      !SetNumber(env, result, "n", static_cast<double>(gemm::PackedBCols(*packed))) ||
      !SetNumber(env, result, "bytes", static_cast<double>(gemm::PackedBBytes(*packed))))
    return nullptr;
  return result;
}

napi_value InfoJs(napi_env env, napi_callback_info) {
  napi_value result, isas;
  CHECK_NAPI(env, napi_create_object(env, &result));
  CHECK_NAPI(env, napi_create_array(env, &isas));
  uint32_t count = 0;
  for (int i = gemm::kIsaCount - 1; i >= 0; i--) {
    const Isa isa = static_cast<Isa>(i);
    if (!gemm::IsaSupported(isa)) continue;
    napi_value name;
    CHECK_NAPI(env, napi_create_string_utf8(env, gemm::IsaName(isa), NAPI_AUTO_LENGTH, &name));
    CHECK_NAPI(env, napi_set_element(env, isas, count++, name));
  }
  CHECK_NAPI(env, napi_set_named_property(env, result, "isas", isas));
  if (!SetString(env, result, "isa", gemm::IsaName(gemm::ActiveIsa())) ||
      !SetString(env, result, "detectedIsa", gemm::IsaName(gemm::DetectedIsa())) ||
      !SetString(env, result, "blas", gemm::BlasName(gemm::ActiveBlas())) ||
      !SetNumber(env, result, "threads", gemm::Threads()) || !SetString(env, result, "config", gemm::Describe()) ||
      !SetString(env, result, "bf16", gemm::Bf16Path()))
    return nullptr;
  return result;
}

}  // namespace

bool RegisterGemm(napi_env env, napi_value exports) {
  const char* error = nullptr;
  if (!gemm::Init(&error)) {
    napi_throw_error(env, nullptr, error);
    return false;
  }
  napi_property_descriptor props[] = {
      {"gemm", nullptr, GemmJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmPack", nullptr, PackJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmRepack", nullptr, RepackJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmPackedInfo", nullptr, PackedInfoJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmInfo", nullptr, InfoJs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}

}  // namespace prefkit
