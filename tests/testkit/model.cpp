// Test entry points for the decoder: logits of given ids, greedy generation, and
// prefill+decode logits, written as raw float32 files the Python oracle tests read.
#include <cstdio>
#include <fstream>

#include "../../tools/hyla/command.h"
#include "hyla/model/decoder.h"
#include "hyla/model/generate.h"
#include "hyla/util/error.h"
#include "device.h"

namespace {

// "1,2,3;4,5,6" -> [[1,2,3],[4,5,6]]
torch::Tensor parse_ids(const std::string& s) {
  std::vector<std::vector<int64_t>> rows(1);
  std::string num;
  auto flush = [&] {
    if (!num.empty()) rows.back().push_back(std::stoll(num));
    num.clear();
  };
  for (char c : s) {
    if (c == ',') flush();
    else if (c == ';') { flush(); rows.emplace_back(); }
    else num += c;
  }
  flush();
  std::vector<int64_t> flat;
  for (auto& r : rows) {
    HYLA_CHECK(r.size() == rows[0].size(), "--ids rows must have equal length");
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return torch::tensor(flat, torch::kInt64).view({(int64_t)rows.size(), (int64_t)rows[0].size()});
}

void write_raw(const std::string& path, const torch::Tensor& t, torch::ScalarType dtype = torch::kFloat32) {
  auto c = t.to(dtype).contiguous().to(torch::kCPU);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

struct Args {
  std::string model, ids, out, dtype = "float32", mode = "full", out_dtype = "float32";
  int64_t n = 32, split = 0;
  bool eager = false, train_mode = false;
  std::vector<int64_t> chunks;
};

hyla::cli::Register logits("lm-logits",
                           "logits of --ids; --mode full|decode (prefill `split` tokens, or successive --chunks, "
                           "then 1-token steps)",
                           [](CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--model", a->model)->required();
  app.add_option("--ids", a->ids)->required();
  app.add_option("--out", a->out)->required();
  app.add_option("--dtype", a->dtype);
  app.add_option("--mode", a->mode);
  app.add_option("--split", a->split);
  app.add_option("--out-dtype", a->out_dtype, "raw file element type: float32 | float64");
  app.add_option("--chunks", a->chunks, "prefill chunk sizes, fed one after another into the cache")->delimiter(',');
  app.add_flag("--train-mode", a->train_mode, "run the forward with the model in training mode (no gradients)");
  return [=]() {
    auto dev = hyla::testkit::test_device();
    auto m = hyla::model::load_causal_lm(a->model, dev, hyla::model::dtype_from_name(a->dtype));
    if (a->train_mode) m->train();
    auto ids = parse_ids(a->ids).to(dev);
    torch::NoGradGuard ng;
    torch::Tensor logits;
    if (a->mode == "full") {
      logits = m->forward(ids);
    } else {
      // Prefill the first `split` tokens (or the --chunks one after another, each
      // continuing from the cache), then feed the rest one at a time.
      auto cache = m->new_cache();
      hyla::model::ForwardOptions fo;
      fo.cache = &cache;
      std::vector<torch::Tensor> parts;
      auto chunks = a->chunks.empty() ? std::vector<int64_t>{std::max<int64_t>(1, a->split)} : a->chunks;
      int64_t t = 0;
      for (int64_t c : chunks) {
        HYLA_CHECK(c > 0 && t + c <= ids.size(1), "--chunks must be positive and fit in the {} ids", ids.size(1));
        parts.push_back(m->forward(ids.narrow(1, t, c), fo));
        t += c;
      }
      for (; t < ids.size(1); ++t) parts.push_back(m->forward(ids.narrow(1, t, 1), fo));
      logits = torch::cat(parts, 1);
    }
    write_raw(a->out, logits, hyla::model::dtype_from_name(a->out_dtype));
    std::printf("%s\n", nlohmann::json({{"shape", logits.sizes().vec()}}).dump().c_str());
    return 0;
  };
});

hyla::cli::Register gen("lm-generate", "greedy ids after --ids (prints JSON)", [](CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--model", a->model)->required();
  app.add_option("--ids", a->ids)->required();
  app.add_option("-n", a->n);
  app.add_option("--dtype", a->dtype);
  app.add_flag("--eager", a->eager, "growing cache, no static shapes or CUDA graph (the reference path)");
  return [=]() {
    auto dev = hyla::testkit::test_device();
    auto m = hyla::model::load_causal_lm(a->model, dev, hyla::model::dtype_from_name(a->dtype));
    hyla::model::GenerateOptions go;
    go.max_new_tokens = a->n;
    go.static_shapes = go.cuda_graph = !a->eager;
    auto r = hyla::model::generate(m, parse_ids(a->ids).to(dev), go);
    // Which path ran, for the tests that compare them (stderr: stdout is the ids).
    std::fprintf(stderr, "decode path: %s on %s\n",
                 a->eager ? "eager" : (r.cuda_graph ? "static+cuda-graph" : "static"), dev.str().c_str());
    std::vector<std::vector<int64_t>> rows;
    for (int64_t b = 0; b < r.tokens.size(0); ++b) {
      auto row = r.tokens[b].contiguous();
      rows.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    }
    std::printf("%s\n", nlohmann::json(rows).dump().c_str());
    return 0;
  };
});

}  // namespace
