// The device the testkit computes on: HYLA_TEST_DEVICE (cpu, the default, or cuda /
// cuda:N), so the same oracle tests run on the CPU in CI and on the GPU in the device
// run (scripts/device/build.sh). Inputs are moved there, outputs back to the CPU.
#pragma once
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "hyla/util/error.h"

namespace hyla::testkit {

inline torch::Device test_device() {
  const char* env = std::getenv("HYLA_TEST_DEVICE");
  std::string name = env && *env ? env : "cpu";
  torch::Device d(torch::kCPU);
  try {
    d = torch::Device(name);
  } catch (const c10::Error&) {
    fail("HYLA_TEST_DEVICE=\"{}\" is not a device (cpu, cuda, cuda:N)", name);
  }
  HYLA_CHECK(!d.is_cuda() || torch::cuda::is_available(), "HYLA_TEST_DEVICE={}: no CUDA device is available", name);
  return d;
}

}  // namespace hyla::testkit
