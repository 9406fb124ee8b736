// `mambawave train --gpus N`: one training process per GPU, started and watched by this one.
#pragma once

#include <string>

namespace mw::cli {

// Runs this same command line once per GPU, each child with `--rank R --world-size N
// --rendezvous DIR` added and CUDA_VISIBLE_DEVICES set to its own GPU (the R-th entry of this
// process's CUDA_VISIBLE_DEVICES when that is set). Rank 0 writes to this terminal; rank R > 0
// to `log_dir`/rankR.log. The children run in their own process group: Ctrl-C here is passed
// on once, so that all of them stop at the same step and checkpoint. When one child fails the
// others are stopped (they would wait for it forever). Returns the exit code to report: 0 when
// all succeeded, else the first failure's (130 when they were interrupted).
int run_ranks(int gpus, const std::string& log_dir);

} // namespace mw::cli
