// Helpers shared by the ops and mixer tests: the device they compute on, norm-wise
// relative error and a central-difference gradient check in float64 (LibTorch has no
// gradcheck).
#pragma once
#include <torch/torch.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace hyla::testing {

// HYLA_TEST_DEVICE: cpu (default, CI) or cuda (the device run, scripts/device/build.sh).
// A CUDA request without a GPU fails the test rather than quietly using the CPU.
inline torch::Device test_device() {
  const char* env = std::getenv("HYLA_TEST_DEVICE");
  torch::Device d(env && *env ? env : "cpu");
  if (d.is_cuda() && !torch::cuda::is_available()) throw std::runtime_error("HYLA_TEST_DEVICE=cuda: no GPU");
  return d;
}

// float64 on the test device: the dtype of the references these tests compare against.
inline torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64).device(test_device()); }

// ||a − b|| / ||b|| in float64 (0 when both are zero).
inline double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  double den = b64.norm().item<double>(), num = (a64 - b64).norm().item<double>();
  return den == 0 ? num : num / den;
}

// For a scalar function f of float64 inputs, the largest norm-wise relative difference
// between autograd's gradient and central differences (f(x+h) − f(x−h)) / 2h, over all
// inputs. `inputs` are cloned; f must not modify them.
inline double grad_check_error(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
    const std::vector<torch::Tensor>& inputs, double h = 1e-6) {
  std::vector<torch::Tensor> xs;
  for (auto& x : inputs) xs.push_back(x.detach().to(torch::kFloat64).clone().requires_grad_(true));
  auto y = f(xs);
  auto grads = torch::autograd::grad({y}, xs, {}, false, false, true);
  double worst = 0;
  torch::NoGradGuard ng;
  for (size_t i = 0; i < xs.size(); ++i) {
    auto base = xs[i].detach().clone();
    auto flat = base.view(-1);
    auto numeric = torch::zeros_like(flat);
    for (int64_t j = 0; j < flat.numel(); ++j) {
      auto probe = [&](double delta) {
        auto p = base.clone();
        p.view(-1)[j] += delta;
        auto args = xs;
        args[i] = p;
        return f(args).item<double>();
      };
      numeric[j] = (probe(h) - probe(-h)) / (2 * h);
    }
    auto analytic = grads[i].defined() ? grads[i].reshape(-1) : torch::zeros_like(numeric);
    worst = std::max(worst, rel_err(analytic, numeric));
  }
  return worst;
}

// Cheaper variant: compares directional derivatives ⟨∇f, u⟩ with central differences
// along `directions` random unit directions u per input (gradcheck's "fast mode" idea).
inline double directional_grad_check_error(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
    const std::vector<torch::Tensor>& inputs, int directions = 8, double h = 1e-6) {
  std::vector<torch::Tensor> xs;
  for (auto& x : inputs) xs.push_back(x.detach().to(torch::kFloat64).clone().requires_grad_(true));
  auto y = f(xs);
  auto grads = torch::autograd::grad({y}, xs, {}, false, false, true);
  double worst = 0;
  torch::NoGradGuard ng;
  for (size_t i = 0; i < xs.size(); ++i) {
    auto base = xs[i].detach().clone();
    auto analytic = torch::zeros({directions}, torch::kFloat64), numeric = analytic.clone();
    for (int r = 0; r < directions; ++r) {
      auto u = torch::randn_like(base);
      u /= u.norm();
      auto at = [&](double delta) {
        auto args = xs;
        args[i] = base + delta * u;
        return f(args).item<double>();
      };
      numeric[r] = (at(h) - at(-h)) / (2 * h);
      analytic[r] = grads[i].defined() ? (grads[i] * u).sum().item<double>() : 0.0;
    }
    worst = std::max(worst, rel_err(analytic, numeric));
  }
  return worst;
}

}  // namespace hyla::testing
