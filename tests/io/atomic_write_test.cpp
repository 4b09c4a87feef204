// save_safetensors replaces files atomically: no temporary file survives, and a failed write leaves the
// previous file as it was.
#include <signal.h>
#include <sys/resource.h>

#include <random>

#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io_test_util.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {
namespace {

using test::random_array;

TEST(io_atomic_write, leaves_only_the_target_and_replaces_it) {
  test::temp_dir dir;
  std::mt19937 rng(11);
  const std::map<std::string, array> first = {{"w", random_array({3, 3}, dtype::f32, rng)}};
  const std::map<std::string, array> second = {{"w", random_array({2}, dtype::i32, rng)}};
  save_safetensors(dir / "m.safetensors", first);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"m.safetensors"}));
  save_safetensors(dir / "m.safetensors", second);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"m.safetensors"}));
  EXPECT_EQ(test::bytes_of(load_safetensors(dir / "m.safetensors").tensors.at("w")),
            test::bytes_of(second.at("w")));
}

TEST(io_atomic_write, missing_directory_is_an_io_error) {
  test::temp_dir dir;
  const std::map<std::string, array> tensors = {{"w", array(1.0f)}};
  const auto target = dir / "no_such_dir" / "m.safetensors";
  const std::string message = test::io_error_of([&] { save_safetensors(target, tensors); });
  EXPECT_EQ(message.rfind("safetensors: " + target.string() + ": cannot create temporary file", 0), 0u)
      << message;
  EXPECT_TRUE(dir.list().empty());
}

TEST(io_atomic_write, uncommitted_file_is_removed_and_the_target_kept) {
  test::temp_dir dir;
  test::write_bytes(dir / "t.bin", "old contents");
  {
    detail::atomic_file file(dir / "t.bin", "test");
    file.write("new", 3);
    EXPECT_TRUE(std::filesystem::exists(file.temp_path()));
    EXPECT_EQ(file.temp_path().parent_path(), dir.path());
  }
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"t.bin"}));
  EXPECT_EQ(test::read_bytes(dir / "t.bin"), "old contents");
}

TEST(io_atomic_write, committed_file_replaces_the_target) {
  test::temp_dir dir;
  test::write_bytes(dir / "t.bin", "old contents");
  detail::atomic_file file(dir / "t.bin", "test");
  file.write("new", 3);
  file.commit();
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"t.bin"}));
  EXPECT_EQ(test::read_bytes(dir / "t.bin"), "new");
}

// A disk that fills up mid-write: a file size limit makes write() fail with EFBIG partway through the data.
// It runs in a forked child (a "fast" gtest death test) so the limit does not touch the rest of the tests;
// the child checks the folder right after the failure and the parent checks it again.
TEST(io_atomic_write, failed_write_keeps_the_old_file_and_removes_the_temp) {
  GTEST_FLAG_SET(death_test_style, "fast");
  test::temp_dir dir;
  std::mt19937 rng(12);
  const std::map<std::string, array> old_tensors = {{"w", random_array({4}, dtype::f32, rng)}};
  save_safetensors(dir / "m.safetensors", old_tensors);
  const std::string old_bytes = test::read_bytes(dir / "m.safetensors");
  const std::map<std::string, array> big = {{"w", random_array({1 << 18}, dtype::f32, rng)}};  // 1 MiB

  const auto fail_a_write = [&] {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const std::string message = test::io_error_of([&] { save_safetensors(dir / "m.safetensors", big); });
    const bool ok = message.find("write failed: File too large") != std::string::npos &&
                    dir.list() == std::vector<std::string>{"m.safetensors"} &&
                    test::read_bytes(dir / "m.safetensors") == old_bytes;
    std::_Exit(ok ? 0 : 1);
  };
  EXPECT_EXIT(fail_a_write(), ::testing::ExitedWithCode(0), "");
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"m.safetensors"}));
  EXPECT_EQ(test::read_bytes(dir / "m.safetensors"), old_bytes);
}

}  // namespace
}  // namespace mlxd
