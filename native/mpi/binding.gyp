# The optional MPI addon (native/mpi/mpi.cc) -> native/mpi/build/Release/batchnorm_mpi.node.
# Apart from the kernels addon's binding.gyp: built only where MPI is installed,
# by scripts/build-mpi.sh (npm run build:mpi). Compiler and linker flags come
# from Open MPI's (or MPICH's) wrapper compiler, `mpicxx --showme` (`-show`).
{
  "variables": { "mpicxx%": "mpicxx" },
  "targets": [
    {
      "target_name": "batchnorm_mpi",
      "sources": ["mpi.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-fPIC", "-O2", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "<!@(<(mpicxx) --showme:compile)"],
      "ldflags": ["-pthread"],
      "libraries": ["<!@(<(mpicxx) --showme:link)", "-ldl"],
      "defines": ["NAPI_VERSION=9", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"]
    }
  ]
}
