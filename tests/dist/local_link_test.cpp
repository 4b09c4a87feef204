// (protocol 1.8) Local links: the framing on a socket pair (order, sizes beyond the socket's buffer, and what
// is not a message), the offer and its answer, and in-process workers of one machine that link their stages
// and give the tokens they give over gRPC.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "dist/local_link.h"
#include "dist/stage_rpc.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/worker.h"
#include "stage_steps.h"

namespace mlxd::dist {
namespace {

constexpr size_t limit = rpc::max_message_bytes;

// Two ends of a connected socket pair: `a` as a link, `b` as a raw descriptor.
struct pair_ends {
  pair_ends() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    a = std::make_unique<local_link>(fds[0]);
    b = fds[1];
  }
  ~pair_ends() {
    if (b >= 0) ::close(b);
  }
  void raw(const std::string& bytes) const {
    ASSERT_EQ(::write(b, bytes.data(), bytes.size()), ssize_t(bytes.size()));
  }
  std::unique_ptr<local_link> a;
  int b = -1;
};

std::string length_prefix(uint32_t n) {
  return std::string{static_cast<char>(n & 0xff), static_cast<char>(n >> 8 & 0xff),
                     static_cast<char>(n >> 16 & 0xff), static_cast<char>(n >> 24)};
}

v1::StepRequest step_with(uint64_t id, size_t floats) {
  v1::StepRequest s;
  s.set_step_id(id);
  v1::TensorChunk* h = s.mutable_hidden();
  h->add_shape(static_cast<int64_t>(floats));
  std::string data(floats * sizeof(float), '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + id);
  h->set_data(data);
  return s;
}

// A message of 16 MB does not fit a socket's buffer: it goes out on the link's writer thread, the caller does
// not wait for the reader, and the small messages around it keep their order.
TEST(LocalLink, MessagesArriveInOrderWhateverTheirSize) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  local_link from(fds[0]), to(fds[1]);
  const std::vector<v1::StepRequest> sent = {step_with(1, 768), step_with(2, 4 << 20), step_with(3, 768)};
  for (const auto& s : sent) ASSERT_TRUE(from.send(s));
  for (const auto& want : sent) {
    v1::StepRequest got;
    ASSERT_EQ(to.receive(got, limit), "");
    EXPECT_EQ(got.step_id(), want.step_id());
    EXPECT_EQ(got.hidden().data(), want.hidden().data());
  }
  from.close_writing();
  v1::StepRequest after;
  EXPECT_EQ(to.receive(after, limit), "closed");
}

// One read takes what the socket holds: steps that arrived together wait in the link (poll() would not see
// them), and a frame that arrives in pieces is read whole.
TEST(LocalLink, StepsReadTogetherWaitInTheLink) {
  pair_ends p;
  std::string frames;
  for (uint64_t id : {1, 2, 3}) {
    const std::string bytes = step_with(id, 768).SerializeAsString();
    frames += length_prefix(static_cast<uint32_t>(bytes.size())) + bytes;
  }
  p.raw(frames);
  for (uint64_t id : {1, 2, 3}) {
    v1::StepRequest got;
    ASSERT_EQ(p.a->receive(got, limit), "");
    EXPECT_EQ(got.step_id(), id);
    EXPECT_EQ(got.hidden().data(), step_with(id, 768).hidden().data());
    EXPECT_EQ(p.a->buffered(), id < 3) << id;
  }
  const std::string bytes = step_with(4, 768).SerializeAsString();
  const std::string frame = length_prefix(static_cast<uint32_t>(bytes.size())) + bytes;
  std::thread late([&] {
    p.raw(frame.substr(0, 2));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.raw(frame.substr(2, 100));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.raw(frame.substr(102));
  });
  v1::StepRequest got;
  EXPECT_EQ(p.a->receive(got, limit), "");
  late.join();
  EXPECT_EQ(got.step_id(), 4u);
  EXPECT_EQ(got.hidden().data(), step_with(4, 768).hidden().data());
  EXPECT_FALSE(p.a->buffered());
}

TEST(LocalLink, RefusesWhatIsNotAMessage) {
  v1::StepRequest m;
  {
    pair_ends p;
    p.raw(length_prefix(static_cast<uint32_t>(limit) + 1));
    EXPECT_EQ(p.a->receive(m, limit), "a message of " + std::to_string(limit + 1) + " bytes, more than the " +
                                          std::to_string(limit) + " allowed");
  }
  {
    pair_ends p;
    p.raw(length_prefix(3) + "\xff\xff\xff");
    EXPECT_EQ(p.a->receive(m, limit), "a message of 3 bytes that does not parse");
  }
  {
    pair_ends p;
    p.raw(length_prefix(10) + "abc");
    ::close(std::exchange(p.b, -1));
    EXPECT_EQ(p.a->receive(m, limit), "closed inside a message of 10 bytes");
  }
  {
    pair_ends p;
    p.raw("\x01\x00");
    ::close(std::exchange(p.b, -1));
    EXPECT_EQ(p.a->receive(m, limit), "closed");
  }
}

TEST(LocalLink, SendFailsOnceThePeerIsGone) {
  pair_ends p;
  ::close(std::exchange(p.b, -1));
  EXPECT_FALSE(p.a->send(step_with(1, 4)));
  EXPECT_FALSE(p.a->send(step_with(2, 4)));
}

// The peer connects before it answers, so the offer takes a connection that waits; an offer from another
// machine, or one that does not say where, is refused before any connect.
TEST(LinkOffer, TakesTheConnectionOfItsPeerOnThisMachine) {
  link_offer offer;
  EXPECT_THROW(
      {
        try {
          offer.take();
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("no connection waits"), std::string::npos) << e.what();
          throw;
        }
      },
      std::runtime_error);
  std::unique_ptr<local_link> peer = connect_link(offer.description());
  std::unique_ptr<local_link> mine = offer.take();
  ASSERT_TRUE(mine->send(step_with(5, 16)));
  v1::StepRequest got;
  ASSERT_EQ(peer->receive(got, limit), "");
  EXPECT_EQ(got.step_id(), 5u);
  ASSERT_TRUE(peer->send(step_with(6, 16)));
  ASSERT_EQ(mine->receive(got, limit), "");
  EXPECT_EQ(got.step_id(), 6u);

  const auto refusal = [](const std::string& description) {
    try {
      connect_link(description);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("connected");
  };
  const std::string path = offer.description().substr(offer.description().find(' ') + 1);
  EXPECT_EQ(refusal("another-boot " + path), "the offer is from another machine");
  EXPECT_EQ(refusal("no-space"), "a malformed offer \"no-space\"");
  EXPECT_NE(refusal(host_id() + " /nonexistent/link.sock").find("cannot connect to /nonexistent/link.sock"),
            std::string::npos);
}

// Two in-process workers of one machine: both stage pairs link (the Run streams' and the Loop's), the last
// stage links its replies to the coordinator (1.9), and the tokens are those of the same workers over gRPC
// alone, with rings and with steps sent one by one. (The pipeline tests run 3 and 4 worker processes, linked,
// against one node.)
TEST(LocalLinks, StagesOfOneMachineLinkAndGiveTheSameTokens) {
  two_workers w;
  const auto run = [&](bool links, int ring) {
    coordinator_options o = w.options();
    o.local_links = links;
    o.ring_tokens = ring;
    coordinator c(golden_gqa, o);
    generation_result r = c.generate(seeded_request(24));
    std::vector<uint64_t> made;
    for (const node_status& n : c.status(1)) made.push_back(n.local_links);
    EXPECT_EQ(sequences_held(c), std::vector<uint32_t>(2, 0));
    return std::make_pair(r, made);
  };
  const auto [alone, none] = run(false, 8);
  ASSERT_EQ(alone.tokens.size(), 24u);
  EXPECT_EQ(none, std::vector<uint64_t>(2, 0));
  EXPECT_FALSE(alone.reply_link);
  // The first stage makes its link down and its Loop's; the last takes both, and the coordinator's.
  const auto [ringed, after_rings] = run(true, 8);
  EXPECT_EQ(after_rings, (std::vector<uint64_t>{2, 3}));
  EXPECT_TRUE(ringed.reply_link);
  EXPECT_EQ(ringed.tokens, alone.tokens);
  EXPECT_EQ(ringed.logprobs, alone.logprobs);
  EXPECT_GT(ringed.looped_steps, 0);
  const auto [stepped, after_steps] = run(true, 0);
  EXPECT_EQ(stepped.tokens, alone.tokens);
  EXPECT_EQ(stepped.looped_steps, 0);
  EXPECT_EQ(after_steps, (std::vector<uint64_t>{4, 6}));
  EXPECT_TRUE(stepped.reply_link);
}

// (1.9) Sequences generating at once share the reply link: one waiting thread reads it at a time and hands
// the others their replies, then the link to the next that still waits. Each gets what it gets alone.
TEST(LocalLinks, SequencesAtOnceShareTheReplyLink) {
  two_workers w;
  coordinator c(golden_gqa, w.options());
  constexpr int n = 8;
  const auto request = [](int i) {
    generation_request r = seeded_request(12 + 3 * i);
    r.sampling.seed = 100 + static_cast<uint64_t>(i);
    return r;
  };
  std::vector<generation_result> alone, together(n);
  for (int i = 0; i < n; ++i) alone.push_back(c.generate(request(i)));
  for (int round = 0; round < 5; ++round) {
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { together[i] = c.generate(request(i)); });
    for (auto& t : threads) t.join();
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(together[i].reply_link) << i;
      EXPECT_EQ(together[i].tokens, alone[i].tokens) << "round " << round << ", sequence " << i;
    }
  }
  EXPECT_EQ(sequences_held(c), std::vector<uint32_t>(2, 0));
}

}  // namespace
}  // namespace mlxd::dist
