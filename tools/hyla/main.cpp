// `hyla`: the command-line tool. Parses arguments, runs one subcommand, turns a
// hyla::Error into one line on stderr and exit code 1.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "command.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::cli {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace hyla::cli

int main(int argc, char** argv) {
  CLI::App app{"hyla: turn a Transformer into a fast hybrid (attention + linear RNN) model"};
  app.require_subcommand(1);
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "only warnings and errors");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  std::function<int()> action;
  auto& cmds = hyla::cli::registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    actions.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  hyla::log::set_level(quiet ? hyla::log::Level::Warn
                             : verbose ? hyla::log::Level::Debug : hyla::log::Level::Info);
  try {
    for (auto& [sub, act] : actions)
      if (sub->parsed()) return act();
  } catch (const hyla::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
