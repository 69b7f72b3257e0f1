// The persistent thread pool (see pool.h). Plain pthreads: the addon builds without exceptions, and a
// worker that cannot be started just leaves the pool smaller. Idle workers spin for a short while
// before they sleep, since the decoder hands out work every few hundred microseconds and a wake-up
// from sleep costs tens of them.
#include "pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PREFKIT_PAUSE() _mm_pause()
#else
#define PREFKIT_PAUSE() std::this_thread::yield()
#endif

namespace prefkit {
namespace gemm {
namespace {

constexpr int kMaxThreads = 64;
constexpr auto kSpin = std::chrono::microseconds(50);
thread_local bool tInRegion = false;

// Spins until done() or kSpin has passed; returns done().
template <typename Done>
bool SpinFor(const Done& done) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; i++) {
    if (done()) return true;
    PREFKIT_PAUSE();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > kSpin) return done();
  }
}

class Pool {
 public:
  Pool() { Resize(AvailableCores()); }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void Resize(int threads) {
    threads = std::max(1, std::min(kMaxThreads, threads));
    std::lock_guard<std::mutex> busy(run_mutex_);
    while (static_cast<int>(workers_.size()) > threads - 1) {
      Worker* w = workers_.back();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        w->stop.store(true);
      }
      wake_.notify_all();
      pthread_join(w->thread, nullptr);
      delete w;
      workers_.pop_back();
    }
    while (static_cast<int>(workers_.size()) < threads - 1) {
      Worker* w = new Worker();
      w->pool = this;
      w->rank = static_cast<int>(workers_.size()) + 1;
      w->seen = generation_.load();
      if (pthread_create(&w->thread, nullptr, &Pool::Main, w) != 0) {
        delete w;
        break;
      }
      workers_.push_back(w);
    }
    threads_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
  }

  void RunTeam(int max_size, FunctionRef<void(int, int)> fn) {
    const int want = std::min(threads(), max_size > 0 ? max_size : kMaxThreads);
    std::unique_lock<std::mutex> busy(run_mutex_, std::defer_lock);
    if (tInRegion || want <= 1 || !busy.try_lock()) {
      const bool outer = tInRegion;
      tInRegion = true;
      fn(0, 1);
      tInRegion = outer;
      return;
    }
    const int size = std::min(want, static_cast<int>(workers_.size()) + 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      size_ = size;
      pending_.store(size - 1);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    tInRegion = true;
    fn(0, size);
    tInRegion = false;
    if (!SpinFor([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_.load() == 0; });
    }
    job_ = nullptr;
  }

 private:
  struct Worker {
    Pool* pool;
    int rank;
    uint64_t seen;
    std::atomic<bool> stop{false};
    pthread_t thread;
  };

  static void* Main(void* arg) {
    Worker* w = static_cast<Worker*>(arg);
    Pool* pool = w->pool;
    tInRegion = true;
    for (;;) {
      SpinFor([&] { return w->stop.load() || pool->generation_.load(std::memory_order_acquire) != w->seen; });
      const FunctionRef<void(int, int)>* job;
      int size;
      {
        std::unique_lock<std::mutex> lock(pool->mutex_);
        pool->wake_.wait(lock, [&] { return w->stop.load() || pool->generation_.load() != w->seen; });
        if (w->stop.load()) return nullptr;
        w->seen = pool->generation_.load();
        if (w->rank >= pool->size_) continue;  // not in this team
        job = pool->job_;
        size = pool->size_;
      }
      (*job)(w->rank, size);
      if (pool->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(pool->mutex_);
        pool->done_.notify_one();
      }
    }
  }

  std::atomic<int> threads_{1};
  std::vector<Worker*> workers_;
  std::mutex run_mutex_;  // one RunTeam() (or Resize()) at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const FunctionRef<void(int, int)>* job_ = nullptr;
  int size_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
};

// Never destroyed: destroying it at exit would join workers that wait on its condition variable.
Pool& ThePool() {
  static Pool* pool = new Pool();
  return *pool;
}

}  // namespace

int AvailableCores() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int Threads() { return ThePool().threads(); }
void SetThreads(int threads) { ThePool().Resize(threads); }
bool InParallelRegion() { return tInRegion; }

void RunTeam(int max_size, FunctionRef<void(int, int)> fn) { ThePool().RunTeam(max_size, fn); }

void Run(int tasks, FunctionRef<void(int, int)> fn) {
  if (tasks <= 0) return;
  std::atomic<int> next{0};
  RunTeam(tasks, [&](int rank, int) {
    for (int task = next.fetch_add(1); task < tasks; task = next.fetch_add(1)) fn(task, rank);
  });
}

void ParallelFor(size_t n, size_t min_per_chunk, size_t align, FunctionRef<void(size_t, size_t)> fn) {
  size_t chunks = static_cast<size_t>(InParallelRegion() ? 1 : Threads());
  chunks = std::min(chunks, std::max<size_t>(1, n / std::max<size_t>(1, min_per_chunk)));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  align = std::max<size_t>(1, align);
  const size_t size = ((n + chunks - 1) / chunks + align - 1) / align * align;
  Run(static_cast<int>(chunks), [&](int t, int) {
    const size_t begin = std::min(n, static_cast<size_t>(t) * size);
    const size_t end = std::min(n, begin + size);
    if (begin < end) fn(begin, end);
  });
}

void Barrier::Wait() {
  const int size = size_.load(std::memory_order_relaxed);
  if (size <= 1) return;
  const unsigned phase = phase_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    phase_.store(phase + 1, std::memory_order_release);
    return;
  }
  while (!SpinFor([&] { return phase_.load(std::memory_order_acquire) != phase; })) std::this_thread::yield();
}

}  // namespace gemm
}  // namespace prefkit
