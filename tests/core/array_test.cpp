#include <gtest/gtest.h>

#include "mlxd/core/ops.h"

namespace mlxd {
namespace {

TEST(Array, ScalarHoldsValue) { EXPECT_EQ(array(3.5f).item<float>(), 3.5f); }

}  // namespace
}  // namespace mlxd
