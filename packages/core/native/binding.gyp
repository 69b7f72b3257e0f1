{
  "targets": [
    {
      # prefkit's GEMM: baseline x86-64 code, microkernels with per-function target attributes (no
      # -march=native: one build runs on any CPU of the architecture). No -ffast-math, and no FMA
      # contraction outside the microkernels' explicit FMAs, so results are reproducible.
      "target_name": "prefkit_gemm",
      "type": "static_library",
      "sources": [
        "src/gemm/isa.cc",
        "src/gemm/kernels.cc",
        "src/gemm/ukernel_scalar.cc",
        "src/gemm/ukernel_avx2.cc",
        "src/gemm/ukernel_avx512.cc",
        "src/gemm/ukernel_avx512bf16.cc",
        "src/gemm/pack_avx2.cc",
        "src/gemm/pack_avx512.cc",
        "src/gemm/pack.cc",
        "src/gemm/driver.cc",
        "src/gemm/packed.cc",
        "src/gemm/pool.cc",
        "src/gemm/openblas.cc",
        "src/gemm/gemm.cc",
        "src/gemm/gemv.cc",
        "src/gemm/gemv_avx2.cc",
        "src/gemm/gemv_avx512.cc"
      ],
      "include_dirs": ["include"],
      "cflags": ["-fPIC"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-ffp-contract=off"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-exceptions", "-ffp-contract=off"] },
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "prefkit_native",
      "sources": ["src/prefkit_native.cc", "src/optim.cc", "src/engine_abi.cc", "src/gemm/gemm_napi.cc"],
      "include_dirs": ["include"],
      "dependencies": ["prefkit_gemm"],
      "libraries": ["-ldl", "-lpthread"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-exceptions"] },
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
