// N-API helpers shared by prefkit's native addons (@prefkit/core's and @prefkit/models').
#pragma once
#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace prefkit {

#define CHECK_NAPI(env, call)                                \
  do {                                                       \
    if ((call) != napi_ok) {                                 \
      napi_throw_error((env), nullptr, "prefkit: " #call);   \
      return nullptr;                                        \
    }                                                        \
  } while (0)

inline bool GetTypedArray(napi_env env, napi_value value, napi_typedarray_type want, void** data, size_t* length,
                          const char* name) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) {
    napi_throw_type_error(env, nullptr, name);
    return false;
  }
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, data, &buffer, &offset) != napi_ok || type != want) {
    napi_throw_type_error(env, nullptr, name);
    return false;
  }
  return true;
}

inline bool GetInt(napi_env env, napi_value value, int64_t* out, const char* name) {
  if (napi_get_value_int64(env, value, out) != napi_ok || *out < 0 || *out > INT32_MAX) {
    napi_throw_range_error(env, nullptr, name);
    return false;
  }
  return true;
}

}  // namespace prefkit
