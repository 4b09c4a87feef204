// What a node refuses: calls without the cluster token, another protocol major version, malformed chunks
// (each rejected with INVALID_ARGUMENT while the server keeps serving), and TLS peers from a foreign CA.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "comm/grpc/node.h"
#include "comm_test_util.h"

namespace mlxd::comm {
namespace {

namespace fs = std::filesystem;
using grpc::StatusCode;

// A lone server of rank 0 in a world of 2, with its mailbox: the test plays rank 1 with raw stubs.
struct lone_server {
  explicit lone_server(std::string token, wire::limits limits = {}, group_options o = {})
      : service(rpc::identity{0, 2, "lone", std::move(token), limits}, &box) {
    server = rpc::start_server(service, "127.0.0.1", 0, o, &port);
  }
  ~lone_server() { server->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  // The next message from rank 1 with `tag`, or a failure after `wait`.
  array take(uint64_t tag, std::chrono::milliseconds wait = std::chrono::seconds(2)) {
    auto r = std::make_shared<request::state>();
    r->what = "test recv";
    r->timeout = wait;
    r->deadline = request::state::clock::now() + r->timeout;
    box.post(0, 1, tag, std::make_shared<const std::vector<int>>(std::vector<int>{0, 1}), r);
    return r->wait();
  }

  mailbox box{2};
  rpc::comm_service service;
  std::unique_ptr<rpc::comm_server> server;
  int port = 0;
};

std::unique_ptr<v1::Comm::Stub> stub_for(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials()) {
  return v1::Comm::NewStub(grpc::CreateChannel(address, creds));
}

void prepare(grpc::ClientContext& ctx, const std::string& token, const std::string& version = "1.0") {
  if (!version.empty()) ctx.AddMetadata("mlxd-protocol", version);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

grpc::Status hello(v1::Comm::Stub& stub, const std::string& token, const std::string& version = "1.0",
                   uint32_t body_major = 1) {
  grpc::ClientContext ctx;
  prepare(ctx, token, version);
  v1::HelloRequest req;
  req.set_protocol_major(body_major);
  req.set_rank(-1);
  v1::HelloReply reply;
  return stub.Hello(&ctx, req, &reply);
}

// Sends the envelopes on one Exchange stream as rank 1; returns the final status.
grpc::Status exchange(v1::Comm::Stub& stub, const std::string& token,
                      const std::vector<v1::Envelope>& envelopes) {
  grpc::ClientContext ctx;
  prepare(ctx, token);
  ctx.AddMetadata("mlxd-rank", "1");
  v1::ExchangeSummary summary;
  auto writer = stub.Exchange(&ctx, &summary);
  for (const auto& e : envelopes)
    if (!writer->Write(e)) break;
  writer->WritesDone();
  return writer->Finish();
}

v1::Envelope chunk_of(uint64_t tag, v1::DType t, std::vector<int64_t> shape, uint64_t total, uint64_t offset,
                      std::string data) {
  v1::Envelope e;
  e.set_tag(tag);
  auto* c = e.mutable_chunk();
  c->set_dtype(t);
  for (auto d : shape) c->add_shape(d);
  c->set_total_bytes(total);
  c->set_offset(offset);
  c->set_data(std::move(data));
  return e;
}

v1::Envelope goodbye(std::string reason = "") {
  v1::Envelope e;
  e.set_goodbye(true);
  e.set_goodbye_reason(std::move(reason));
  return e;
}

// A good two-chunk f32[2,2] message with tag `tag`, then goodbye.
std::vector<v1::Envelope> good_message(uint64_t tag) {
  const float v[4] = {1.0f, -2.0f, 3.5f, 0.25f};
  const char* p = reinterpret_cast<const char*>(v);
  return {chunk_of(tag, v1::DTYPE_F32, {2, 2}, 16, 0, std::string(p, 10)),
          chunk_of(tag, v1::DTYPE_F32, {2, 2}, 16, 10, std::string(p + 10, 6)), goodbye()};
}

TEST(comm_security, token_is_checked_on_every_call) {
  lone_server s("sesame");
  auto stub = stub_for(s.address());
  EXPECT_EQ(hello(*stub, "").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(hello(*stub, "wrong").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(hello(*stub, "sesamf").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(exchange(*stub, "", good_message(1)).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(exchange(*stub, "nope", good_message(1)).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THROW(s.take(1, std::chrono::milliseconds(200)), comm_error);  // nothing was delivered
  EXPECT_TRUE(hello(*stub, "sesame").ok());
  EXPECT_TRUE(exchange(*stub, "sesame", good_message(2)).ok());
  EXPECT_EQ(s.take(2).to_vector<float>(), (std::vector<float>{1.0f, -2.0f, 3.5f, 0.25f}));
}

TEST(comm_security, another_major_version_is_refused_clearly) {
  lone_server s("");
  auto stub = stub_for(s.address());
  grpc::Status st = hello(*stub, "", "2.0");
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("speaks mlxd protocol 2.0"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("major versions must match"), std::string::npos) << st.error_message();
  st = hello(*stub, "", "1.0", 3);
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("3.0"), std::string::npos) << st.error_message();
  EXPECT_EQ(hello(*stub, "", "").error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(hello(*stub, "", "one").error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(hello(*stub, "", "1.7").ok());  // a newer minor version is welcome
}

TEST(comm_security, malformed_chunks_are_rejected_and_the_server_keeps_serving) {
  wire::limits limits;
  limits.max_message_bytes = 64;
  limits.max_tensor_bytes = 1024;
  lone_server s("", limits);
  auto stub = stub_for(s.address());
  const std::string eight(8, 'x');
  struct bad_case {
    const char* what;
    std::vector<v1::Envelope> envelopes;
  };
  std::vector<bad_case> cases = {
      {"unknown dtype", {chunk_of(1, static_cast<v1::DType>(99), {2}, 8, 0, eight)}},
      {"unspecified dtype", {chunk_of(1, v1::DTYPE_UNSPECIFIED, {2}, 8, 0, eight)}},
      {"total_bytes lies", {chunk_of(1, v1::DTYPE_F32, {3}, 8, 0, eight)}},
      {"negative dimension", {chunk_of(1, v1::DTYPE_F32, {-2}, 8, 0, eight)}},
      {"shape overflows", {chunk_of(1, v1::DTYPE_U8, {1LL << 40, 1LL << 40}, 0, 0, "")}},
      {"tensor over the limit", {chunk_of(1, v1::DTYPE_U8, {2048}, 2048, 0, eight)}},
      {"chunk over the limit", {chunk_of(1, v1::DTYPE_U8, {100}, 100, 0, std::string(100, 'y'))}},
      {"first offset not 0", {chunk_of(1, v1::DTYPE_U8, {16}, 16, 8, eight)}},
      {"offset gap",
       {chunk_of(1, v1::DTYPE_U8, {24}, 24, 0, eight), chunk_of(1, v1::DTYPE_U8, {24}, 24, 16, eight)}},
      {"offset out of range",
       {chunk_of(1, v1::DTYPE_U8, {12}, 12, 0, eight), chunk_of(1, v1::DTYPE_U8, {12}, 12, 8, eight)}},
      {"data past the end", {chunk_of(1, v1::DTYPE_U8, {4}, 4, 0, eight)}},
      {"header changes",
       {chunk_of(1, v1::DTYPE_U8, {16}, 16, 0, eight), chunk_of(1, v1::DTYPE_I32, {4}, 16, 8, eight)}},
      {"tag changes",
       {chunk_of(1, v1::DTYPE_U8, {16}, 16, 0, eight), chunk_of(2, v1::DTYPE_U8, {16}, 16, 8, eight)}},
      {"truncated stream", {chunk_of(1, v1::DTYPE_U8, {16}, 16, 0, eight)}},
      {"goodbye inside a tensor", {chunk_of(1, v1::DTYPE_U8, {16}, 16, 0, eight), goodbye()}},
      {"envelope without a chunk", {v1::Envelope()}},
      {"goodbye reason over the limit", {goodbye(std::string(wire::max_goodbye_reason + 1, 'r'))}},
      {"too many dimensions", {chunk_of(1, v1::DTYPE_U8, std::vector<int64_t>(40, 1), 1, 0, "z")}},
  };
  uint64_t tag = 100;
  for (const auto& c : cases) {
    grpc::Status st = exchange(*stub, "", c.envelopes);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << c.what << ": " << st.error_message();
    // A later good call succeeds and its tensor arrives intact.
    ++tag;
    EXPECT_TRUE(exchange(*stub, "", good_message(tag)).ok()) << "after " << c.what;
    EXPECT_EQ(s.take(tag).to_vector<float>(), (std::vector<float>{1.0f, -2.0f, 3.5f, 0.25f}))
        << "after " << c.what;
  }
  // An Exchange that claims no rank, or this node's own, is refused too.
  grpc::ClientContext ctx;
  prepare(ctx, "");
  ctx.AddMetadata("mlxd-rank", "0");
  v1::ExchangeSummary summary;
  auto writer = stub->Exchange(&ctx, &summary);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), StatusCode::INVALID_ARGUMENT);
}

// A rank that leaves because it lost another tells why; a recv that waited on it names that cause.
TEST(comm_security, a_goodbye_after_an_error_names_its_cause_to_those_waiting) {
  lone_server s("");
  auto stub = stub_for(s.address());
  ASSERT_TRUE(exchange(*stub, "", {goodbye()}).ok());
  try {
    s.take(1);
    ADD_FAILURE() << "a recv from a rank that left succeeded";
  } catch (const comm_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 has left the group"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("after an error"), std::string::npos) << e.what();
  }
  const std::string cause = "rank 3 (10.0.0.4:8101) was lost: keepalive timed out";
  ASSERT_TRUE(exchange(*stub, "", {goodbye(cause)}).ok());
  try {
    s.take(2);
    ADD_FAILURE() << "a recv from a rank that left succeeded";
  } catch (const comm_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 has left the group after an error: " + cause),
              std::string::npos)
        << e.what();
  }
}

TEST(comm_security, echo_returns_the_tensor_intact) {
  lone_server s("t0k");
  auto stub = stub_for(s.address());
  grpc::ClientContext ctx;
  prepare(ctx, "t0k");
  auto stream = stub->Echo(&ctx);
  array x = test::seeded({3, 1000}, dtype::bf16, 5);
  v1::TensorChunk chunk;
  wire::for_each_chunk(x, 1000, chunk, [&](const v1::TensorChunk& c) { ASSERT_TRUE(stream->Write(c)); });
  wire::assembler assembler({});
  std::optional<array> back;
  v1::TensorChunk in;
  while (!back && stream->Read(&in)) ASSERT_EQ(assembler.add(in, back), "");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->shape(), x.shape());
  EXPECT_EQ(test::bytes_of(*back), test::bytes_of(x));
}

TEST(comm_security, a_group_with_the_wrong_token_does_not_form) {
  try {
    test::run_ranks(
        2, [](group&) {},
        [](group_options& o) {
          o.cluster_token = o.rank == 0 ? "right" : "wrong";
          o.connect_timeout = std::chrono::seconds(1);
        });
    ADD_FAILURE() << "the group formed";
  } catch (const comm_error& e) {
    EXPECT_NE(std::string(e.what()).find("rendezvous"), std::string::npos) << e.what();
  }
}

TEST(comm_security, listening_beyond_loopback_needs_a_token) {
  group_options o = test::loopback_options(0, 2, test::free_port());
  o.bind_host = "0.0.0.0";
  try {
    make_group("grpc", o);
    ADD_FAILURE() << "listened on all interfaces without a token";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cluster token is required"), std::string::npos) << e.what();
  }
}

// Certificates made at test time: a CA, a node certificate it signs (for 127.0.0.1, server and client use),
// and a second CA with its own client certificate.
class comm_tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/mlxd-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string d = dir_;
    const std::string script =
        "set -e; cd " + d +
        "; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n' > "
        "ext.cnf"
        "; for ca in ca other; do"
        "   openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca -keyout $ca.key -out $ca.pem "
        "2>/dev/null;"
        "   openssl req -newkey rsa:2048 -nodes -subj /CN=node-$ca -keyout node-$ca.key -out node-$ca.csr "
        "2>/dev/null;"
        "   openssl x509 -req -in node-$ca.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 -extfile "
        "ext.cnf"
        "     -out node-$ca.pem 2>/dev/null;"
        " done";
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string file(const std::string& name) { return dir_ + "/" + name; }
  static std::string read(const std::string& name) {
    std::ifstream in(file(name));
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static inline std::string dir_;
};

TEST_F(comm_tls, mutual_tls_group_works_and_a_foreign_ca_is_refused) {
  test::run_ranks(
      2,
      [](group& g) {
        array s = g.all_reduce(array::from(std::vector<int32_t>{g.rank() + 1}, {1}), reduce_op::sum);
        EXPECT_EQ(s.item<int32_t>(), 3);
      },
      [](group_options& o) {
        o.tls_cert = file("node-ca.pem");
        o.tls_key = file("node-ca.key");
        o.tls_ca = file("ca.pem");
      });

  group_options o;
  o.tls_cert = file("node-ca.pem");
  o.tls_key = file("node-ca.key");
  o.tls_ca = file("ca.pem");
  mailbox box(2);
  rpc::comm_service service(rpc::identity{0, 2, "tls", "", {}}, &box);
  int port = 0;
  auto server = rpc::start_server(service, "127.0.0.1", 0, o, &port);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  grpc::SslCredentialsOptions good{read("ca.pem"), read("node-ca.key"), read("node-ca.pem")};
  EXPECT_TRUE(hello(*stub_for(address, grpc::SslCredentials(good)), "").ok());
  grpc::SslCredentialsOptions foreign{read("ca.pem"), read("node-other.key"), read("node-other.pem")};
  EXPECT_FALSE(hello(*stub_for(address, grpc::SslCredentials(foreign)), "").ok());
  grpc::SslCredentialsOptions no_cert{read("ca.pem"), "", ""};
  EXPECT_FALSE(hello(*stub_for(address, grpc::SslCredentials(no_cert)), "").ok());
  EXPECT_FALSE(hello(*stub_for(address), "").ok());  // plaintext
  server->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

TEST_F(comm_tls, a_node_refuses_a_server_signed_by_another_ca) {
  mailbox box(2);
  rpc::comm_service service(rpc::identity{0, 2, "tls", "", {}}, &box);
  group_options o;
  o.tls_cert = file("node-other.pem");
  o.tls_key = file("node-other.key");
  int port = 0;
  auto server = rpc::start_server(service, "127.0.0.1", 0, o, &port);
  grpc::SslCredentialsOptions trusting_ours{read("ca.pem"), "", ""};
  EXPECT_FALSE(
      hello(*stub_for("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(trusting_ours)), "").ok());
  server->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

}  // namespace
}  // namespace mlxd::comm
