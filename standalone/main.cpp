// `mambawave`: the command-line face of the engine. main() only wires the subcommands and
// turns every failure into one line on stderr and an exit code:
//   0 success, 1 runtime failure (a bad model or audio file, I/O), 2 bad arguments,
//   130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: the job stopped cleanly (train: a checkpoint).
#include "standalone/cli_common.h"
#include "standalone/commands.h"
#include "kernels/fast.h"
#include "model/comm.h"
#include "model/engine.h"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int report(const std::string& message, int exit_code) {
    std::cerr << "mambawave: error: " << message << "\n";
    return exit_code;
}

// "see 'mambawave render --help'" for the subcommand that was being parsed, if any.
std::string help_hint(const CLI::App& app) {
    const auto parsed = app.get_subcommands();
    return parsed.empty() ? "see 'mambawave --help'"
                          : "see 'mambawave " + parsed.front()->get_name() + " --help'";
}

// CLI11 reports an unknown subcommand as "A subcommand is required"; name it instead.
void check_subcommand_name(CLI::App& app, int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        if (sub->get_name() == argv[1]) return;
        if (!names.empty()) names += ", ";
        names += sub->get_name();
    }
    throw mw::cli::UsageError("unknown subcommand '" + std::string(argv[1]) + "', expected one of: " +
                              names + " (see 'mambawave --help')");
}

// `mambawave --version`: the release, and what this build and machine run the models with.
std::string version_text() {
    std::string why;
    const bool cuda = mw::cuda_available(&why);
    std::string text = std::string("mambawave ") + MW_VERSION + "\n";
    const char* cap = std::getenv("MW_ISA");
    text += std::string("CPU kernels: ") + mw::kernels::to_string(mw::kernels::active_isa()) +
            (cap && *cap ? std::string(" (capped by MW_ISA=") + cap + ")"
                         : std::string(" (picked for this CPU; MW_ISA=avx2 or MW_ISA=baseline caps it)")) +
            "\n";
    text += "CUDA: " + (cuda ? "yes, " + mw::cuda_device_name() : "no: " + why) + "\n";
    text += std::string("NCCL (train --gpus N): ") + (mw::nccl_available() ? "yes" : "not in this build");
    return text;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"mambawave: Mamba state-space models running directly on raw audio.\n"
                 "Effects (an amp, a filter) process audio sample by sample; generators "
                 "continue audio one mu-law sample at a time."};
    app.name("mambawave");
    app.require_subcommand(1);
    app.set_version_flag("--version", version_text, "Print the version and what this build runs on (CPU kernels, CUDA, NCCL), then exit");
    app.footer("Examples:\n"
               "  mambawave info presets/ts9.safetensors\n"
               "  mambawave render -m presets/ts9.safetensors --in guitar.wav --out loud.wav "
               "--control drive=0.7\n"
               "  mambawave generate -m presets/digits_labelled.safetensors --label 7 --seconds 1.5 --out seven.wav\n"
               "Run 'mambawave SUBCOMMAND --help' for each subcommand's options.");

    mw::cli::add_info_command(app);
    mw::cli::add_run_command(app);
    mw::cli::add_render_command(app);
    mw::cli::add_generate_command(app);
    mw::cli::add_synth_command(app);
    mw::cli::add_init_command(app);
    mw::cli::add_bench_command(app);
    mw::cli::add_train_command(app);
    mw::cli::add_eval_command(app);
#if MW_HAVE_LIVE
    mw::cli::add_live_command(app);
    mw::cli::add_devices_command(app);
#endif
    mw::cli::add_capture_signal_command(app);

    mw::cli::catch_interrupts();
    try {
        check_subcommand_name(app, argc, argv);
        app.parse(argc, argv);  // the chosen subcommand's callback runs inside parse()
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        return report(std::string(e.what()) + " (" + help_hint(app) + ")", kExitUsage);
    } catch (const mw::cli::Interrupted& e) {
        return report(e.what(), mw::cli::interrupted_exit_code());  // 130 (Ctrl-C) or 143 (SIGTERM)
    } catch (const mw::cli::UsageError& e) {
        return report(e.what(), kExitUsage);
    } catch (const std::exception& e) {
        return report(e.what(), kExitFailure);
    }
    return 0;
}
