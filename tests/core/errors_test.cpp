// Misuse throws std::invalid_argument naming the op and the shapes involved.
#include <gtest/gtest.h>

#include <functional>

#include "mlxd/core/autograd.h"
#include "test_util.h"

namespace mlxd {
namespace {

void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos) << msg << " lacks " << frag;
  }
}

TEST(Errors, MessagesNameTheOpAndShapes) {
  const array a = zeros({2, 3}), b = zeros({4});
  expect_error([&] { add(a, b); }, {"[add]", "f32[2,3]", "f32[4]"});
  expect_error([&] { matmul(a, a); }, {"[matmul]", "f32[2,3]"});
  expect_error([&] { reshape(a, {4, 2}); }, {"[reshape]", "f32[2,3]", "[4,2]"});
  expect_error([&] { sum(a, {2}); }, {"[sum]", "axis 2"});
  expect_error([&] { transpose(a, {0, 0}); }, {"[transpose]"});
  expect_error([&] { softmax(a, 5); }, {"[softmax]"});
  expect_error([&] { concatenate({a, b}); }, {"[concatenate]", "f32[2,3]", "f32[4]"});
  expect_error([&] { take(a, array::from({0.5f}, {1})); }, {"[take]", "integers"});
  expect_error([&] { cross_entropy(a, zeros({3}, dtype::i32)); }, {"[cross_entropy]", "f32[2,3]"});
  expect_error([&] { rope(zeros({4}), {}); }, {"[rope]", "f32[4]"});
  expect_error([&] { a.item<float>(); }, {"[item]", "f32[2,3]"});
  expect_error([&] { value_and_grad([](const std::vector<array>& x) { return x[0]; }, {a}); },
               {"[value_and_grad]", "f32[2,3]"});
}

}  // namespace
}  // namespace mlxd
