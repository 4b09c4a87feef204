// The command reward: a user program scores a batch, JSON lines in, one number per line out.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "mlxd/rlhf/rewards.h"
#include "run_command.h"

namespace mlxd::rlhf {
namespace {

constexpr size_t kMaxOutput = size_t{64} << 20;
constexpr double kMaxTimeout = 86400;  // a day: keeps the deadline arithmetic far from overflow

std::string quoted(const std::string& s, size_t limit) {
  return "\"" + (s.size() > limit ? s.substr(0, limit) + "..." : s) + "\"";
}

// The whole of `line`, trimmed of blanks, as a number (strtod's forms, including nan and inf).
bool parse_number(std::string line, double& value) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos) return false;
  line = line.substr(first, line.find_last_not_of(" \t\r") + 1 - first);
  char* end = nullptr;
  errno = 0;
  value = std::strtod(line.c_str(), &end);
  return end == line.c_str() + line.size() && errno != ERANGE;
}

class command_reward final : public reward_function {
 public:
  command_reward(std::vector<std::string> argv, double timeout_s)
      : argv_(std::move(argv)), timeout_s_(timeout_s) {
    if (argv_.empty() || argv_[0].empty()) throw std::invalid_argument("[command reward] no command to run");
    if (!(timeout_s_ > 0 && timeout_s_ <= kMaxTimeout))
      throw std::invalid_argument("[command reward] timeout_s must be in (0, 86400]");
    for (size_t i = 0; i < argv_.size(); ++i) name_ += (i ? " " : "") + argv_[i];
  }

  std::vector<double> score(std::span<const reward_sample> samples) const override {
    if (samples.empty()) return {};
    std::string input;
    for (const reward_sample& s : samples) {
      const nlohmann::json line = {{"prompt", s.prompt}, {"completion", s.completion}};
      input += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    const std::string who = "[command reward] `" + name_ + "`";
    detail::command_result r;
    try {
      r = detail::run_command(argv_, input, timeout_s_, kMaxOutput);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(who + ": " + e.what());
    }
    if (r.timed_out) throw std::runtime_error(who + " timed out after " + seconds() + " s and was killed");
    const std::string err = r.err_tail.empty() ? "" : "; its stderr ends: " + r.err_tail;
    if (r.signal != 0)
      throw std::runtime_error(who + " was killed by signal " + std::to_string(r.signal) + err);
    if (r.exit_code != 0)
      throw std::runtime_error(who + " exited with status " + std::to_string(r.exit_code) + err);
    std::vector<std::string> lines;
    size_t begin = 0;
    while (begin < r.out.size()) {
      const size_t end = r.out.find('\n', begin);
      lines.push_back(r.out.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
      begin = end == std::string::npos ? r.out.size() : end + 1;
    }
    if (lines.size() != samples.size()) {
      throw std::runtime_error(who + " printed " + std::to_string(lines.size()) + " lines for " +
                               std::to_string(samples.size()) +
                               " completions (one number per line expected)");
    }
    std::vector<double> out(samples.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      if (!parse_number(lines[i], out[i])) {
        throw std::runtime_error(who + ": line " + std::to_string(i + 1) +
                                 " of its output is not a number: " + quoted(lines[i], 80));
      }
    }
    return out;
  }

  std::string describe() const override { return "command(" + name_ + ")"; }

 private:
  std::string seconds() const {
    std::string s = std::to_string(timeout_s_);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
  }

  std::vector<std::string> argv_;
  double timeout_s_;
  std::string name_;
};

}  // namespace

std::unique_ptr<reward_function> make_command_reward(std::vector<std::string> argv, double timeout_s) {
  return std::make_unique<command_reward>(std::move(argv), timeout_s);
}

}  // namespace mlxd::rlhf
