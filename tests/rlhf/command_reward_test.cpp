// The command reward with real programs: a Python scorer reading the JSON lines, and shell commands that
// fail in each way the reward must name (too few or many lines, a non-number, a non-zero exit, a signal, a
// missing program, a timeout), plus the plumbing cases (a program that never reads its stdin, output larger
// than a pipe's buffer while input is still being written).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

std::vector<reward_sample> samples(size_t n) {
  std::vector<reward_sample> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back({"prompt " + std::to_string(i), "completion " + std::to_string(i), 2});
  return out;
}

std::unique_ptr<reward_function> sh(const std::string& script, double timeout_s = 20) {
  return make_command_reward({"sh", "-c", script}, timeout_s);
}

// The message of the runtime_error `f` throws on `s`.
std::string error_of(const reward_function& f, const std::vector<reward_sample>& s) {
  try {
    f.score(s);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(command_reward, python_scorer_reads_prompt_and_completion) {
  const auto f = make_command_reward({"python3", MLXD_REWARD_SCRIPTS "/words_plus_prompt.py"});
  const std::vector<reward_sample> s = {{"the lord said", "let there be light", 4},
                                        {"a prompt", "one", 1},
                                        {"lord", "say \"yes\"\nthen é", 5},
                                        {"", "", 0}};
  EXPECT_EQ(f->score(s), (std::vector<double>{4.5, 1, 4.75, 0}));
  EXPECT_EQ(f->describe(), "command(python3 " MLXD_REWARD_SCRIPTS "/words_plus_prompt.py)");
}

TEST(command_reward, numbers_in_any_strtod_form_and_nan) {
  const auto f = sh("cat >/dev/null; printf ' 1.5 \\n-2e-1\\r\\nnan\\n'");
  const std::vector<double> r = f->score(samples(3));
  EXPECT_EQ(r[0], 1.5);
  EXPECT_EQ(r[1], -0.2);
  EXPECT_TRUE(std::isnan(r[2]));
}

TEST(command_reward, wrong_line_counts_and_non_numbers_are_named) {
  EXPECT_EQ(
      error_of(*sh("cat >/dev/null; echo 1"), samples(3)),
      "[command reward] `sh -c cat >/dev/null; echo 1` printed 1 lines for 3 completions (one number per "
      "line expected)");
  EXPECT_NE(error_of(*sh("cat >/dev/null; printf '1\\n2\\n3\\n'"), samples(2)).find("printed 3 lines for 2"),
            std::string::npos);
  EXPECT_NE(error_of(*sh("cat >/dev/null; printf '1\\n\\n3\\n'"), samples(3))
                .find(": line 2 of its output is not a number: \"\""),
            std::string::npos);
  EXPECT_NE(error_of(*sh("cat >/dev/null; printf '1\\n2\\n0.5 points\\n'"), samples(3))
                .find(": line 3 of its output is not a number: \"0.5 points\""),
            std::string::npos);
}

TEST(command_reward, failures_name_the_status_signal_and_stderr) {
  EXPECT_EQ(
      error_of(*sh("cat >/dev/null; echo 'no model here' >&2; exit 3"), samples(1)),
      "[command reward] `sh -c cat >/dev/null; echo 'no model here' >&2; exit 3` exited with status 3; its "
      "stderr ends: no model here\n");
  EXPECT_NE(error_of(*sh("kill -9 $$"), samples(1)).find("was killed by signal 9"), std::string::npos);
  const std::string missing = error_of(*make_command_reward({"/nonexistent/score"}), samples(1));
  EXPECT_NE(missing.find("cannot run /nonexistent/score: No such file or directory"), std::string::npos)
      << missing;
}

TEST(command_reward, timeout_kills_the_whole_process_group) {
  const auto start = std::chrono::steady_clock::now();
  // The background sleep holds stdout open too: only killing the group ends it.
  EXPECT_EQ(error_of(*sh("sleep 30 & sleep 30", 0.3), samples(2)),
            "[command reward] `sh -c sleep 30 & sleep 30` timed out after 0.3 s and was killed");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(command_reward, a_program_that_ignores_its_stdin_still_scores) {
  std::vector<reward_sample> s = samples(2);
  s[0].completion.assign(4 << 20, 'x');  // far more than a pipe holds: the write meets a closed pipe
  EXPECT_EQ(sh("echo 1; echo 2")->score(s), (std::vector<double>{1, 2}));
}

TEST(command_reward, output_beyond_a_pipe_buffer_while_input_flows) {
  const auto r = sh("awk '{ print NR / 4 }'")->score(samples(100000));
  ASSERT_EQ(r.size(), 100000u);
  EXPECT_EQ(r[0], 0.25);
  EXPECT_EQ(r[99999], 25000);
}

TEST(command_reward, an_empty_batch_runs_nothing) {
  EXPECT_TRUE(make_command_reward({"/nonexistent/score"})->score({}).empty());
}

TEST(command_reward, bad_construction) {
  EXPECT_THROW(make_command_reward({}), std::invalid_argument);
  EXPECT_THROW(make_command_reward({"sh"}, 0), std::invalid_argument);
  EXPECT_THROW(make_command_reward({"sh"}, NAN), std::invalid_argument);
  EXPECT_THROW(make_command_reward({"sh"}, 1e300), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::rlhf
