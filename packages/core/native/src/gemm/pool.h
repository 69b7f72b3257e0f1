// prefkit's small persistent thread pool: the GEMM's threads, and the elementwise loops of the fused
// decoder and the optimizer. Its size is the engine's `threads` (setNumThreads), by default the cores
// this process may run on.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace prefkit {
namespace gemm {

// Threads that take part in parallel work, the calling thread included (>= 1).
int Threads();
// Sets Threads() (clamped to 1..64); starts or stops workers as needed.
void SetThreads(int threads);
// The cores this process may run on (sched_getaffinity), the default of Threads().
int AvailableCores();

// A non-owning reference to a callable, so that running work never allocates.
template <typename Sig>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F>
  FunctionRef(const F& f)  // NOLINT: implicit on purpose, like std::function
      : object_(&f), call_([](const void* o, Args... args) -> R { return (*static_cast<const F*>(o))(args...); }) {}
  R operator()(Args... args) const { return call_(object_, args...); }

 private:
  const void* object_;
  R (*call_)(const void*, Args...);
};

// Runs fn(rank, size) once on each of `size` threads at the same time (the caller is rank 0), with
// size <= max_size (0: Threads()); returns when all are done. size is 1 (the caller alone) inside a
// task of the pool, while another caller uses it, or with one thread. The members may wait for each
// other (Barrier): each runs on its own thread.
void RunTeam(int max_size, FunctionRef<void(int, int)> fn);

// Runs fn(task, worker) for every task in [0, tasks), handed out in order to whichever team member
// is free, so results must not depend on `worker` (< Threads()), which only selects per-worker scratch.
void Run(int tasks, FunctionRef<void(int, int)> fn);

// Whether the calling thread is inside a task of the pool (where work runs single-threaded).
bool InParallelRegion();

// fn(begin, end) over [0, n) in at most Threads() contiguous chunks whose edges are multiples of
// `align`, each of at least `min_per_chunk` elements (one chunk, inline, when n is smaller).
void ParallelFor(size_t n, size_t min_per_chunk, size_t align, FunctionRef<void(size_t, size_t)> fn);

// A reusable barrier for the members of one RunTeam() call: spins briefly, then yields. Each member
// sets the team size it was given (all the same) before its first Wait().
class Barrier {
 public:
  void SetSize(int size) { size_.store(size, std::memory_order_relaxed); }
  void Wait();

 private:
  std::atomic<int> size_{1};
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> phase_{0};
};

}  // namespace gemm
}  // namespace prefkit
