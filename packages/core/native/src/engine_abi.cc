// The engine ABI (include/prefkit/engine_abi.h): prefkit's GEMM and thread pool behind a versioned
// struct of C function pointers, exported as the `engineAbi` external for other addons (the fused
// decoder of @prefkit/models), so that the process keeps one pool and one ISA dispatch.
#include "prefkit/engine_abi.h"

#include "addon.h"
#include "gemm/gemm.h"
#include "gemm/gemv.h"

namespace prefkit {
namespace {

static_assert(static_cast<int>(gemm::Type::kF32) == PREFKIT_F32 && static_cast<int>(gemm::Type::kBF16) == PREFKIT_BF16,
              "the ABI's type codes are gemm::Type's");

gemm::Operand ToOperand(const prefkit_operand& o) {
  return {o.data, static_cast<gemm::Type>(o.type), o.trans != 0, o.ld};
}

void Sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  gemm::Sgemm(trans_a != 0 ? gemm::kTrans : gemm::kNoTrans, trans_b != 0 ? gemm::kTrans : gemm::kNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}

prefkit_packed_b* PackB(const prefkit_operand* b, int64_t k, int64_t n, int32_t compute) {
  return reinterpret_cast<prefkit_packed_b*>(
      gemm::PackB(ToOperand(*b), k, n, static_cast<gemm::Type>(compute), gemm::ActiveIsa()));
}

void FreePackedB(prefkit_packed_b* packed) { gemm::FreePackedB(reinterpret_cast<gemm::PackedB*>(packed)); }

void GemmPacked(int64_t m, const prefkit_operand* a, const prefkit_packed_b* b, float alpha, float beta, float* c,
                int64_t ldc) {
  gemm::GemmPacked(m, ToOperand(*a), *reinterpret_cast<const gemm::PackedB*>(b), alpha, beta, c, ldc);
}

void ParallelFor(size_t n, size_t min_per_chunk, size_t align, void (*fn)(void*, size_t, size_t), void* ctx) {
  gemm::ParallelFor(n, min_per_chunk, align, [&](size_t begin, size_t end) { fn(ctx, begin, end); });
}

void ParallelGemms(int tasks, void (*fn)(void*, int, int), void* ctx) {
  gemm::ParallelGemms(tasks, [&](int task, int worker) { fn(ctx, task, worker); });
}

int Threads() { return gemm::Threads(); }

void Gemm(int64_t m, int64_t n, int64_t k, float alpha, const prefkit_operand* a, const prefkit_operand* b, float beta,
          float* c, int64_t ldc, int32_t compute) {
  gemm::Problem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = ToOperand(*a);
  p.b = ToOperand(*b);
  p.c = c;
  p.ldc = ldc;
  p.alpha = alpha;
  p.beta = beta;
  p.compute = static_cast<gemm::Type>(compute);
  gemm::Gemm(p);
}

void GemmPackedTransposed(int64_t m, const prefkit_operand* a, const prefkit_packed_b* b, float alpha, float beta,
                          float* c, int64_t ldc) {
  gemm::GemmPacked(m, ToOperand(*a), *reinterpret_cast<const gemm::PackedB*>(b), alpha, beta, c, ldc, true);
}

int RepackB(prefkit_packed_b* packed, const prefkit_operand* b) {
  return gemm::RepackB(reinterpret_cast<gemm::PackedB*>(packed), ToOperand(*b)) ? 1 : 0;
}

int UnpackB(const prefkit_packed_b* packed, void* out, int32_t type, int32_t trans, int64_t ld) {
  return gemm::UnpackB(*reinterpret_cast<const gemm::PackedB*>(packed), out, static_cast<gemm::Type>(type), trans != 0,
                       ld)
             ? 1
             : 0;
}

int64_t PackedBBytes(const prefkit_packed_b* packed) {
  return gemm::PackedBBytes(*reinterpret_cast<const gemm::PackedB*>(packed));
}

const char* Bf16Path() { return gemm::Bf16Path(); }

int Gemv(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const prefkit_operand* w, float beta, float* y,
         int64_t ldy) {
  if (w->type != PREFKIT_F32 || w->trans != 0) return -1;
  gemm::Gemv(m, n, k, x, ldx, static_cast<const float*>(w->data), w->ld, beta, y, ldy);
  return 0;
}

const prefkit_engine_abi kEngineAbi = {
    PREFKIT_ENGINE_ABI_VERSION,
    sizeof(prefkit_engine_abi),
    Sgemm,
    PackB,
    FreePackedB,
    GemmPacked,
    ParallelFor,
    ParallelGemms,
    Threads,
    Gemm,
    GemmPackedTransposed,
    RepackB,
    UnpackB,
    PackedBBytes,
    Bf16Path,
    Gemv,
};

}  // namespace

bool RegisterEngineAbi(napi_env env, napi_value exports) {
  static const napi_type_tag kTag = {PREFKIT_ENGINE_ABI_TAG_LOWER, PREFKIT_ENGINE_ABI_TAG_UPPER};
  napi_value external;
  // No finalizer: the struct is static, and the addon stays loaded for the life of the process.
  return napi_create_external(env, const_cast<prefkit_engine_abi*>(&kEngineAbi), nullptr, nullptr, &external) ==
             napi_ok &&
         napi_type_tag_object(env, external, &kTag) == napi_ok &&
         napi_set_named_property(env, exports, "engineAbi", external) == napi_ok;
}

}  // namespace prefkit
