// A process killed with SIGKILL in the middle of saving a checkpoint: the interrupted checkpoint is ignored
// and the previous one loads intact. The child stops at a known point through checkpoint_options::after_file
// (before the manifest is written), so the outcome does not depend on timing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "checkpoint_support.h"
#include "mlxd/train/checkpoint.h"
#include "support/temp_dir.h"

namespace mlxd::train {
namespace {

namespace fs = std::filesystem;
using ckpt_test::expect_same_state;
using ckpt_test::make_state;
using mlxd::test::temp_dir;

// Forks a child that saves `state` under `root` and, once `stop_after` is in place, tells the parent through
// a pipe and waits to be killed. Returns the child's pid and the read end of the pipe.
std::pair<pid_t, int> fork_saver(const fs::path& root, const checkpoint_state& state,
                                 std::string stop_after) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test that failed or timed out
    ::close(fds[0]);
    checkpoint_options options;
    options.after_file = [&](std::string_view file) {
      if (file != stop_after) return;
      const char byte = 1;
      if (::write(fds[1], &byte, 1) != 1) ::_exit(4);
      for (;;) ::pause();
    };
    try {
      save_checkpoint(root, state, options);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

// Kills the child at the end of the scope when a failed assertion returned before kill_and_reap.
struct child_guard {
  pid_t pid;
  ~child_guard() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

void kill_and_reap(child_guard& child) {
  const pid_t pid = child.pid;
  child.pid = -1;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own with status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(CheckpointKill, KilledBeforeTheManifestResumesFromThePrevious) {
  temp_dir root("ckpt_kill-manifest");
  const checkpoint_state first = make_state(10, 100);
  save_checkpoint(root.path(), first);
  auto [pid, pipe_fd] = fork_saver(root.path(), make_state(20, 100), "optimizer.safetensors");
  child_guard child{pid};
  char byte = 0;
  ASSERT_EQ(::read(pipe_fd, &byte, 1), 1) << "the child did not reach the stop point";
  ::close(pipe_fd);
  kill_and_reap(child);

  const fs::path killed = root.path() / "step-0000000020";
  EXPECT_TRUE(fs::exists(killed / "weights.safetensors"));
  EXPECT_TRUE(fs::exists(killed / "optimizer.safetensors"));
  EXPECT_FALSE(fs::exists(killed / "manifest.json"));
  ASSERT_EQ(latest_complete_checkpoint(root.path()), root.path() / "step-0000000010");
  expect_same_state(first, load_checkpoint(*latest_complete_checkpoint(root.path())));

  // Saving that step again works and replaces the debris.
  save_checkpoint(root.path(), make_state(20, 100));
  EXPECT_EQ(latest_complete_checkpoint(root.path()), killed);
}

TEST(CheckpointKill, KilledWhileWritingALargeFile) {
  temp_dir root("ckpt_kill-write");
  const checkpoint_state first = make_state(1, 100);
  save_checkpoint(root.path(), first);
  // 32 MiB of weights: the parent kills the child as soon as a temporary file appears in the new directory.
  checkpoint_state big = make_state(2, 128 * 1024);
  auto [pid, pipe_fd] = fork_saver(root.path(), big, "optimizer.safetensors");
  child_guard child{pid};
  const fs::path dir = root.path() / "step-0000000002";
  bool saw_temp = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!saw_temp && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().find(".tmp-") != std::string::npos) saw_temp = true;
    }
    if (!saw_temp) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_TRUE(saw_temp) << "no temporary file appeared";
  kill_and_reap(child);
  ::close(pipe_fd);

  // Usually the kill lands inside the weights file and leaves its temporary file behind; either way the
  // directory has no manifest.
  int temps = 0;
  for (const auto& e : fs::directory_iterator(dir))
    temps += e.path().filename().string().find(".tmp-") != std::string::npos;
  RecordProperty("temporary_files_left", temps);
  EXPECT_FALSE(fs::exists(dir / "manifest.json"));
  EXPECT_FALSE(is_complete_checkpoint(dir));
  ASSERT_EQ(latest_complete_checkpoint(root.path()), root.path() / "step-0000000001");
  expect_same_state(first, load_checkpoint(root.path() / "step-0000000001"));
}

}  // namespace
}  // namespace mlxd::train
