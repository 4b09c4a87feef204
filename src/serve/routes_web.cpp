// GET / and the page's script and style sheet, from the bytes embedded in the binary.
#include "server_state.h"
#include "web_assets.h"

namespace mlxd::serve::detail {

void add_web_routes(httplib::Server& http) {
  for (const web_asset& a : web_assets()) {
    http.Get(a.path, [&a](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
      res.set_header("Cache-Control", "no-cache");
    });
  }
}

}  // namespace mlxd::serve::detail
