{
  "variables": {
    "vargpt_glibc_floor%": "<!(node -p \"process.env.VARGPT_GLIBC_FLOOR === '1' ? 1 : 0\")",
    "vargpt_cflags": ["-O3", "-fno-math-errno", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17", "<@(vargpt_cflags)"],
    "cflags!": ["-fno-exceptions"],
    "include_dirs": ["native"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "MACOSX_DEPLOYMENT_TARGET": "11.0",
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno"]
    },
    "msvs_settings": {
      "VCCLCompilerTool": {
        "ExceptionHandling": 1,
        "AdditionalOptions": ["/std:c++17", "/O2", "/utf-8"],
        "ForcedIncludeFiles": ["<(module_root_dir)/native/core/msvc_compat.h"]
      }
    }
  },
  "targets": [
    {
      "target_name": "vargpt",
      "sources": ["<!@(node scripts/sources.cjs portable)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "conditions": [
        [
          "OS=='linux'",
          {"libraries": ["-ldl", "-lpthread"]}
        ],
        # -Bsymbolic: with libstdc++ linked in, the addon's calls into it (operator new, the
        # templates it instantiates) bind to its own copies, never to the ones node exports, so an
        # allocation and its release always come from the same library.
        [
          "OS=='linux' and vargpt_glibc_floor==1",
          {"defines": ["VARGPT_GLIBC_FLOOR=1"], "ldflags": ["-static-libstdc++", "-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic"]}
        ],
        [
          "target_arch=='x64' and OS!='win'",
          {"dependencies": ["vargpt_avx2", "vargpt_avx512", "vargpt_amx"], "defines": ["VARGPT_HAVE_X86_KERNELS=1"]}
        ]
      ]
    }
  ],
  "conditions": [
    [
      "target_arch=='x64' and OS!='win'",
      {
        "targets": [
          {
            "target_name": "vargpt_avx2",
            "type": "static_library",
            "sources": ["<!@(node scripts/sources.cjs avx2)"],
            "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-fPIC"],
            "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma", "-mf16c"]}
          },
          {
            "target_name": "vargpt_avx512",
            "type": "static_library",
            "sources": ["<!@(node scripts/sources.cjs avx512)"],
            "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mfma", "-mf16c", "-fPIC"],
            "xcode_settings": {
              "OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mfma", "-mf16c"]
            }
          },
          {
            "target_name": "vargpt_amx",
            "type": "static_library",
            "sources": ["<!@(node scripts/sources.cjs amx)"],
            "defines": ["VARGPT_HAVE_X86_KERNELS=1"],
            "cflags_cc": [
              "-mavx512f",
              "-mavx512bw",
              "-mavx512vl",
              "-mavx512dq",
              "-mavx512bf16",
              "-mamx-tile",
              "-mamx-bf16",
              "-mfma",
              "-mf16c",
              "-fPIC"
            ],
            "xcode_settings": {
              "OTHER_CPLUSPLUSFLAGS": [
                "-mavx512f",
                "-mavx512bw",
                "-mavx512vl",
                "-mavx512dq",
                "-mavx512bf16",
                "-mamx-tile",
                "-mamx-bf16",
                "-mfma",
                "-mf16c"
              ]
            }
          }
        ]
      }
    ]
  ]
}
