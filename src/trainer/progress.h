// A one-line progress report: on a terminal a bar redrawn in place with the step, loss, learning rate,
// tokens/s and the time left; elsewhere (a log file, CI) a plain line every `every` steps and at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mlxd::trainer {

class progress {
 public:
  // `first_step` is where this process started (a resumed run's ETA counts only its own steps).
  progress(std::FILE* out, int64_t first_step, int64_t total_steps, int64_t every);
  void report(int64_t step, double loss, double lr, double tokens_per_s);
  // Prints a message on its own line (after the bar, if one is drawn).
  void note(const std::string& message);
  // Ends the bar's line.
  void finish();

 private:
  std::FILE* out_;
  bool tty_;
  bool drawn_ = false;
  int64_t first_, total_, every_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

}  // namespace mlxd::trainer
