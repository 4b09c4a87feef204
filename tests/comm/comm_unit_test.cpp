// The parts of comm that need no network: reductions, the mailbox, rendezvous parsing, the size-1 group,
// the registry, and the chunk assembler.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "comm/grpc/wire.h"
#include "comm/mailbox.h"
#include "comm/recv_sink.h"
#include "comm/reduce.h"
#include "comm_test_util.h"
#include "mlxd/comm/rendezvous.h"
#include "mlxd/core/ops.h"

namespace mlxd::comm {
namespace {

TEST(comm_reduce, integers_wrap_bools_are_logical_halves_round) {
  std::vector<uint8_t> a{250, 1, 7}, b{10, 2, 7};
  reduce_into(a.data(), b.data(), 3, dtype::u8, reduce_op::sum);
  EXPECT_EQ(a, (std::vector<uint8_t>{4, 3, 14}));
  std::vector<uint8_t> p{0, 1, 1, 0}, q{0, 0, 1, 1};
  auto r = p;
  reduce_into(r.data(), q.data(), 4, dtype::boolean, reduce_op::sum);
  EXPECT_EQ(r, (std::vector<uint8_t>{0, 1, 1, 1}));
  r = p;
  reduce_into(r.data(), q.data(), 4, dtype::boolean, reduce_op::min);
  EXPECT_EQ(r, (std::vector<uint8_t>{0, 0, 1, 0}));
  std::vector<int32_t> big{INT32_MAX}, one{1};
  reduce_into(big.data(), one.data(), 1, dtype::i32, reduce_op::sum);
  EXPECT_EQ(big[0], INT32_MIN);
  std::vector<uint16_t> h{f32_to_f16(1.0f)}, k{f32_to_f16(0.5f)};
  reduce_into(h.data(), k.data(), 1, dtype::f16, reduce_op::sum);
  EXPECT_EQ(f16_to_f32(h[0]), 1.5f);
  std::vector<float> n{1.0f, NAN}, m{std::nanf(""), 2.0f};
  reduce_into(n.data(), m.data(), 2, dtype::f32, reduce_op::max);
  EXPECT_TRUE(std::isnan(n[0]) && std::isnan(n[1]));
  EXPECT_THROW(check_reduction("t", reduce_op::mean, dtype::i64), std::invalid_argument);
  EXPECT_NO_THROW(check_reduction("t", reduce_op::mean, dtype::bf16));
  EXPECT_THROW(check_reduction("t", reduce_op::sum, dtype::q4_k), std::invalid_argument);
}

TEST(comm_mailbox, matches_in_order_and_fails_waiters_of_a_lost_member) {
  mailbox box(3);
  auto members = std::make_shared<const std::vector<int>>(std::vector<int>{0, 1, 2});
  auto other = std::make_shared<const std::vector<int>>(std::vector<int>{0, 2});
  box.deliver(0, 1, 5, array::from({1.0f}, {1}));
  box.deliver(0, 1, 5, array::from({2.0f}, {1}));
  auto r1 = std::make_shared<request::state>(), r2 = std::make_shared<request::state>();
  box.post(0, 1, 5, members, r1);
  box.post(0, 1, 5, members, r2);
  EXPECT_EQ(r1->wait().item<float>(), 1.0f);
  EXPECT_EQ(r2->wait().item<float>(), 2.0f);
  auto waiting = std::make_shared<request::state>(), unrelated = std::make_shared<request::state>();
  waiting->what = "recv";
  box.post(0, 2, 1, members, waiting);
  box.post(7, 2, 1, other, unrelated);
  box.mark_lost(1, "rank 1 (x) was lost");
  EXPECT_THROW(waiting->wait(), comm_error);
  EXPECT_FALSE(unrelated->ready());  // a group without rank 1 is not affected
  box.deliver(7, 2, 1, array::from({3.0f}, {1}));
  EXPECT_EQ(unrelated->wait().item<float>(), 3.0f);
  auto later = std::make_shared<request::state>();
  box.post(0, 2, 2, members, later);
  try {
    later->wait();
    ADD_FAILURE();
  } catch (const comm_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 (x) was lost"), std::string::npos);
  }
}

TEST(comm_rendezvous, environment_of_launchers_and_slurm) {
  std::map<std::string, std::string> env{{"MLXD_RANK", "2"},
                                         {"MLXD_WORLD_SIZE", "5"},
                                         {"MLXD_MASTER_ADDR", "10.0.0.1"},
                                         {"MLXD_MASTER_PORT", "9000"},
                                         {"MLXD_CLUSTER_TOKEN", "s3"}};
  auto o = options_from_env(&env);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->rank, 2);
  EXPECT_EQ(o->world_size, 5);
  EXPECT_EQ(o->master_addr, "10.0.0.1");
  EXPECT_EQ(o->master_port, 9000);
  EXPECT_EQ(o->cluster_token, "s3");
  std::map<std::string, std::string> slurm{
      {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_NODELIST", "gpu[07-09,12],cpu1"}};
  o = options_from_env(&slurm);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->rank, 3);
  EXPECT_EQ(o->world_size, 4);
  EXPECT_EQ(o->master_addr, "gpu07");
  EXPECT_EQ(o->master_port, 8101);
  std::map<std::string, std::string> none{{"HOME", "/"}};
  EXPECT_FALSE(options_from_env(&none));
  std::map<std::string, std::string> bad{
      {"MLXD_RANK", "5"}, {"MLXD_WORLD_SIZE", "5"}, {"MLXD_MASTER_ADDR", "a"}};
  EXPECT_THROW(options_from_env(&bad), std::invalid_argument);
  std::map<std::string, std::string> half{{"MLXD_RANK", "0"}};
  EXPECT_THROW(options_from_env(&half), std::invalid_argument);
  std::map<std::string, std::string> peers{
      {"MLXD_RANK", "1"}, {"MLXD_WORLD_SIZE", "2"}, {"MLXD_PEERS", "a:1,[::1]:2"}};
  o = options_from_env(&peers);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->peers, (std::vector<std::string>{"a:1", "[::1]:2"}));
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("rack[3-4]-n[01-02]"), "rack3-n[01-02]");
  EXPECT_THROW(parse_peer_list("a:1,b"), std::invalid_argument);
  EXPECT_THROW(parse_peer_list("a:70000"), std::invalid_argument);
  EXPECT_EQ(split_host_port("[::1]:80"), (std::pair<std::string, int>{"::1", 80}));
  EXPECT_TRUE(is_loopback_host("127.0.0.2"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
}

// Ports for a master come from below the ephemeral range, where no outgoing connection can take them, and
// are free: a listener can bind them at once.
TEST(comm_launch, free_ports_are_bindable_and_clear_of_outgoing_connections) {
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  std::set<int> seen;
  for (int i = 0; i < 20; ++i) {
    const int port = pick_free_port();
    EXPECT_GE(port, 10000);
    EXPECT_LT(port, ephemeral_low);
    seen.insert(port);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << "port " << port;
    close(fd);
  }
  EXPECT_GT(seen.size(), 15u);  // chosen at random, not one port over and over
}

TEST(comm_local, a_group_of_one) {
  auto g = make_group("local", group_options{});
  EXPECT_EQ(g->size(), 1);
  EXPECT_EQ(g->backend(), "local");
  array x = test::seeded({3, 4}, dtype::bf16, 1);
  EXPECT_EQ(test::bytes_of(g->all_reduce(x, reduce_op::mean)), test::bytes_of(x));
  EXPECT_EQ(g->all_gather(x).shape(), (shape_t{1, 3, 4}));
  EXPECT_EQ(test::bytes_of(g->reduce_scatter(x, reduce_op::max)), test::bytes_of(x));
  EXPECT_EQ(test::bytes_of(g->broadcast(transpose(x), 0)), test::bytes_of(contiguous(transpose(x))));
  g->send(x, 0, 4);
  EXPECT_EQ(test::bytes_of(g->recv(0, 4)), test::bytes_of(x));
  g->barrier();
  EXPECT_EQ(g->split(3, 0)->size(), 1);
  EXPECT_THROW(make_group("nonesuch", group_options{}), std::invalid_argument);
  group_options two;
  two.world_size = 2;
  EXPECT_THROW(make_group("local", two), std::invalid_argument);
  register_backend("test-local", [](const group_options&) { return make_local_group(); });
  EXPECT_EQ(make_group("test-local", group_options{})->size(), 1);
}

TEST(comm_wire, chunking_and_reassembly_round_trip) {
  for (dtype t : {dtype::f32, dtype::f16, dtype::i64, dtype::boolean}) {
    array x = test::seeded({7, 9}, t, 3);
    v1::TensorChunk chunk;
    wire::assembler a({});
    std::optional<array> done;
    int n = 0;
    wire::for_each_chunk(x, 10, chunk, [&](const v1::TensorChunk& c) {
      ++n;
      ASSERT_EQ(a.add(c, done), "");
    });
    EXPECT_EQ(n, static_cast<int>((x.nbytes() + 9) / 10));
    ASSERT_TRUE(done);
    EXPECT_EQ(test::bytes_of(*done), test::bytes_of(x));
  }
}

array copy_of(const array& x) {
  array out = array::empty(x.shape(), x.type());
  std::memcpy(out.mutable_data<uint8_t>(), x.raw_data(), x.nbytes());
  return out;
}

// Bytes written into a sink in pieces that split elements anywhere give what reduce_into gives on whole
// arrays, for every dtype and op, with and without a base; plain sinks copy.
TEST(comm_recv_sink, pieces_that_split_elements_reduce_exactly) {
  const int64_t n = 50000;  // several staging buffers of every dtype
  for (dtype t : {dtype::f32, dtype::f16, dtype::bf16, dtype::i32, dtype::i64, dtype::u8, dtype::boolean}) {
    for (reduce_op op : {reduce_op::sum, reduce_op::max, reduce_op::min}) {
      for (bool with_base : {false, true}) {
        const array acc = test::seeded({n}, t, 1), msg = test::seeded({n}, t, 2);
        array want = copy_of(acc);
        reduce_into(want.mutable_data<uint8_t>(), msg.raw_data(), n, t, op);
        array dst = with_base ? array::empty({n}, t) : copy_of(acc);
        recv_sink sink(dst, true, op, with_base ? acc : array());
        const char* p = static_cast<const char*>(msg.raw_data());
        size_t at = 0, step = 1;
        while (at < msg.nbytes()) {  // pieces of 1, 4, 7, ... bytes, then big ones
          const size_t k = std::min(msg.nbytes() - at, step < 40 ? step : 70001);
          sink.write(p + at, k);
          at += k;
          step += 3;
        }
        EXPECT_EQ(test::bytes_of(dst), test::bytes_of(want))
            << name(t) << " " << reduce_op_name(op) << (with_base ? " with base" : "");
      }
    }
  }
  const array src = test::seeded({1000}, dtype::i64, 3);
  array copy = array::empty({1000}, dtype::i64);
  recv_sink plain(copy, false, reduce_op::sum);
  plain.write(static_cast<const char*>(src.raw_data()), 13);
  plain.write(static_cast<const char*>(src.raw_data()) + 13, src.nbytes() - 13);
  EXPECT_EQ(test::bytes_of(copy), test::bytes_of(src));
}

}  // namespace
}  // namespace mlxd::comm
