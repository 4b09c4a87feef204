// The one mlxd binary: parses flags and hands each subcommand to the libraries.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "mlxd/core/thread_pool.h"

int main(int argc, char** argv) {
  CLI::App app{"mlxd: distributed inference, serving, training and RLHF for Llama-family models"};
  app.set_version_flag("--version", "mlxd " MLXD_VERSION);
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "kernel threads (default: MLXD_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1024));
  bool pin = false;
  app.add_flag("--pin-threads", pin,
               "run kernel thread i on the i-th CPU (callers on the first): local pipeline stages then hand "
               "off on one core");
  app.parse_complete_callback([&] {
    if (threads > 0) mlxd::set_num_threads(threads);
    if (pin) mlxd::pin_threads();
  });
  mlxd::app::add_info_command(app);
  mlxd::app::add_inspect_command(app);
  mlxd::app::add_tokenize_commands(app);
  mlxd::app::add_tokenizer_train_command(app);
  mlxd::app::add_chat_template_command(app);
  mlxd::app::add_model_commands(app);
  mlxd::app::add_chat_command(app);
  mlxd::app::add_launch_command(app);
  mlxd::app::add_bench_commands(app);
  mlxd::app::add_quantize_command(app);
  mlxd::app::add_perplexity_command(app);
  mlxd::app::add_convert_command(app);
  mlxd::app::add_fuse_command(app);
  mlxd::app::add_dist_commands(app);
  mlxd::app::add_serve_command(app);
  mlxd::app::add_train_command(app);
  mlxd::app::add_rlhf_command(app);
  mlxd::app::add_plot_command(app);
  try {
    app.parse(mlxd::app::command_line(argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlxd: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
