#include "progress.h"

#include <unistd.h>

#include <cmath>

namespace mlxd::trainer {

std::string format_duration(double seconds) {
  const int64_t s = std::llround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

progress::progress(std::FILE* out, int64_t first_step, int64_t total_steps, int64_t every)
    : out_(out),
      tty_(out && ::isatty(::fileno(out))),
      first_(first_step),
      total_(total_steps),
      every_(every) {}

void progress::report(int64_t step, double loss, double lr, double tokens_per_s) {
  if (!out_ || (!tty_ && step % every_ != 0 && step != total_)) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = step - first_;
  const std::string eta =
      done > 0 ? format_duration(elapsed / static_cast<double>(done) * static_cast<double>(total_ - step))
               : "?";
  char stats[160];
  std::snprintf(stats, sizeof stats, "step %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s  ETA %s",
                static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tokens_per_s,
                eta.c_str());
  if (!tty_) {
    std::fprintf(out_, "%s\n", stats);
  } else {
    constexpr int width = 30;
    const int filled = static_cast<int>(width * step / std::max<int64_t>(total_, 1));
    std::fprintf(out_, "\r[%s%s] %s\033[K", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), stats);
    drawn_ = true;
  }
  std::fflush(out_);
}

void progress::note(const std::string& message) {
  if (!out_) return;
  if (drawn_) std::fputc('\n', out_), drawn_ = false;
  std::fprintf(out_, "%s\n", message.c_str());
  std::fflush(out_);
}

void progress::finish() {
  if (out_ && drawn_) std::fputc('\n', out_), std::fflush(out_);
  drawn_ = false;
}

}  // namespace mlxd::trainer
