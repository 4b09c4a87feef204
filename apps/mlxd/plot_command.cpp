#include <cstdio>

#include "commands.h"
#include "mlxd/plot/curves.h"

namespace mlxd::app {

void add_plot_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("plot", "draw the loss and learning-rate curves of a training run (SVG or PNG)");
  auto log_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto options = std::make_shared<plot::plot_options>();
  cmd->add_option("log", *log_path, "the run's metrics log (JSONL, one line per step)")->required();
  cmd->add_option("-o,--out", *out, "picture to write, .svg or .png (default: the log's name with .svg)");
  cmd->add_option("--title", options->title, "title above the curves (default: the log's file name)");
  cmd->add_option("--width", options->width, "width in pixels")->check(CLI::Range(200, 4000));
  cmd->add_option("--height", options->height, "height in pixels")->check(CLI::Range(200, 4000));
  cmd->callback([=] {
    const plot::run_log log = plot::read_run_log(*log_path);
    const auto slash = log_path->find_last_of('/');
    const std::string base = slash == std::string::npos ? *log_path : log_path->substr(slash + 1);
    if (cmd->count("--title") == 0) options->title = base;
    std::string path = *out;
    if (path.empty()) {
      const auto dot = base.find_last_of('.');
      const std::string dir = slash == std::string::npos ? "" : log_path->substr(0, slash + 1);
      path = dir + (dot == std::string::npos ? base : base.substr(0, dot)) + ".svg";
    }
    plot::plot_run(log, path, *options);
    std::printf(
        "wrote %s: %zu training losses, %zu validation losses, %zu learning rates, %d skipped steps\n",
        path.c_str(), log.loss.size(), log.val_loss.size(), log.lr.size(), log.n_skipped);
  });
}

}  // namespace mlxd::app
