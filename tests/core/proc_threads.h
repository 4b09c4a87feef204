// The threads of this process as /proc lists them, for tests of thread names and of sleeping workers.
#pragma once

#include <dirent.h>

#include <fstream>
#include <map>
#include <string>

namespace mlxd::test {

// Each thread's name, by thread id.
inline std::map<std::string, std::string> threads_by_id() {
  std::map<std::string, std::string> out;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::getline(comm, out[e->d_name]);
  }
  closedir(dir);
  return out;
}

}  // namespace mlxd::test
