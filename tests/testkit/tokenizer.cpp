// Test-only entry points for the tokenizer oracle tests and the speed benchmark.
//   tokenizer-encode: {"texts": [...], "decode": [[ids]...]} -> encodings and decodings as JSON.
//   tokenizer-bench:  times encode of one text file in this process (one thread).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../../tools/hyla/command.h"
#include "hyla/io/atomic_file.h"
#include "hyla/io/tokenizer.h"

namespace {
using json = nlohmann::json;

int encode_cmd(const std::string& tok_path, const std::string& in_path,
               const std::string& out_path) {
  auto tok = hyla::io::Tokenizer::load(tok_path);
  json in = json::parse(hyla::io::read_text_file(in_path));
  json out;
  out["encode"] = json::array();
  out["encode_special"] = json::array();
  for (const auto& t : in.value("texts", json::array())) {
    std::string text = t.get<std::string>();
    out["encode"].push_back(tok->encode(text, false));
    out["encode_special"].push_back(tok->encode(text, true));
  }
  out["decode"] = json::array();
  out["decode_skip"] = json::array();
  for (const auto& ids : in.value("decode", json::array())) {
    auto v = ids.get<std::vector<int32_t>>();
    out["decode"].push_back(tok->decode(v, false));
    out["decode_skip"].push_back(tok->decode(v, true));
  }
  out["vocab_size"] = tok->vocab_size();
  out["bos"] = tok->bos_id() ? json(*tok->bos_id()) : json(nullptr);
  out["eos"] = tok->eos_id() ? json(*tok->eos_id()) : json(nullptr);
  hyla::io::write_text_atomic(out_path, out.dump(-1, ' ', false, json::error_handler_t::replace));
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int bench_cmd(const std::string& tok_path, const std::string& in_path, int repeat) {
  auto t0 = std::chrono::steady_clock::now();
  auto tok = hyla::io::Tokenizer::load(tok_path);
  double load_s = seconds_since(t0);
  std::string text = hyla::io::read_text_file(in_path);
  std::vector<std::string> lines;
  std::istringstream ls(text);
  for (std::string l; std::getline(ls, l);) lines.push_back(l + "\n");
  json runs = json::array();
  size_t tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    t0 = std::chrono::steady_clock::now();
    tokens = tok->encode(text).size();
    double whole = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    size_t line_tokens = 0;
    for (const auto& l : lines) line_tokens += tok->encode(l).size();
    runs.push_back({{"whole_s", whole}, {"lines_s", seconds_since(t0)},
                    {"line_tokens", line_tokens}});
  }
  json out{{"bytes", text.size()}, {"lines", lines.size()}, {"tokens", tokens},
           {"load_s", load_s}, {"runs", runs}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

hyla::cli::Register enc("tokenizer-encode", "encode/decode a batch with hyla's tokenizer",
                        [](CLI::App& app) {
  auto tok = std::make_shared<std::string>(), in = std::make_shared<std::string>(),
       out = std::make_shared<std::string>();
  app.add_option("--tokenizer", *tok)->required();
  app.add_option("--input", *in)->required();
  app.add_option("--out", *out)->required();
  return [=]() { return encode_cmd(*tok, *in, *out); };
});

hyla::cli::Register bench("tokenizer-bench", "time hyla's encode on a text file",
                          [](CLI::App& app) {
  auto tok = std::make_shared<std::string>(), in = std::make_shared<std::string>();
  auto repeat = std::make_shared<int>(3);
  app.add_option("--tokenizer", *tok)->required();
  app.add_option("--input", *in)->required();
  app.add_option("--repeat", *repeat);
  return [=]() { return bench_cmd(*tok, *in, *repeat); };
});

}  // namespace
