{
  "variables": {
    # @prefkit/core's native headers: the engine ABI (its GEMM and thread pool) and the N-API helpers.
    "core_include": "<!(node -p \"require('path').join(require('path').dirname(require.resolve('@prefkit/core/package.json')), 'native', 'include')\")"
  },
  "targets": [
    {
      # The fused decoder. It links no GEMM of its own: it takes core's through the engine ABI at load.
      # Baseline code, no -march=native; its loops tolerate -ffast-math (tested against the tfjs
      # decoder to 1e-5), infinities kept for the attention mask.
      "target_name": "prefkit_decoder",
      "sources": [
        "src/arguments.cc",
        "src/attention.cc",
        "src/context.cc",
        "src/decoder.cc",
        "src/decoder_napi.cc",
        "src/engine.cc",
        "src/head.cc",
        "src/layer.cc",
        "src/layout.cc",
        "src/mlp.cc",
        "src/packed_weight.cc",
        "src/profiler.cc",
        "src/projection.cc"
      ],
      "include_dirs": ["<(core_include)"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-ffast-math", "-fno-finite-math-only"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-exceptions", "-ffast-math", "-fno-finite-math-only"]
      },
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
