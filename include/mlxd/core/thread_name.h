// Names the calling thread, so that `top -H`, `perf sched timehist` and gdb tell mlxd's threads apart (a
// pipeline hop is a chain of wake-ups between them). Linux keeps 15 characters; longer names are cut.
#pragma once

#include <string>

namespace mlxd {

void name_this_thread(const std::string& name);

}  // namespace mlxd
