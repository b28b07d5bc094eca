// Chooses how to run a training job from the environment torchrun sets up: RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Without them (or WORLD_SIZE=1
// with no MASTER_ADDR) it is a single process and no process group is made.
#pragma once
#include <memory>

#include "hyla/train/parallel.h"

namespace hyla::dist {

std::shared_ptr<train::DataParallel> data_parallel_from_env(const train::Recipe& recipe);

}  // namespace hyla::dist
