// See profiler.h.
#include "profiler.h"

namespace prefkit {
namespace decoder {
namespace profiler {
namespace {
double gSeconds[kPhases] = {};
int gPhase = kFwdElem;
Clock* gClock = nullptr;
}  // namespace

const char* const kPhaseNames[kPhases] = {"forward.projections",       "forward.attention",
                                          "forward.elementwise",       "forward.head_matmul",
                                          "forward.head_logsoftmax",   "backward.projections",
                                          "backward.attention",        "backward.elementwise",
                                          "backward.head_matmul",      "backward.head_softmax_grad",
                                          "backward.embedding"};

double Seconds(int phase) { return gSeconds[phase]; }

void Reset() {
  for (double& s : gSeconds) s = 0;
}

int Current() { return gPhase; }

void Enter(int phase) {
  if (gClock != nullptr) gClock->Switch(phase);
}

Clock::Clock() : start_(std::chrono::steady_clock::now()) { gClock = this; }

Clock::~Clock() {
  Switch(gPhase);
  gClock = nullptr;
}

void Clock::Switch(int next) {
  const auto now = std::chrono::steady_clock::now();
  gSeconds[gPhase] += std::chrono::duration<double>(now - start_).count();
  start_ = now;
  gPhase = next;
}

}  // namespace profiler
}  // namespace decoder
}  // namespace prefkit
