// Joining a running cluster, in one process: a worker announced to the coordinator's Cluster service is
// added after a Hello back and planned in, twice is the same as once, and a join without the cluster token,
// of another protocol major, or of an address that does not answer as the joiner is refused and changes
// nothing.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dist/cluster_service.h"
#include "dist/stage_rpc.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/membership.h"
#include "mlxd/dist/worker.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/v1/inference.grpc.pb.h"

namespace mlxd::dist {
namespace {

// A 6-layer model, so that a plan over two workers gives each some whatever speeds they measure.
const std::filesystem::path& join_model() {
  static const std::filesystem::path* dir = [] {
    auto* d = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                        ("mlxd_join_test_" + std::to_string(getpid())));
    std::filesystem::create_directories(*d);
    models::llama_config c;
    c.architecture = "LlamaForCausalLM";
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.n_layers = 6;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.max_position_embeddings = 64;
    save_safetensors(*d / "model.safetensors", models::init_llama_weights(c, 11));
    std::ofstream(*d / "config.json") << models::to_json(c);
    std::atexit([] { std::filesystem::remove_all(join_model()); });
    return d;
  }();
  return *dir;
}

worker_options joining_worker(const std::string& token, const std::string& name) {
  worker_options o;
  o.node_id = name;  // workers of one process would otherwise share hostname:pid
  o.host = "127.0.0.1";
  o.port = 0;
  o.cluster_token = token;
  return o;
}

// A coordinator over one worker that listens for joins on 127.0.0.1.
coordinator_options joinable(const worker& first, const std::string& token) {
  coordinator_options o;
  o.access.workers = {"127.0.0.1:" + std::to_string(first.port())};
  o.access.cluster_token = token;
  o.layers = {{0, 6}};  // as listed: the one worker holds every layer
  o.join_port = 0;
  o.join_host = "127.0.0.1";
  return o;
}

join_options announce(const coordinator& c, const worker& w, const std::string& token) {
  join_options j;
  j.coordinator = "127.0.0.1:" + std::to_string(c.join_port());
  j.port = w.port();
  j.node_id = w.node_id();
  j.cluster_token = token;
  return j;
}

grpc::Status raw_join(const coordinator& c, const std::string& version, uint32_t major, const worker& w) {
  auto stub = v1::Cluster::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(c.join_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata(rpc::protocol_key, version);
  ctx.AddMetadata("authorization", "Bearer sesame");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ClusterJoinRequest req;
  req.set_protocol_major(major);
  req.set_port(w.port());
  req.set_node_id(w.node_id());
  v1::ClusterJoinReply reply;
  return stub->Join(&ctx, req, &reply);
}

TEST(ClusterJoin, PeerHostsAndWorkerAddresses) {
  EXPECT_EQ(peer_host("ipv4:10.0.0.5:41234"), "10.0.0.5");
  EXPECT_EQ(peer_host("ipv6:[::1]:5"), "[::1]");
  EXPECT_EQ(peer_host("ipv6:%5B::1%5D:5"), "[::1]");
  EXPECT_EQ(peer_host("unix:/tmp/s"), "");
  EXPECT_EQ(peer_host("ipv4:nocolon"), "");
  EXPECT_EQ(peer_host("ipv6:::1:5"), "");
  EXPECT_EQ(check_worker_address("10.0.0.5:8101"), "");
  EXPECT_EQ(check_worker_address("[::1]:8101"), "");
  for (const char* bad : {"", "host", "host:", ":80", "h:0", "h:65536", "h:8x", "a b:1", "h:123456", "a,b:1"})
    EXPECT_NE(check_worker_address(bad), "") << bad;
  EXPECT_NE(check_worker_address(std::string(300, 'a') + ":1"), "");
}

TEST(ClusterJoin, AJoinedWorkerIsPlannedInAndJoiningTwiceIsTheSame) {
  worker a(joining_worker("sesame", "a")), b(joining_worker("sesame", "b"));
  coordinator c(join_model(), joinable(a, "sesame"));
  const std::string b_address = "127.0.0.1:" + std::to_string(b.port());
  EXPECT_EQ(c.plan_description().find(b_address), std::string::npos);
  const join_result r = join_cluster(announce(c, b, "sesame"));
  EXPECT_EQ(r.address, b_address);  // the IP the call came from, with the worker's port
  EXPECT_FALSE(r.already_member);
  EXPECT_EQ(r.n_workers, 2u);
  // Nothing runs, so the watcher plans again at once: within a second the plan spreads over both.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (c.plan_description().find(b_address) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(c.plan_description().find(b_address), std::string::npos) << c.plan_description();
  EXPECT_EQ(c.n_replans(), 1u);
  const join_result again = join_cluster(announce(c, b, "sesame"));
  EXPECT_TRUE(again.already_member);
  EXPECT_EQ(again.n_workers, 2u);
  EXPECT_EQ(c.workers(), (std::vector<std::string>{"127.0.0.1:" + std::to_string(a.port()), b_address}));
  EXPECT_EQ(c.n_replans(), 1u) << "a worker already planned in does not cause another plan";
  // Both show in the cluster view, each with a layer.
  const std::vector<node_status> nodes = c.status(1);
  ASSERT_EQ(nodes.size(), 2u);
  int planned = 0;
  for (const node_status& n : nodes) {
    EXPECT_GT(n.layers.n_layers(), 0) << n.address;
    planned += n.layers.n_layers();
  }
  EXPECT_EQ(planned, 6);
  cluster_access access;
  access.cluster_token = "sesame";
  const cluster_members m = query_members("127.0.0.1:" + std::to_string(c.join_port()), access);
  EXPECT_EQ(m.workers, c.workers());
  EXPECT_EQ(m.plan, c.plan_description());
  EXPECT_EQ(m.replans, 1u);
}

TEST(ClusterJoin, JoinsWithoutTheTokenOrOfAnotherMajorAreRefusedAndChangeNothing) {
  worker a(joining_worker("sesame", "a")), b(joining_worker("sesame", "b"));
  coordinator c(join_model(), joinable(a, "sesame"));
  for (const std::string token : {"", "guess"}) {
    try {
      join_cluster(announce(c, b, token));
      FAIL() << "joined with the token \"" << token << "\"";
    } catch (const join_refused& e) {
      EXPECT_NE(std::string(e.what()).find("missing or wrong cluster token"), std::string::npos) << e.what();
    }
  }
  const grpc::Status v2 = raw_join(c, "2.0", 2, b);
  EXPECT_EQ(v2.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(v2.error_message().find("major versions must match"), std::string::npos) << v2.error_message();
  // The metadata says 1.x but the request says 2: refused as clearly.
  const grpc::Status body2 = raw_join(c, "1.2", 2, b);
  EXPECT_EQ(body2.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(body2.error_message().find("the worker speaks mlxd stage protocol 2."), std::string::npos)
      << body2.error_message();
  EXPECT_EQ(c.workers().size(), 1u);
  EXPECT_EQ(c.n_replans(), 0u);
  cluster_access no_token;
  EXPECT_THROW(query_members("127.0.0.1:" + std::to_string(c.join_port()), no_token), std::runtime_error);
}

TEST(ClusterJoin, AnAddressThatDoesNotAnswerAsTheJoinerIsRefused) {
  worker a(joining_worker("", "a")), b(joining_worker("", "b"));
  coordinator c(join_model(), joinable(a, ""));
  join_options j = announce(c, b, "");
  j.advertise = "127.0.0.1:1";  // nothing listens there
  EXPECT_THROW(
      {
        try {
          join_cluster(j);
        } catch (const join_refused& e) {
          EXPECT_NE(std::string(e.what()).find("cannot use the worker at 127.0.0.1:1"), std::string::npos)
              << e.what();
          throw;
        }
      },
      join_refused);
  j.advertise = "127.0.0.1:" + std::to_string(a.port());  // another worker
  try {
    join_cluster(j);
    FAIL() << "joined as another worker";
  } catch (const join_refused& e) {
    EXPECT_NE(std::string(e.what()).find("answers as node \"a\", not \"b\""), std::string::npos) << e.what();
  }
  j.advertise = "not an address";
  EXPECT_THROW(join_cluster(j), join_refused);
  EXPECT_EQ(c.workers().size(), 1u);
}

TEST(ClusterJoin, ACoordinatorThatCannotBeReachedIsNotARefusal) {
  join_options j;
  j.coordinator = "127.0.0.1:1";
  j.port = 5;
  j.timeout = std::chrono::milliseconds(500);
  try {
    join_cluster(j);
    FAIL() << "joined nothing";
  } catch (const join_refused& e) {
    FAIL() << "unreachable is not a refusal: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be reached"), std::string::npos) << e.what();
  }
}

TEST(ClusterJoin, AClusterPortBeyondLoopbackNeedsAToken) {
  worker a(joining_worker("", "a"));
  coordinator_options o = joinable(a, "");
  o.join_host = "0.0.0.0";
  EXPECT_THROW(coordinator c(join_model(), o), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::dist
