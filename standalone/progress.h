// A one-line progress bar on stderr for long renders:
//   render [##########----------]  52%   31.4x real time   ETA 0:04
// Work is counted in seconds of audio, so the bar also shows the speed. Drawn only when
// stderr is a terminal (nothing in pipes, logs or tests), at most ten times a second.
#pragma once

#include <chrono>
#include <string>

namespace mw::cli {

class ProgressBar {
public:
    // total_audio_seconds 0: a length not known ahead (the bar then counts what is done)
    ProgressBar(std::string label, double total_audio_seconds);
    ~ProgressBar();  // clears the line if finish() was not called
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void update(double done_audio_seconds);
    // Clears the bar's line so that a summary can follow.
    void finish();

private:
    using Clock = std::chrono::steady_clock;
    void draw(double done_audio_seconds);

    std::string label_;
    double total_audio_seconds_;
    bool enabled_;
    bool drawn_ = false;
    Clock::time_point start_ = Clock::now();
    Clock::time_point last_draw_{};
};

} // namespace mw::cli
