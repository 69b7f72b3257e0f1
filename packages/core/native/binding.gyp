{
  "targets": [
    {
      "target_name": "prefkit_native",
      "sources": ["src/prefkit_native.cc", "src/optim.cc", "src/decoder.cc"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/openblas"],
      "libraries": ["-lopenblas"],
      "cflags_cc": ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-std=c++17", "-fno-exceptions"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
