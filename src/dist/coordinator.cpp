#include "mlxd/dist/coordinator.h"

#include <algorithm>
#include <condition_variable>
#include <random>
#include <set>
#include <thread>

#include "comm/grpc/credentials.h"
#include "dist/cluster_server.h"
#include "dist/cluster_service.h"
#include "dist/decode_gate.h"
#include "dist/pipeline_stream.h"
#include "dist/stage_rpc.h"
#include "dist/survivor_plan.h"
#include "dist/weights_cache.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_name.h"
#include "mlxd/core/thread_pool.h"
#include "mlxd/models/llama.h"

namespace mlxd::dist {
namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// A step a stage refused or answered inconsistently: the request fails, the pipeline stays.
class step_failed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

bool join_host_is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string join_listen_address(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

struct coordinator::impl {
  // One plan in force: the stream to its first remote stage.
  struct active {
    uint64_t plan_id = 0;
    pipeline_plan plan;
    std::vector<node_info> nodes;
    std::string description;
    std::unique_ptr<pipeline_stream> stream;
    std::unique_ptr<decode_gate> gate;  // the decode steps of the sequences on this plan
  };

  std::filesystem::path model_path;
  coordinator_options o;
  models::llama_config config;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  std::shared_ptr<const models::llama_model> local;  // --coordinator-layers
  std::mutex local_mu;
  std::map<uint64_t, models::kv_cache> local_caches;
  // The queue of every gRPC call the coordinator makes asynchronously (the pipelines' streams) and, with a
  // cluster port, of the joins it serves. Declared before the plans, whose streams use it until they go.
  std::unique_ptr<cluster_service> join_service;
  std::unique_ptr<cluster_server> join_server;
  int join_port = 0;
  std::shared_ptr<comm::rpc::cq_driver> driver;
  // The watcher re-plans as soon as the current plan's stream ends, so that the plan shown is the one in
  // force and the next request does not wait for it. Declared before `current`, whose streams report here.
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  std::vector<uint64_t> lost_plans;  // plans whose stream ended, not yet looked at
  bool watch_stop = false;
  std::thread watcher;
  mutable std::mutex plan_mu;
  std::shared_ptr<active> current;
  uint64_t n_plans = 0;  // established since the start
  // The last plan established and its nodes (guarded by plan_mu): after a loss the next keeps what it can.
  pipeline_plan last_plan;
  std::vector<node_info> last_nodes;
  std::atomic<uint64_t> next_sequence{1};
  std::atomic<int> in_flight{0};          // generate() and logits() calls running
  std::atomic<uint64_t> shipped{0};       // weight bytes uploaded to workers
  clock_type::time_point rejoin_checked;  // guarded by plan_mu
  // The node set: --workers, then the workers that joined. Plans are made over the ones that answer.
  mutable std::mutex members_mu;
  std::vector<std::string> members;
  // A worker joined that the plan in force leaves out: re-plan as soon as no request runs (the watcher, or
  // the next request before it starts), or when it has waited o.join_wait since replan_since.
  std::atomic<bool> replan_wanted{false};
  clock_type::time_point replan_since;  // guarded by watch_mu

  // Counts a running request for as long as it lives; the last one to end wakes the watcher when a joined
  // worker waits to be planned in.
  struct running {
    explicit running(impl& c) : c_(c) { ++c_.in_flight; }
    ~running() {
      if (--c_.in_flight == 0 && c_.replan_wanted) {
        std::lock_guard lock(c_.watch_mu);
        c_.watch_cv.notify_all();
      }
    }
    running(const running&) = delete;
    running& operator=(const running&) = delete;
    impl& c_;
  };

  // The access of the options with every member as a worker.
  cluster_access access() const {
    cluster_access a = o.access;
    std::lock_guard lock(members_mu);
    a.workers = members;
    return a;
  }
  // A worker answers that the plan in force leaves out (it joined, or came back): asks for a re-plan.
  void want_replan();
  // force: re-plan even while requests run (they re-prefill on the new plan).
  void replan_for_join(bool force = false);
  // Joined workers that did not answer leave the node set: `mlxd worker --join` announces itself again
  // when it is back. Those of --workers stay, as they are the cluster's configuration.
  void forget_silent_joiners(const std::vector<node_status>& probes);
  grpc::Status join(const std::string& address, const std::string& node_id, v1::ClusterJoinReply& reply);
  // Listens for joins (with a cluster port) and sets `driver`: the join server's queue, or one of its own.
  void start_queue();

  void establish(bool all_required);
  std::shared_ptr<active> get_active();
  void rejoin_absent();
  grpc::Status upload(v1::Stage::Stub& stub, const stage_package& p);
  void recover(const std::shared_ptr<active>& failed, const std::string& why);
  void watch();
  void stream_lost(uint64_t plan_id);
  std::future<v1::StepReply> submit(active& a, v1::StepRequest req);
  // A group of decode steps (decode_gate), in one write where the stages take carriers.
  std::vector<std::future<v1::StepReply>> submit_group(active& a, std::vector<v1::StepRequest>& steps);
  // Runs the coordinator's own layers (--coordinator-layers) on a step bound for the workers.
  void run_local(v1::StepRequest& req);
  // Waits for a step's reply (reading replies meanwhile) and checks it.
  v1::StepReply finish(active& a, std::future<v1::StepReply> f, bool expect_token);
  // Throws step_failed for an error reply or (expect_token) one without a token of the vocabulary.
  v1::StepReply check(v1::StepReply r, bool expect_token) const;
  void end_sequence(active& a, uint64_t id);
  void drop_local(uint64_t id);
  v1::StepRequest step(uint64_t id, int position, std::vector<int32_t> tokens) const;
  int chunk_tokens() const;
  // `tokens` through the pipeline as a sequence of its own: every position's logits [n, vocab] or, with
  // `hidden`, final-norm hidden states [n, hidden_size].
  array forward_whole(const std::vector<int32_t>& tokens, bool hidden);
};

void coordinator::impl::establish(bool all_required) {
  std::vector<node_status> probes = probe_cluster(access());
  std::vector<node_info> alive;
  std::vector<std::string> link_hosts;  // (1.8) each alive node's machine when it takes links, else ""
  std::vector<char> reply_links;        // (1.9) each alive node's replies may take a link to this process
  const std::string here = host_id();
  std::string down;
  for (const node_status& p : probes) {
    if (p.healthy) {
      alive.push_back(p.info);
      link_hosts.push_back(p.protocol_minor >= 8 ? p.host_id : std::string());
      reply_links.push_back(o.local_links && p.protocol_minor >= 9 && !p.host_id.empty() &&
                            p.host_id == here);
    } else {
      down += (down.empty() ? "" : "; ") + p.address + ": " + p.error;
    }
  }
  forget_silent_joiners(probes);
  if (all_required && !down.empty()) throw std::runtime_error("worker " + down);
  plan_options po;
  // An override names the workers of --workers: it holds while exactly they are planned.
  const bool as_listed = alive.size() == o.access.workers.size() &&
                         std::equal(alive.begin(), alive.end(), o.access.workers.begin(),
                                    [](const node_info& n, const std::string& w) { return n.address == w; });
  if (as_listed) po.layers = o.layers;
  po.coordinator_layers = o.coordinator_layers;
  po.kv_positions = o.kv_positions > 0 ? o.kv_positions : std::min(config.max_position_embeddings, 4096);
  pipeline_plan plan;
  try {
    // After a loss the survivors keep their ranges where they can (they load nothing again) and a neighbour
    // takes the lost layers; an override in force, or a new or returning worker, spreads them again.
    std::optional<pipeline_plan> kept;
    if (!last_plan.empty() && po.layers.empty())
      kept = plan_keeping_survivors(config, last_plan, last_nodes, alive, po);
    plan = kept ? *kept : plan_pipeline(config, alive, po);
  } catch (const plan_error& e) {
    throw plan_error(std::string(e.what()) + (down.empty() ? "" : " (down: " + down + ")"));
  }
  auto a = std::make_shared<active>();
  std::random_device rd;
  a->plan_id = ((uint64_t{rd()} << 32) | rd()) | 1;
  a->plan = plan;
  a->nodes = alive;
  a->description = describe(plan, alive);
  std::optional<ship_source> shipping;  // opened once for every stage
  if (o.ship_weights) {
    try {
      shipping = open_ship_source(model_path);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cannot ship the weights: ") + e.what());
    }
  }
  // Assign every remote stage at once: each loads its own range.
  std::vector<std::string> errors(plan.size());
  std::vector<bool> too_big(plan.size(), false);
  std::vector<char> carriers(plan.size(), 1);  // (1.6) chars: the threads write them side by side
  std::vector<char> rings(plan.size(), 1);     // (1.7)
  // (1.7) The first stage feeds rings back from the last, when it embeds and is not the last.
  const bool loop = plan.front().node >= 0 && plan.size() > 1;
  // (1.8) Two workers of one machine that both take links.
  const auto linkable = [&](int from, int to) {
    return o.local_links && !link_hosts[static_cast<size_t>(from)].empty() &&
           link_hosts[static_cast<size_t>(from)] == link_hosts[static_cast<size_t>(to)];
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].node < 0) continue;
    threads.emplace_back([&, i] {
      const plan_stage& s = plan[i];
      v1::Assignment as;
      as.set_plan_id(a->plan_id);
      as.set_model_path(std::filesystem::absolute(model_path).string());
      as.set_layer_begin(s.layers.layer_begin);
      as.set_layer_end(s.layers.layer_end);
      as.set_embedding(s.layers.embedding);
      as.set_head(s.layers.head);
      if (i + 1 < plan.size()) {
        as.set_next_address(alive[plan[i + 1].node].address);
        as.set_next_link(linkable(s.node, plan[i + 1].node));
      }
      if (i == 0 && loop) {
        as.set_loop_address(alive[plan.back().node].address);
        as.set_loop_link(linkable(s.node, plan.back().node));
      }
      auto stub = v1::Stage::NewStub(rpc::make_channel(alive[s.node].address, creds));
      std::optional<stage_package> package;
      if (shipping) {
        try {
          package = pack_stage(*shipping, config, s.layers);
        } catch (const std::exception& e) {
          errors[i] = std::string("cannot ship the weights: ") + e.what();
          return;
        }
        as.set_weights_hash(package->hash);
      }
      // A fresh channel's first connect can fail transiently (seen once in CI just after the worker's probe
      // answered): an UNAVAILABLE Assign, which the worker never ran or may run again, is tried twice more.
      const auto assign = [&] {
        grpc::Status st;
        for (int attempt = 0; attempt < 3; ++attempt) {
          if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
          grpc::ClientContext ctx;
          rpc::prepare(ctx, o.access.cluster_token, std::chrono::minutes(10));
          v1::AssignReply reply;
          st = stub->Assign(&ctx, as, &reply);
          carriers[i] = reply.carriers();
          rings[i] = reply.rings();
          if (st.error_code() != grpc::StatusCode::UNAVAILABLE) break;
        }
        return st;
      };
      grpc::Status st = assign();
      if (package && st.error_code() == grpc::StatusCode::NOT_FOUND) {
        // The worker does not hold this stage yet: send it, then assign again.
        st = upload(*stub, *package);
        if (st.ok()) st = assign();
      }
      if (!st.ok()) {
        errors[i] = alive[s.node].address + " refused its assignment: " + st.error_message();
        too_big[i] = st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < plan.size(); ++i) {
    if (errors[i].empty()) continue;
    if (too_big[i]) throw plan_error("the model does not fit: " + errors[i]);
    throw std::runtime_error(errors[i]);
  }
  const plan_stage& first = plan[plan.front().node < 0 ? 1 : 0];
  const auto endpoint = [&](const plan_stage& s) {
    const std::string& address = alive[s.node].address;
    return pipeline_stream::endpoint{rpc::make_channel(address, creds), address, reply_links[s.node] != 0};
  };
  std::optional<pipeline_stream::endpoint> last;
  if (&plan.back() != &first) last = endpoint(plan.back());
  a->stream =
      std::make_unique<pipeline_stream>(driver, endpoint(first), last, o.access.cluster_token, a->plan_id,
                                        [this, id = a->plan_id](const std::string&) { stream_lost(id); });
  if (std::all_of(carriers.begin(), carriers.end(), [](char c) { return c != 0; })) a->stream->use_carriers();
  // One group in the pipeline per machine it runs on: stages sharing a machine's cores gain nothing from
  // computing two groups at once, stages on machines of their own keep each other busy.
  std::set<std::string> hosts;
  for (const plan_stage& s : plan) hosts.insert(s.node < 0 ? std::string() : host_of(alive[s.node].address));
  a->gate = std::make_unique<decode_gate>(
      [this, raw = a.get()](std::vector<v1::StepRequest>& steps) { return submit_group(*raw, steps); },
      static_cast<int>(hosts.size()), decode_gate::default_patience,
      [raw = a.get()](std::future<v1::StepReply>& f) { raw->stream->wait(f); });
  // A ring needs the embedding on a worker; a worker before 1.7 would ignore it and leave its tokens missing.
  const bool all_rings = std::all_of(rings.begin(), rings.end(), [](char c) { return c != 0; });
  if (!local && all_rings && o.ring_tokens > 1)
    a->gate->use_rings(
        [raw = a.get()](v1::StepRequest& s, uint32_t n) { return raw->stream->send_ring(s, n); },
        [raw = a.get()](uint64_t sequence, uint64_t from, uint32_t n) {
          raw->stream->abandon(sequence, from, n);
        },
        static_cast<uint32_t>(o.ring_tokens));
  current = a;
  last_plan = a->plan;
  last_nodes = a->nodes;
  ++n_plans;
}

void coordinator::impl::stream_lost(uint64_t plan_id) {
  {
    std::lock_guard lock(watch_mu);
    lost_plans.push_back(plan_id);
  }
  watch_cv.notify_all();
}

void coordinator::impl::watch() {
  std::unique_lock lock(watch_mu);
  const auto overdue = [&] { return replan_wanted && clock_type::now() >= replan_since + o.join_wait; };
  for (;;) {
    while (!watch_stop && lost_plans.empty() && !(replan_wanted && (in_flight.load() == 0 || overdue()))) {
      if (replan_wanted)
        watch_cv.wait_until(lock, replan_since + o.join_wait);
      else
        watch_cv.wait(lock);
    }
    if (watch_stop) return;
    const std::vector<uint64_t> lost = std::exchange(lost_plans, {});
    const bool force = overdue();
    lock.unlock();
    replan_for_join(force);
    bool replanned = false;
    {
      std::lock_guard plan_lock(plan_mu);
      // Only the plan in force matters: older ones were replaced (their streams end when they go).
      if (current && std::find(lost.begin(), lost.end(), current->plan_id) != lost.end()) {
        current.reset();
        replanned = true;
        try {
          establish(false);
        } catch (const std::exception&) {  // no plan for now: the next request plans again and says why
        }
      }
    }
    lock.lock();
    // A plan whose stream ends again at once (a worker that refuses it) is retried at most once a second.
    if (replanned) watch_cv.wait_for(lock, std::chrono::seconds(1), [&] { return watch_stop; });
  }
}

std::shared_ptr<coordinator::impl::active> coordinator::impl::get_active() {
  std::lock_guard lock(plan_mu);
  if (!current) establish(false);
  return current;
}

grpc::Status coordinator::impl::upload(v1::Stage::Stub& stub, const stage_package& p) {
  grpc::ClientContext ctx;
  rpc::prepare(ctx, o.access.cluster_token, std::chrono::minutes(30));
  v1::UploadReply reply;
  auto writer = stub.Upload(&ctx, &reply);
  constexpr size_t piece = 1 << 20;  // well under gRPC's 4 MB message limit
  const std::pair<const char*, const std::string*> files[] = {{"config.json", &p.config},
                                                              {p.model_file.c_str(), &p.model}};
  for (const auto& [name, bytes] : files) {
    for (size_t at = 0; at == 0 || at < bytes->size(); at += piece) {
      v1::WeightsChunk c;
      c.set_hash(p.hash);
      c.set_file(name);
      c.set_file_bytes(bytes->size());
      c.set_offset(at);
      c.set_data(bytes->substr(at, piece));
      if (!writer->Write(c)) break;
    }
  }
  writer->WritesDone();
  const grpc::Status st = writer->Finish();
  if (st.ok()) shipped += reply.bytes();
  return st;
}

void coordinator::impl::replan_for_join(bool force) {
  if (!replan_wanted || (!force && in_flight.load() != 0)) return;
  std::lock_guard lock(plan_mu);
  // A request that starts now waits for this plan in get_active(). One already running keeps its plan and
  // the last to end wakes the watcher again; when forced, its workers end the old plan's stream at its
  // next step and it re-prefills on this plan.
  if ((!force && in_flight.load() != 0) || !replan_wanted.exchange(false)) return;
  current.reset();
  try {
    establish(false);
  } catch (const std::exception&) {  // left unplanned: the next request plans again and reports why
  }
}

void coordinator::impl::forget_silent_joiners(const std::vector<node_status>& probes) {
  std::lock_guard lock(members_mu);
  for (const node_status& p : probes) {
    const bool listed =
        std::find(o.access.workers.begin(), o.access.workers.end(), p.address) != o.access.workers.end();
    if (!p.healthy && !listed) std::erase(members, p.address);
  }
}

grpc::Status coordinator::impl::join(const std::string& address, const std::string& node_id,
                                     v1::ClusterJoinReply& reply) {
  cluster_access one = o.access;
  one.workers = {address};
  const node_status probe = probe_cluster(one).front();
  if (!probe.healthy)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "the coordinator cannot use the worker at " + address + ": " + probe.error};
  if (!node_id.empty() && probe.node_id != node_id)
    return {grpc::StatusCode::FAILED_PRECONDITION, address + " answers as node \"" + probe.node_id +
                                                       "\", not \"" + node_id + "\" (is the address right?)"};
  bool planned = false;
  {
    std::lock_guard lock(plan_mu);
    planned = current && std::any_of(current->nodes.begin(), current->nodes.end(),
                                     [&](const node_info& n) { return n.address == address; });
  }
  {
    // The member and the wish for a plan with it appear together: a request that sees the one (workers())
    // re-plans before it starts. (Wished after, a request could start on the old plan in between.)
    std::lock_guard lock(members_mu);
    reply.set_already_member(std::find(members.begin(), members.end(), address) != members.end());
    if (!reply.already_member()) members.push_back(address);
    reply.set_n_workers(static_cast<uint32_t>(members.size()));
    if (!planned) want_replan();
  }
  reply.set_address(address);
  return grpc::Status::OK;
}

void coordinator::impl::start_queue() {
  if (o.join_port < 0) {
    driver = std::make_shared<comm::rpc::cq_driver>(
        std::make_unique<grpc::CompletionQueue>(), [] {}, rpc::background_after);
    driver->start();
    return;
  }
  cluster_service::handlers h;
  h.join = [this](const std::string& address, const std::string& node_id, v1::ClusterJoinReply& reply) {
    return join(address, node_id, reply);
  };
  h.members = [this](v1::ClusterMembersReply& reply) {
    for (const std::string& w : access().workers) reply.add_workers(w);
    std::lock_guard lock(plan_mu);
    reply.set_plan(current ? current->description : std::string("no plan"));
    reply.set_replans(n_plans > 0 ? n_plans - 1 : 0);
  };
  join_service = std::make_unique<cluster_service>(o.access.cluster_token, std::move(h));
  const std::string address = join_listen_address(o.join_host, o.join_port);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      address, comm::rpc::server_credentials({o.access.tls_cert, o.access.tls_key, o.access.tls_ca}),
      &join_port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use is an error (worker.cpp)
  join_server = std::make_unique<cluster_server>(*join_service, builder, address);
  if (join_port == 0) throw std::runtime_error("[coordinator] cannot listen on " + address + " for joins");
  driver = join_server->driver();
}

void coordinator::impl::want_replan() {
  std::lock_guard lock(watch_mu);
  if (!replan_wanted) replan_since = clock_type::now();
  replan_wanted = true;
  watch_cv.notify_all();
}

void coordinator::impl::rejoin_absent() {
  replan_for_join();
  if (o.rejoin_interval.count() <= 0) return;
  cluster_access absent = access();
  absent.workers.clear();
  {
    std::lock_guard lock(plan_mu);
    if (!current || clock_type::now() - rejoin_checked < o.rejoin_interval) return;
    rejoin_checked = clock_type::now();
    for (const std::string& w : access().workers) {
      const bool planned = std::any_of(current->nodes.begin(), current->nodes.end(),
                                       [&](const node_info& n) { return n.address == w; });
      if (!planned) absent.workers.push_back(w);
    }
  }
  if (absent.workers.empty()) return;
  // Probed without the plan lock, so requests starting meanwhile are not held up by a silent worker.
  const std::vector<node_status> back = probe_cluster(absent);
  if (std::none_of(back.begin(), back.end(), [](const node_status& s) { return s.healthy; })) return;
  // As for a joined worker: planned in when nothing runs, or after join_wait (running requests re-prefill).
  want_replan();
  replan_for_join();
}

void coordinator::impl::recover(const std::shared_ptr<active>& failed, const std::string& why) {
  std::lock_guard lock(plan_mu);
  if (current != failed) return;  // another sequence re-planned already
  current.reset();
  try {
    establish(false);
  } catch (const plan_error& e) {
    throw plan_error("the pipeline was lost (" + why +
                     ") and no plan fits the remaining workers: " + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error("the pipeline was lost (" + why + ") and re-planning failed: " + e.what());
  }
}

v1::StepRequest coordinator::impl::step(uint64_t id, int position, std::vector<int32_t> tokens) const {
  v1::StepRequest r;
  r.set_sequence_id(id);
  r.set_kind(v1::STEP_FORWARD);
  r.set_position(position);
  for (int32_t t : tokens) r.add_tokens(t);
  return r;
}

int coordinator::impl::chunk_tokens() const {
  const auto by_size =
      static_cast<int>(rpc::max_message_bytes / 2 / (static_cast<size_t>(config.hidden_size) * 4));
  return std::max(1, std::min(o.prefill_chunk, by_size));
}

std::future<v1::StepReply> coordinator::impl::submit(active& a, v1::StepRequest req) {
  run_local(req);
  return a.stream->send(req);
}

std::vector<std::future<v1::StepReply>> coordinator::impl::submit_group(active& a,
                                                                        std::vector<v1::StepRequest>& steps) {
  for (v1::StepRequest& req : steps) run_local(req);
  return a.stream->send_group(steps);
}

void coordinator::impl::run_local(v1::StepRequest& req) {
  if (local) {
    const auto start = clock_type::now();
    std::lock_guard lock(local_mu);
    if (req.kind() == v1::STEP_END) {
      local_caches.erase(req.sequence_id());
    } else {
      if (req.position() == 0)
        local_caches.insert_or_assign(req.sequence_id(), local->make_cache(req.capacity()));
      auto it = local_caches.find(req.sequence_id());
      if (it == local_caches.end() || it->second.length() != req.position())
        throw step_failed("sequence " + std::to_string(req.sequence_id()) + " is not at position " +
                          std::to_string(req.position()) + " on the coordinator");
      const array x =
          local->forward_layers(local->embed({req.tokens().begin(), req.tokens().end()}), it->second);
      expect_serial_work();  // the workers compute next: this process's pool must not hold a core
      req.clear_tokens();
      rpc::to_chunk(x, req.mutable_hidden());
      req.add_stage_ms(ms_since(start));
      req.add_stage_batch(1);  // the coordinator's own layers run one sequence at a time
    }
  }
}

v1::StepReply coordinator::impl::finish(active& a, std::future<v1::StepReply> f, bool expect_token) {
  a.stream->wait(f);
  return check(f.get(), expect_token);  // get() throws pipeline_lost
}

v1::StepReply coordinator::impl::check(v1::StepReply r, bool expect_token) const {
  if (!r.error().empty()) throw step_failed(r.error_node() + ": " + r.error());
  if (expect_token && (!r.sampled() || r.token() < 0 || r.token() >= config.vocab_size))
    throw step_failed("the last stage sent an inconsistent reply (" +
                      (r.sampled() ? "token " + std::to_string(r.token()) + " outside the vocabulary"
                                   : std::string("no token")) +
                      ")");
  if (r.stage_ms_size() > 1024 || r.stage_batch_size() > 1024)
    throw step_failed("a reply carries " + std::to_string(std::max(r.stage_ms_size(), r.stage_batch_size())) +
                      " stage figures");
  return r;
}

void coordinator::impl::end_sequence(active& a, uint64_t id) {
  v1::StepRequest r;
  r.set_sequence_id(id);
  r.set_kind(v1::STEP_END);
  try {
    finish(a, submit(a, r), false);
  } catch (const std::exception&) {  // the caches go on their own (idle timeout, next plan)
  }
}

void coordinator::impl::drop_local(uint64_t id) {
  std::lock_guard lock(local_mu);
  local_caches.erase(id);
}

coordinator::coordinator(const std::filesystem::path& model, coordinator_options o)
    : impl_(std::make_unique<impl>()) {
  impl& c = *impl_;
  if (o.access.workers.empty()) throw std::invalid_argument("[coordinator] no workers given");
  if (o.prefill_chunk < 1) throw std::invalid_argument("[coordinator] the prefill chunk must be at least 1");
  if (o.join_port > 65535)
    throw std::invalid_argument("[coordinator] the cluster port " + std::to_string(o.join_port) +
                                " is not in 0..65535");
  if (o.join_port >= 0 && !join_host_is_loopback(o.join_host) && o.access.cluster_token.empty())
    throw std::invalid_argument(
        "[coordinator] a cluster port on " + o.join_host +
        " (beyond loopback) needs a cluster token (--cluster-token or MLXD_CLUSTER_TOKEN)");
  c.model_path = model;
  c.o = std::move(o);
  c.members = c.o.access.workers;
  c.config = models::load_llama_config_any(model);
  c.creds = comm::rpc::channel_credentials({c.o.access.tls_cert, c.o.access.tls_key, c.o.access.tls_ca});
  if (c.o.coordinator_layers) {
    const auto [begin, end] = *c.o.coordinator_layers;
    if (begin != 0 || end > c.config.n_layers)
      throw plan_error("--coordinator-layers must be a range starting at layer 0 within the model's " +
                       std::to_string(c.config.n_layers) + " layers");
    c.local =
        std::make_shared<const models::llama_model>(models::load_llama_stage(model, {0, end, true, false}));
  }
  c.start_queue();
  {
    std::lock_guard lock(c.plan_mu);
    c.establish(true);
  }
  c.watcher = std::thread([&c] {
    name_this_thread("mlxd-watch");
    c.watch();
  });
  if (c.join_server) c.join_server->accept_calls();
}

coordinator::~coordinator() {
  // No join may reach the coordinator while it goes.
  if (impl_->join_server) impl_->join_server->shutdown();
  {
    std::lock_guard lock(impl_->watch_mu);
    impl_->watch_stop = true;
  }
  impl_->watch_cv.notify_all();
  impl_->watcher.join();
}

const models::llama_config& coordinator::config() const {
  return impl_->config;
}

std::string coordinator::plan_description() const {
  std::lock_guard lock(impl_->plan_mu);
  return impl_->current ? impl_->current->description : std::string("no plan");
}

uint64_t coordinator::n_replans() const {
  std::lock_guard lock(impl_->plan_mu);
  return impl_->n_plans > 0 ? impl_->n_plans - 1 : 0;
}

generation_result coordinator::generate(const generation_request& r) {
  impl& c = *impl_;
  const models::llama_config& cfg = c.config;
  if (r.prompt.empty()) throw std::invalid_argument("[generate] the prompt has no tokens");
  if (r.max_tokens < 1) throw std::invalid_argument("[generate] max_tokens must be at least 1");
  for (int32_t t : r.prompt)
    if (t < 0 || t >= cfg.vocab_size)
      throw std::invalid_argument("[generate] token id " + std::to_string(t) +
                                  " is outside the vocabulary of " + std::to_string(cfg.vocab_size));
  const int64_t capacity = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
  if (capacity > cfg.max_position_embeddings)
    throw std::invalid_argument("[generate] prompt of " + std::to_string(r.prompt.size()) + " tokens plus " +
                                std::to_string(r.max_tokens) + " new ones exceeds the context of " +
                                std::to_string(cfg.max_position_embeddings));
  engine::validate(r.sampling, cfg.vocab_size);
  c.rejoin_absent();
  const impl::running counted(c);
  const int n_prompt = static_cast<int>(r.prompt.size()), chunk = c.chunk_tokens();
  generation_result out;
  const auto start = clock_type::now();
  const auto stop = [&] { return r.stop_requested && r.stop_requested(); };
  const auto done = [&] {
    out.decode_s = std::chrono::duration<double>(clock_type::now() - start).count() - out.prefill_s;
    return out;
  };
  for (int attempt = 0;; ++attempt) {
    if (stop()) {
      out.stopped = true;
      return done();
    }
    std::shared_ptr<impl::active> a = c.get_active();
    const uint64_t id = c.next_sequence++;
    try {
      // (Re)prefill in the same chunks as always, then replay the tokens produced so far one by one, so every
      // stage computes exactly what it computed before; the last step samples the next token.
      const size_t k = out.tokens.size();
      std::optional<decode_gate::arrival> coming(std::in_place, *a->gate);  // until it decodes
      std::vector<std::future<v1::StepReply>> pending;
      for (int pos = 0; pos < n_prompt; pos += chunk) {
        const int n = std::min(chunk, n_prompt - pos);
        v1::StepRequest s = c.step(id, pos, {r.prompt.begin() + pos, r.prompt.begin() + pos + n});
        if (pos == 0) {
          s.set_capacity(static_cast<int>(capacity));
          rpc::to_proto(r.sampling, s.mutable_sampling());
          for (int32_t t : out.tokens) s.add_history(t);
        }
        s.set_sample(k == 0 && pos + n == n_prompt);
        pending.push_back(c.submit(*a, std::move(s)));
      }
      for (size_t i = 0; i < k; ++i) {
        v1::StepRequest s = c.step(id, n_prompt + static_cast<int>(i), {out.tokens[i]});
        s.set_sample(i + 1 == k);
        pending.push_back(c.submit(*a, std::move(s)));
      }
      v1::StepReply reply;
      for (size_t i = 0; i < pending.size(); ++i)
        reply = c.finish(*a, std::move(pending[i]), i + 1 == pending.size());
      if (k == 0) out.prefill_s = std::chrono::duration<double>(clock_type::now() - start).count();
      {  // in step with the other sequences until this one's last token
        decode_gate::member in_step(*a->gate, r.stop_ids);
        coming.reset();
        const int looped_before = out.looped_steps;
        auto replied = clock_type::now();
        for (;;) {
          engine::sample_result sr{reply.token(), reply.logprob(), {}};
          for (const auto& t : reply.top()) sr.top.push_back({t.token(), t.logprob()});
          out.tokens.push_back(sr.id);
          out.logprobs.push_back(sr.logprob);
          if (r.on_token) r.on_token(sr);
          if (static_cast<int>(out.tokens.size()) >= r.max_tokens ||
              std::find(r.stop_ids.begin(), r.stop_ids.end(), sr.id) != r.stop_ids.end())
            break;
          if (stop()) {
            out.stopped = true;
            break;
          }
          v1::StepRequest s = c.step(id, n_prompt + static_cast<int>(out.tokens.size()) - 1, {sr.id});
          s.set_sample(true);
          // A ring's step left when the last reply did, without waiting for this turn of the coordinator.
          const auto sent = in_step.in_ring() ? replied : clock_type::now();
          reply =
              c.check(in_step.run(std::move(s), r.max_tokens - static_cast<int>(out.tokens.size())), true);
          replied = clock_type::now();
          out.looped_steps = looped_before + in_step.looped();
          ++out.decode_steps;
          out.decode_round_trip_ms += ms_since(sent);
          out.decode_stage_ms.resize(std::max<size_t>(out.decode_stage_ms.size(), reply.stage_ms_size()));
          for (int i = 0; i < reply.stage_ms_size(); ++i) out.decode_stage_ms[i] += reply.stage_ms(i);
          for (uint32_t b : reply.stage_batch())
            out.max_stage_batch = std::max(out.max_stage_batch, static_cast<int>(b));
        }
      }
      c.end_sequence(*a, id);
      out.direct_replies = a->stream->direct_replies();
      out.reply_link = a->stream->reply_link();
      out.carriers = a->stream->carriers();
      out.stage_nodes.clear();
      for (const plan_stage& st : a->plan)
        out.stage_nodes.push_back(st.node < 0 ? std::string("coordinator") : a->nodes[st.node].address);
      return done();
    } catch (const pipeline_lost& e) {
      c.drop_local(id);
      if (stop()) {  // nothing left to resume; the next request re-plans
        out.stopped = true;
        return done();
      }
      ++out.replans;
      if (attempt > static_cast<int>(c.access().workers.size()))
        throw std::runtime_error(std::string("[generate] gave up after ") + std::to_string(attempt + 1) +
                                 " lost pipelines; the last: " + e.what());
      c.recover(a, e.what());
    } catch (const step_failed& e) {
      c.end_sequence(*a, id);
      throw std::runtime_error(std::string("[generate] ") + e.what());
    } catch (...) {  // on_token threw: release the sequence on every stage first
      c.end_sequence(*a, id);
      throw;
    }
  }
}

uint64_t coordinator::shipped_bytes() const {
  return impl_->shipped.load();
}

array coordinator::impl::forward_whole(const std::vector<int32_t>& tokens, bool hidden) {
  const std::string who = hidden ? "[final_hidden] " : "[logits] ";
  if (tokens.empty()) throw std::invalid_argument(who + "no tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= config.vocab_size)
      throw std::invalid_argument(who + "token id " + std::to_string(t) + " is outside the vocabulary of " +
                                  std::to_string(config.vocab_size));
  if (static_cast<int64_t>(tokens.size()) > config.max_position_embeddings)
    throw std::invalid_argument(who + std::to_string(tokens.size()) + " tokens exceed the context of " +
                                std::to_string(config.max_position_embeddings));
  rejoin_absent();
  const running counted(*this);
  const int n = static_cast<int>(tokens.size()), chunk = chunk_tokens();
  const int64_t width = hidden ? config.hidden_size : config.vocab_size;
  for (int attempt = 0;; ++attempt) {
    std::shared_ptr<active> a = get_active();
    const uint64_t id = next_sequence++;
    try {
      std::vector<std::future<v1::StepReply>> pending;
      for (int pos = 0; pos < n; pos += chunk) {
        v1::StepRequest s = step(id, pos, {tokens.begin() + pos, tokens.begin() + std::min(n, pos + chunk)});
        if (pos == 0) {
          s.set_capacity(n);
          rpc::to_proto(engine::sampling_params{}, s.mutable_sampling());
        }
        if (hidden)
          s.set_want_hidden(true);
        else
          s.set_want_logits(true);
        pending.push_back(submit(*a, std::move(s)));
      }
      std::vector<array> parts;
      for (auto& f : pending) {
        const v1::StepReply r = finish(*a, std::move(f), false);
        // A worker of protocol 1.0 ignores want_hidden and sends nothing back.
        if (hidden && !r.has_final_hidden())
          throw step_failed("the last stage sent no hidden states (is it a worker older than protocol 1.1?)");
        array part;
        const std::string why = rpc::from_chunk(hidden ? r.final_hidden() : r.logits(), part);
        if (!why.empty() || part.ndim() != 2 || part.shape(1) != width)
          throw step_failed("the last stage sent malformed " +
                            std::string(hidden ? "hidden states" : "logits") + ": " +
                            (why.empty() ? part.to_string() : why));
        parts.push_back(part);
      }
      end_sequence(*a, id);
      const array out = concatenate(parts, 0);
      if (out.shape(0) != n) throw std::runtime_error(who + "the last stage sent rows " + out.to_string());
      return out;
    } catch (const pipeline_lost& e) {
      drop_local(id);
      if (attempt > static_cast<int>(access().workers.size())) throw std::runtime_error(e.what());
      recover(a, e.what());
    } catch (const step_failed& e) {
      end_sequence(*a, id);
      throw std::runtime_error(who + e.what());
    }
  }
}

array coordinator::logits(const std::vector<int32_t>& tokens) {
  return impl_->forward_whole(tokens, false);
}

array coordinator::final_hidden(const std::vector<int32_t>& tokens) {
  return impl_->forward_whole(tokens, true);
}

std::vector<node_status> coordinator::status(int pings) {
  return probe_cluster(impl_->access(), pings);
}

std::vector<std::string> coordinator::workers() const {
  return impl_->access().workers;
}

int coordinator::join_port() const {
  return impl_->join_port;
}

}  // namespace mlxd::dist
