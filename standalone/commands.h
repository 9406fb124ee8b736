// The `mambawave` subcommands. Each add_*_command registers one subcommand on the app: its
// options, its --help text and the callback that runs it. Callbacks report failures by
// throwing: mw::cli::UsageError for bad arguments (exit code 2), anything else for runtime
// failures (exit code 1); main() turns them into one `mambawave: error: ...` line.
#pragma once

#include <CLI/CLI.hpp>

namespace mw::cli {

void add_info_command(CLI::App& app);      // cmd_info.cpp
void add_run_command(CLI::App& app);       // cmd_run.cpp
void add_render_command(CLI::App& app);    // cmd_render.cpp
void add_generate_command(CLI::App& app);  // cmd_generate.cpp
void add_synth_command(CLI::App& app);     // cmd_synth.cpp
void add_init_command(CLI::App& app);      // cmd_init.cpp
void add_bench_command(CLI::App& app);     // cmd_bench.cpp
void add_capture_signal_command(CLI::App& app);  // cmd_capture_signal.cpp
void add_train_command(CLI::App& app);     // cmd_train.cpp
void add_eval_command(CLI::App& app);      // cmd_eval.cpp
void add_live_command(CLI::App& app);      // cmd_live.cpp
void add_devices_command(CLI::App& app);   // cmd_devices.cpp

} // namespace mw::cli
