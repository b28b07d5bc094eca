// `hyla_testkit data-batches`: the windows a BatchSampler yields, as JSON, so the
// pytest oracle can check them against the shard files read with numpy.
#include <iostream>

#include "../../tools/hyla/command.h"
#include "hyla/data/batch_sampler.h"

namespace {

hyla::cli::Register reg("data-batches", "dump sampler batches of a prepared corpus as JSON",
                        [](CLI::App& app) -> std::function<int()> {
  struct Args {
    std::string corpus, split = "train";
    hyla::data::SamplerOptions opt;
    int64_t steps = 1, resume_epoch = -1, resume_index = 0;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--corpus", a->corpus)->required();
  app.add_option("--split", a->split);
  app.add_option("--seq-len", a->opt.seq_len);
  app.add_option("--batch", a->opt.batch_size);
  app.add_option("--seed", a->opt.seed);
  app.add_option("--rank", a->opt.rank);
  app.add_option("--world", a->opt.world_size);
  app.add_option("--steps", a->steps);
  app.add_option("--resume-epoch", a->resume_epoch);
  app.add_option("--resume-index", a->resume_index);
  return [a] {
    auto ds = hyla::data::TokenDataset::open(a->corpus, a->split);
    hyla::data::BatchSampler s(ds, a->opt);
    if (a->resume_epoch >= 0) s.set_position({a->resume_epoch, a->resume_index});
    nlohmann::json out = nlohmann::json::array();
    for (int64_t i = 0; i < a->steps; ++i) {
      auto b = s.next();
      auto in = b.input.contiguous(), tg = b.target.contiguous();
      std::vector<int64_t> iv(in.data_ptr<int64_t>(), in.data_ptr<int64_t>() + in.numel());
      std::vector<int64_t> tv(tg.data_ptr<int64_t>(), tg.data_ptr<int64_t>() + tg.numel());
      out.push_back({{"position", b.position.to_json()}, {"input", iv}, {"target", tv},
                     {"next", s.position().to_json()}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  };
});

}  // namespace
