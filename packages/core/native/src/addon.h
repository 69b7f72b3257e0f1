// The translation units of @prefkit/core's native addon register their exports through these hooks
// (prefkit_native.cc calls them from the module's Init).
#pragma once
#include "prefkit/napi_util.h"

namespace prefkit {

bool RegisterGemm(napi_env env, napi_value exports);
bool RegisterOptim(napi_env env, napi_value exports);
bool RegisterEngineAbi(napi_env env, napi_value exports);

}  // namespace prefkit
