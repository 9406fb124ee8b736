#include "standalone/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mw::cli {

namespace {

constexpr int kBarCells = 30;
constexpr double kRedrawSeconds = 0.1;

std::string clock_text(double seconds) {
    const long total = std::lround(std::max(seconds, 0.0));
    char text[32];
    if (total >= 3600)
        std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
    else
        std::snprintf(text, sizeof text, "%ld:%02ld", total / 60, total % 60);
    return text;
}

} // namespace

ProgressBar::ProgressBar(std::string label, double total_audio_seconds)
    : label_(std::move(label)),
      total_audio_seconds_(total_audio_seconds),
      enabled_(isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(double done_audio_seconds) {
    if (!enabled_) return;
    const Clock::time_point now = Clock::now();
    if (drawn_ && std::chrono::duration<double>(now - last_draw_).count() < kRedrawSeconds) return;
    last_draw_ = now;
    draw(done_audio_seconds);
}

void ProgressBar::draw(double done_audio_seconds) {
    const double wall_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    if (!(total_audio_seconds_ > 0)) {
        // a length not known ahead (a file whose header does not give it): what is done so far
        std::fprintf(stderr, "\r%s %s of audio (length not known ahead)  %7.1fx real time\033[K", label_.c_str(),
                     clock_text(done_audio_seconds).c_str(), done_audio_seconds / std::max(wall_seconds, 1e-9));
        std::fflush(stderr);
        drawn_ = true;
        return;
    }
    const double fraction = std::clamp(done_audio_seconds / total_audio_seconds_, 0.0, 1.0);
    const double speed = done_audio_seconds / std::max(wall_seconds, 1e-9);  // x real time
    const double eta_seconds = (total_audio_seconds_ - done_audio_seconds) / std::max(speed, 1e-9);
    const int filled = int(fraction * kBarCells);
    const std::string bar = std::string(size_t(filled), '#') + std::string(size_t(kBarCells - filled), '-');
    std::fprintf(stderr, "\r%s [%s] %3d%%  %7.1fx real time  ETA %s\033[K", label_.c_str(),
                 bar.c_str(), int(fraction * 100), speed,
                 done_audio_seconds > 0 ? clock_text(eta_seconds).c_str() : "?");
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressBar::finish() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
}

} // namespace mw::cli
