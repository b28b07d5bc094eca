// Subcommands register themselves here, each from its own cmd_*.cpp, so adding a
// command never edits main.cpp.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hyla::cli {

struct Command {
  std::string name, help;
  // Adds options to `sub` and returns the action to run when the command is chosen.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& registry();

struct Register {
  Register(std::string name, std::string help,
           std::function<std::function<int()>(CLI::App&)> setup) {
    registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace hyla::cli
