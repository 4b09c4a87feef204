// What the bench commands take from repeated runs.
#pragma once

#include <algorithm>
#include <vector>

namespace mlxd::app {

// The middle value of `v` (the upper of the two middle ones for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace mlxd::app
