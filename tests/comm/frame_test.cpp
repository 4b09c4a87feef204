// The hand-written Envelope codec against protobuf's own: what frame.h encodes, the generated parser reads
// field for field; what protobuf serializes (in any field order, packed or not, with unknown fields), frame.h
// decodes; truncated and malformed bytes are refused, never read past.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/grpc/frame.h"
#include "comm_test_util.h"

namespace mlxd::comm {
namespace {

std::string bytes_of_buffer(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// `bytes` as a ByteBuffer of slices cut at `cuts` (so decoding must cross slice boundaries).
grpc::ByteBuffer buffer_of(const std::string& bytes, std::vector<size_t> cuts = {}) {
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  cuts.push_back(bytes.size());
  for (size_t c : cuts) {
    slices.emplace_back(bytes.data() + at, c - at);
    at = c;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string data_of(const frame::envelope& e) {
  std::string out;
  e.for_each_data_piece([&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

TEST(comm_frame, encoded_chunks_parse_as_protobuf_envelopes) {
  // Copied (small) and referenced (large) data, an empty tensor and a scalar.
  const array big = test::seeded({3, 40000}, dtype::f32, 3);
  struct want {
    array x;
    size_t offset, n;
  };
  for (const auto& w :
       {want{big, 4000, 200000}, want{big, 0, 16}, want{array::empty({0, 5}, dtype::i64), 0, 0},
        want{array(2.5f), 0, 4}, want{test::seeded({7}, dtype::bf16, 1), 2, 12}}) {
    grpc::ByteBuffer b =
        frame::encode_chunk(0x0123456789abcdefULL, (uint64_t{1} << 62) + 5, w.x, w.offset, w.n, 64 << 10);
    v1::Envelope e;
    ASSERT_TRUE(e.ParseFromString(bytes_of_buffer(b))) << w.x.to_string();
    EXPECT_EQ(e.group(), 0x0123456789abcdefULL);
    EXPECT_EQ(e.tag(), (uint64_t{1} << 62) + 5);
    EXPECT_FALSE(e.goodbye());
    EXPECT_EQ(e.chunk().dtype(), wire::to_wire(w.x.type()));
    EXPECT_EQ(std::vector<int64_t>(e.chunk().shape().begin(), e.chunk().shape().end()), w.x.shape());
    EXPECT_EQ(e.chunk().total_bytes(), w.x.nbytes());
    EXPECT_EQ(e.chunk().offset(), w.offset);
    EXPECT_EQ(e.chunk().data(), std::string(static_cast<const char*>(w.x.raw_data()) + w.offset, w.n));
  }
  v1::Envelope bye;
  ASSERT_TRUE(bye.ParseFromString(bytes_of_buffer(frame::encode_goodbye())));
  EXPECT_TRUE(bye.goodbye());
  EXPECT_EQ(bye.goodbye_reason(), "");
  EXPECT_FALSE(bye.has_chunk());
}

TEST(comm_frame, a_goodbye_reason_is_cut_to_the_limit_and_a_longer_one_refused) {
  for (size_t n : {size_t{5}, size_t{300}, wire::max_goodbye_reason, wire::max_goodbye_reason + 40}) {
    const std::string reason(n, 'w');
    grpc::ByteBuffer b = frame::encode_goodbye(reason);
    v1::Envelope e;
    ASSERT_TRUE(e.ParseFromString(bytes_of_buffer(b)));
    EXPECT_TRUE(e.goodbye());
    EXPECT_EQ(e.goodbye_reason(), reason.substr(0, wire::max_goodbye_reason));
    frame::envelope d;
    ASSERT_EQ(d.parse(b), "");
    EXPECT_TRUE(d.goodbye);
    EXPECT_EQ(d.goodbye_reason, e.goodbye_reason());
  }
  v1::Envelope e;
  e.set_goodbye(true);
  e.set_goodbye_reason(std::string(wire::max_goodbye_reason + 1, 'x'));
  frame::envelope d;
  EXPECT_NE(d.parse(buffer_of(e.SerializeAsString(), {7})).find("goodbye reason of 1025 bytes"),
            std::string::npos);
  e.set_goodbye_reason("cut");
  std::string bytes = e.SerializeAsString();
  EXPECT_EQ(d.parse(buffer_of(bytes, {4})), "");
  EXPECT_EQ(d.goodbye_reason, "cut");
  bytes.pop_back();
  EXPECT_EQ(d.parse(buffer_of(bytes, {})), "truncated goodbye reason");
}

TEST(comm_frame, protobuf_envelopes_decode_across_slices) {
  v1::Envelope e;
  e.set_group(77);
  e.set_tag(12345);
  auto* c = e.mutable_chunk();
  c->set_dtype(v1::DTYPE_I32);
  for (int64_t d : {2, 3, -1}) c->add_shape(d);
  c->set_total_bytes(24);
  c->set_offset(8);
  c->set_data(std::string("0123456789abcdef"));
  const std::string bytes = e.SerializeAsString();
  for (std::vector<size_t> cuts : {std::vector<size_t>{}, {1}, {5, 9, 20, 21}, {bytes.size() - 3}}) {
    frame::envelope d;
    ASSERT_EQ(d.parse(buffer_of(bytes, cuts)), "");
    EXPECT_EQ(d.group, 77u);
    EXPECT_EQ(d.tag, 12345u);
    ASSERT_TRUE(d.has_chunk);
    EXPECT_EQ(d.chunk.dtype, v1::DTYPE_I32);
    EXPECT_EQ(d.chunk.shape, (std::vector<int64_t>{2, 3, -1}));
    EXPECT_EQ(d.chunk.total_bytes, 24u);
    EXPECT_EQ(d.chunk.offset, 8u);
    EXPECT_EQ(d.data_size(), 16u);
    EXPECT_EQ(data_of(d), "0123456789abcdef");
  }
}

TEST(comm_frame, any_field_order_unpacked_shapes_and_unknown_fields) {
  // Hand-built: unknown fields of every wire type, the chunk before the tags, shape unpacked in two parts,
  // and the data before the header fields.
  const std::string chunk = std::string("\x2a\x03xyz", 5) +          // data "xyz"
                            std::string("\x10\x03", 2) +             // shape 3 (unpacked)
                            std::string("\x12\x01\x01", 3) +         // shape [1] (packed)
                            std::string("\x08\x06", 2) +             // dtype u8
                            std::string("\x18\x03", 2) +             // total_bytes 3
                            std::string("\x3d\x01\x02\x03\x04", 5);  // field 7, fixed32 (unknown)
  const std::string bytes = std::string("\x1a", 1) + static_cast<char>(chunk.size()) + chunk +
                            std::string("\x48\x96\x01", 3) +  // field 9 varint (unknown)
                            std::string("\x52\x02hi", 4) +    // field 10 bytes (unknown)
                            std::string("\x11\x05\x00\x00\x00\x00\x00\x00\x00", 9);  // tag 5
  frame::envelope d;
  ASSERT_EQ(d.parse(buffer_of(bytes, {3, 4, 11})), "");
  EXPECT_EQ(d.tag, 5u);
  EXPECT_EQ(d.group, 0u);
  EXPECT_EQ(d.chunk.dtype, v1::DTYPE_U8);
  EXPECT_EQ(d.chunk.shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(d.chunk.total_bytes, 3u);
  EXPECT_EQ(data_of(d), "xyz");
  v1::Envelope e;  // protobuf agrees
  ASSERT_TRUE(e.ParseFromString(bytes));
  EXPECT_EQ(e.chunk().shape_size(), 2);
}

TEST(comm_frame, truncated_or_malformed_bytes_are_refused) {
  v1::Envelope e;
  e.set_tag(9);
  e.mutable_chunk()->set_dtype(v1::DTYPE_F32);
  e.mutable_chunk()->add_shape(2);
  e.mutable_chunk()->set_total_bytes(8);
  e.mutable_chunk()->set_data(std::string(8, 'q'));
  const std::string bytes = e.SerializeAsString();  // the tag field (9 bytes), then the chunk field
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    if (cut == 9) continue;  // a message of only the tag is valid
    frame::envelope d;
    EXPECT_NE(d.parse(buffer_of(bytes.substr(0, cut))), "") << "cut at " << cut;
  }
  const std::vector<std::string> bad = {
      std::string("\x1b", 1),                                           // group wire type (3)
      std::string("\x1a\x05\x08", 3),                                   // chunk longer than the message
      std::string("\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11),  // varint of 70 bits
      std::string("\x1a\x03\x2a\x05x", 5),                              // data longer than its chunk
      std::string("\x1a\x03\x12\x05\x01", 5),                           // packed shape longer than its chunk
  };
  for (const auto& b : bad) {
    frame::envelope d;
    EXPECT_NE(d.parse(buffer_of(b)), "") << testing::PrintToString(b);
  }
  // More dimensions than any tensor may have, refused before they are stored.
  std::string dims = "\x12";
  dims += static_cast<char>(40);
  dims += std::string(40, '\x01');
  const std::string many = std::string("\x1a", 1) + static_cast<char>(dims.size()) + dims;
  frame::envelope d;
  EXPECT_NE(d.parse(buffer_of(many)).find("dimensions"), std::string::npos);
}

}  // namespace
}  // namespace mlxd::comm
