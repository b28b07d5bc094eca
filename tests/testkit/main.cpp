// `hyla_testkit`: a test-only binary the pytest oracle tests drive. Each area adds a
// subcommand in its own tests/testkit/<area>.cpp (via hyla::cli::Register), typically
// "read inputs from a safetensors file, run one hyla function, write outputs", so the
// Python side can compare against transformers / tokenizers / fla.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "../../tools/hyla/command.h"
#include "hyla/util/error.h"

namespace hyla::cli {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace hyla::cli

int main(int argc, char** argv) {
  CLI::App app{"hyla_testkit: test-only entry points for the oracle tests"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions;
  for (auto& c : hyla::cli::registry()) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    actions.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
