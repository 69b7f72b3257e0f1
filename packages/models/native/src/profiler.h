// Where the fused decoder's time goes: seconds per phase, accumulated over the forward and backward
// calls since the last decoderProfile(true) (bench/decoder-profile.mjs prints them). One clock runs
// per call, on the calling thread; the maths marks phase changes with Enter().
#pragma once

#include <chrono>

namespace prefkit {
namespace decoder {
namespace profiler {

enum Phase {
  kFwdGemm,
  kFwdAttn,
  kFwdElem,
  kFwdHeadGemm,
  kFwdHeadSoftmax,
  kBwdGemm,
  kBwdAttn,
  kBwdElem,
  kBwdHeadGemm,
  kBwdHeadSoftmax,
  kBwdEmbed,
  kPhases
};
extern const char* const kPhaseNames[kPhases];

// Seconds charged to `phase` since the last reset; Reset() zeroes them all.
double Seconds(int phase);
void Reset();

// The phase now charged (the one to return to after a nested Enter()).
int Current();
// Charges the time until the next phase change to `phase` (no-op outside a Clock).
void Enter(int phase);

// Times one decoder call: from construction to destruction, phases change with Enter().
class Clock {
 public:
  Clock();
  ~Clock();
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  void Switch(int next);

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace profiler
}  // namespace decoder
}  // namespace prefkit
