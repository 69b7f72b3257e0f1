// See engine.h.
#include "engine.h"

#include <cstdio>

namespace prefkit {
namespace decoder {
namespace engine {
namespace {
const prefkit_engine_abi* gAbi = nullptr;
}  // namespace

bool Attach(const prefkit_engine_abi* abi, const char** error) {
  static char message[200];
  if (abi == nullptr) {
    *error = "the engine ABI is null";
    return false;
  }
  if (abi->version != PREFKIT_ENGINE_ABI_VERSION || abi->size < sizeof(prefkit_engine_abi)) {
    std::snprintf(message, sizeof(message),
                  "@prefkit/core's native addon has engine ABI version %u (%u bytes), this decoder was built for "
                  "version %u (%zu bytes): rebuild both with `npm run build:native`",
                  abi->version, abi->size, PREFKIT_ENGINE_ABI_VERSION, sizeof(prefkit_engine_abi));
    *error = message;
    return false;
  }
  gAbi = abi;
  return true;
}

bool Attached() { return gAbi != nullptr; }

const prefkit_engine_abi& Abi() { return *gAbi; }

}  // namespace engine
}  // namespace decoder
}  // namespace prefkit
