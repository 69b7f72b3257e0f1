// How many weight rows one task of a decoding product takes, for the engine's gemv (src/gemm/gemv.cc) and
// the models addon's decode step (which splits a group of projections over the pool itself): about a
// quarter of a thread's share, so that a thread slowed down by another process on its core takes fewer
// tasks, at least `minimum` rows, in whole blocks of `block` rows (the gemv kernels' widest block).
// Header-only: both addons compile it.
#ifndef PREFKIT_ROW_TASKS_H_
#define PREFKIT_ROW_TASKS_H_

#include <algorithm>
#include <cstdint>

namespace prefkit {

inline int64_t RowTaskSize(int64_t n, int64_t minimum, int64_t threads, int64_t block) {
  const int64_t share = (n + 4 * threads - 1) / (4 * threads);
  return (std::max(minimum, share) + block - 1) / block * block;
}

}  // namespace prefkit

#endif  // PREFKIT_ROW_TASKS_H_
