#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "dist_commands.h"
#include "generation_flags.h"
#include "mlxd/io/file_text.h"
#include "mlxd/models/default_model.h"
#include "mlxd/serve/server.h"

namespace mlxd::app {
namespace {

serve::server* running = nullptr;

std::string read_key_file(const std::string& path) {
  const auto text = io::read_file(path);
  if (!text) throw std::invalid_argument("--api-key-file: cannot read " + path);
  std::string key = *text;
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) throw std::invalid_argument("--api-key-file: " + path + " holds no key");
  return key;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API, with a chat page at /");
  auto o = std::make_shared<serve::server_options>();
  auto key_file = std::make_shared<std::string>();
  auto max_body_mb = std::make_shared<int>(16);
  auto port_file = std::make_shared<std::string>();
  cmd->add_option("--model", o->model_path,
                  "model folder (Hugging Face) or .gguf file (default: the bundled model)");
  cmd->add_option("--tokenizer", o->tokenizer_path, "tokenizer folder or file (default: the model)");
  cmd->add_option("--model-name", o->model_name,
                  "the model id clients use (default: the folder or file name)");
  cmd->add_option("--host", o->host, "address to bind (default 127.0.0.1; 0.0.0.0 to expose)");
  cmd->add_option("--port", o->port, "port (default 8100; 0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--port-file", *port_file, "write the bound port to this file (useful with --port 0)");
  auto* key = cmd->add_option("--api-key", o->api_key,
                              "require \"Authorization: Bearer KEY\" (all but /health and /)");
  cmd->add_option("--api-key-file", *key_file, "read the API key from a file")->excludes(key);
  cmd->add_option("--cors", o->cors_origin, "allow cross-origin requests from this origin (\"*\": any)");
  cmd->add_option("--max-running", o->engine.max_running, "sequences generated at once (default 16)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-queued", o->engine.max_queued, "sequences waiting before 429 (default 64)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--prefill-chunk", o->engine.prefill_chunk, "prompt tokens per engine step (default 128)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-body-mb", *max_body_mb, "largest request body in MiB (default 16)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--http-threads", o->http_threads, "connections served at once (default 64)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--request-timeout", o->request_timeout_s,
                  "seconds a generation may run before it ends with a 504 error (default 600; 0: no limit)")
      ->check(CLI::Range(0.0, 1e9));
  add_mmap_flag(cmd, o->mmap);
  auto kv_dtype = std::make_shared<std::string>("f32");
  add_kv_dtype_flag(cmd, *kv_dtype);
  auto cluster = std::make_shared<cluster_flags>();
  add_cluster_flags(cmd, *cluster, true);
  auto cluster_port = std::make_shared<int>(-1);
  auto cluster_host = std::make_shared<std::string>("0.0.0.0");
  cmd->add_option(
         "--cluster-port", *cluster_port,
         "with --workers: where workers started with `mlxd worker --join` join (0: a free port, shown "
         "in /health)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--cluster-host", *cluster_host,
                  "address of --cluster-port (default 0.0.0.0: needs a cluster token)");
  auto join_wait = std::make_shared<double>(10.0);
  cmd->add_option("--join-wait", *join_wait,
                  "seconds a joined worker waits for no sequence to run; then running sequences re-prefill "
                  "on a plan that includes it")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->callback(
      [o, key_file, max_body_mb, port_file, cluster, kv_dtype, cluster_port, cluster_host, join_wait] {
        o->engine.kv_dtype = kv_dtype_of(*kv_dtype);
        if (*kv_dtype != "f32" && !cluster->workers.empty())
          throw std::invalid_argument("--kv-dtype is not supported with --workers");
        o->model_path = models::model_or_default(o->model_path);
        if (cluster->workers.empty() && *cluster_port >= 0)
          throw std::invalid_argument("--cluster-port needs --workers (at least one worker to start with)");
        if (!cluster->workers.empty()) {
          o->cluster = coordinator_options_of(*cluster);
          o->cluster->join_port = *cluster_port;
          o->cluster->join_host = *cluster_host;
          o->cluster->join_wait = std::chrono::milliseconds(static_cast<int64_t>(*join_wait * 1000));
        }
        if (!key_file->empty()) o->api_key = read_key_file(*key_file);
        o->max_body_bytes = static_cast<size_t>(*max_body_mb) << 20;
        serve::server s(*o);
        running = &s;
        std::signal(SIGINT, [](int) { running->stop(); });
        std::signal(SIGTERM, [](int) { running->stop(); });
        s.run([&](int port) {
          std::printf("mlxd serve: listening on http://%s:%d (model %s loading)\n", o->host.c_str(), port,
                      o->model_path.c_str());
          std::fflush(stdout);
          if (!port_file->empty()) {
            const std::string tmp = *port_file + ".tmp";
            std::ofstream(tmp) << port << "\n";
            std::filesystem::rename(tmp, *port_file);  // readers never see a partial file
          }
        });
        running = nullptr;
      });
}

}  // namespace mlxd::app
