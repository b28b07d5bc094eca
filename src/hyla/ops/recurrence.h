// What every linear-attention recurrence form shares: its options, its result, the
// compute dtype, and the packing of variable-length batches into padded rows.
//
// Layouts follow fla: tokens [B, T, heads, dim]; states [N, heads, dk, dv] (K×V, read as
// o = Sᵀq); packed varlen batches have B == 1 and cu_seqlens [N+1] (int64), and the
// state is reset (or taken from initial_state[n]) at each sequence start.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace hyla::ops {

struct RecurrenceOptions {
  double scale = -1;            // multiplies q; < 0 means dk^(-1/2)
  torch::Tensor initial_state;  // [N, heads, dk, dv]; undefined = zeros
  torch::Tensor cu_seqlens;     // [N+1] int64 with B == 1; undefined = not packed
  int64_t chunk_size = 64;      // chunked forms only
};

struct RecurrenceResult {
  torch::Tensor o;      // [B, T, heads, dv] in v's dtype
  torch::Tensor state;  // [N, heads, dk, dv] in the compute dtype (float32 or float64)
};

// "[2, 3, 4]", for error messages.
std::string shape_str(c10::IntArrayRef sizes);

// float64 stays float64 (the oracle runs there); everything else computes in float32.
torch::ScalarType compute_dtype(const torch::Tensor& t);

// Validated sequence boundaries of a packed batch of `total` tokens: {0, ..., total}.
std::vector<int64_t> sequence_bounds(const torch::Tensor& cu_seqlens, int64_t total,
                                     const std::string& op);

// [1, total, ...] -> [N, t_pad, ...]: each sequence left-aligned, zero-padded to t_pad.
torch::Tensor pad_sequences(const torch::Tensor& x, const std::vector<int64_t>& bounds,
                            int64_t t_pad);
// Inverse of pad_sequences: [N, t_pad, ...] -> [1, total, ...].
torch::Tensor unpad_sequences(const torch::Tensor& x, const std::vector<int64_t>& bounds);

// Zero-pads dim 1 (time) of x up to length t_pad.
torch::Tensor pad_time(const torch::Tensor& x, int64_t t_pad);

// Checks the initial state's shape [n, heads, dk, dv] (if defined) and returns it in
// dtype `dt`, or zeros of that shape.
torch::Tensor initial_state_or_zeros(const torch::Tensor& s, int64_t n, int64_t heads,
                                     int64_t dk, int64_t dv, torch::ScalarType dt,
                                     torch::Device dev, const std::string& op);

}  // namespace hyla::ops
