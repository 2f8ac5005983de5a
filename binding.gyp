# Builds build/Release/batchnorm.node. CMakeLists.txt builds the same addon from
# the same sources, defines and flags (test/build-files.test.ts checks both).
# The binding and the scalar kernels are compiled for the baseline ISA; only
# the per-ISA kernel libraries get ISA flags, chosen by the TARGET architecture.
# Option: node-gyp rebuild --batchnorm_sanitize=true builds with ASan + UBSan (not -D...: node-gyp would not pass that on).
{
  "variables": { "batchnorm_sanitize%": "false" },
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    # -pthread, -fno-omit-frame-pointer, the warnings and -fno-rtti also come from Node's common.gypi (of
    # --nodedir): written out so that they do not depend on it and so that CMakeLists.txt has them too.
    "cflags": ["-fPIC", "-O3", "-ffp-contract=off", "-pthread", "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-fno-rtti"],
    "ldflags": ["-pthread"],
    # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a Promise settled while a worker_thread is torn down with a
    # call in flight must not throw out of the completion callback (std::terminate; test/async-gc.test.ts).
    "defines": ["NAPI_VERSION=9", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "conditions": [
      ["batchnorm_sanitize=='true'", {
        "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  },
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "batchnorm_avx2",
          "type": "static_library",
          "sources": ["native/kernels/avx2.cc"],
          "cflags_cc": ["-mavx2", "-mfma"]
        },
        {
          "target_name": "batchnorm_avx512",
          "type": "static_library",
          "sources": ["native/kernels/avx512.cc"],
          # -Wno-(maybe-)uninitialized: GCC 12's false positives on __Y in its own AVX-512 headers
          # (_mm256_undefined_pd() in _mm512_reduce_add_pd; GCC bug 105593), 48 + 430 of them under -Wall.
          "cflags_cc": ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-Wno-uninitialized", "-Wno-maybe-uninitialized"]
        }
      ]
    }]
  ],
  "targets": [
    {
      "target_name": "batchnorm",
      "sources": [
        "native/addon.cc",
        "native/dispatch.cc",
        "native/threads.cc",
        "native/kernels/scalar.cc"
      ],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["batchnorm_avx2", "batchnorm_avx512"],
          "defines": ["BATCHNORM_HAVE_AVX2", "BATCHNORM_HAVE_AVX512"]
        }],
        ["target_arch=='arm64'", {
          "sources": ["native/kernels/neon.cc"],
          "defines": ["BATCHNORM_HAVE_NEON"]
        }]
      ]
    }
  ]
}
