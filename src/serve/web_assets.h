// The files of the chat page (src/serve/web/), embedded at build time by cmake/embed_files.cmake.
#pragma once

#include <cstddef>
#include <vector>

namespace mlxd::serve::detail {

struct web_asset {
  const char* path;  // "/" for index.html, else "/<file name>"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

const std::vector<web_asset>& web_assets();

}  // namespace mlxd::serve::detail
