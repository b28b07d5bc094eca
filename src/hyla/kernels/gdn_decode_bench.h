// Times the fused GDN decode step against the LibTorch reference on the GPU (`hyla bench
// gdn-decode`), both captured in CUDA graphs, beside the bytes-moved floor of one step.
#pragma once
#include <torch/torch.h>

namespace hyla::kernels {

struct GdnDecodeBenchResult {
  int64_t batch = 0;
  double kernel_us = 0, reference_us = 0;  // one decode step of one layer
  double bytes = 0;                         // the fewest bytes one step must move
  double copy_gbps = 0;                     // measured device-to-device copy (read + write)
  double floor_us = 0;                      // bytes / copy bandwidth
};

// B sequences, H query/key heads, HV value heads, head dim d (dk = dv), conv window 4,
// `dtype` activations; `iters` steps per timed graph. Needs a CUDA build and a GPU.
GdnDecodeBenchResult bench_gdn_decode(int64_t B, int64_t H, int64_t HV, int64_t d, torch::ScalarType dtype,
                                      int iters);

}  // namespace hyla::kernels
