// The decode step's N-API entry points (decode_napi.cc), registered by decoder_napi.cc's Init.
#pragma once

#include <node_api.h>

namespace prefkit {
namespace decoder {

// Adds decodeCreate, decodeBind, decodePrefill, decodeStep and decodeInfo to `exports`.
bool RegisterDecode(napi_env env, napi_value exports);

}  // namespace decoder
}  // namespace prefkit
