#include "dist/local_link.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "mlxd/core/thread_name.h"

namespace mlxd::dist {
namespace fs = std::filesystem;
namespace {

constexpr size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Removes link-<pid>-<suffix>.sock files in `folder` whose process no longer runs (killed before it could).
void remove_orphans(const fs::path& folder) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    long pid = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "link-%ld-%*[0-9a-f].sock%n", &pid, &used) != 1 ||
        used != static_cast<int>(name.size()) || pid <= 0)
      continue;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(e.path(), ec);
  }
}

// TMPDIR/mlxd-<uid>, made if missing; throws unless it is a folder of this user's alone.
fs::path private_folder() {
  const fs::path folder = fs::temp_directory_path() / ("mlxd-" + std::to_string(getuid()));
  if (mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot make " + folder.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (lstat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error(folder.string() + " is not a folder");
  if (st.st_uid != getuid() || (st.st_mode & 0077) != 0)
    throw std::runtime_error(folder.string() + " is not this user's alone (it needs owner " +
                             std::to_string(getuid()) + " and mode 700)");
  return folder;
}

// Sends from `p` until all `n` bytes are out or the socket would block; the bytes sent, or -1 when broken.
ssize_t send_some(int fd, const char* p, size_t n, int flags) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::send(fd, p + done, n - done, flags | MSG_NOSIGNAL);
    if (w > 0) {
      done += static_cast<size_t>(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      return -1;
    }
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

std::string host_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

local_link::local_link(int fd) : fd_(fd), in_(read_ahead) {}

local_link::~local_link() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  // A writer blocked on a peer that stopped reading returns once the socket is shut.
  ::shutdown(fd_, SHUT_RDWR);
  if (writer_.joinable()) writer_.join();
  ::close(fd_);
}

bool local_link::send(const google::protobuf::MessageLite& m) {
  const size_t n = m.ByteSizeLong();
  if (n > UINT32_MAX) return false;
  std::string frame(4 + n, '\0');
  const uint32_t len = static_cast<uint32_t>(n);
  for (int i = 0; i < 4; ++i) frame[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  if (!m.SerializeToArray(frame.data() + 4, static_cast<int>(n))) return false;
  std::unique_lock lock(mu_);
  if (broken_ || write_closed_) return false;
  if (pending_.empty()) {
    const ssize_t sent = send_some(fd_, frame.data(), frame.size(), MSG_DONTWAIT);
    if (sent < 0) {
      broken_ = true;
      return false;
    }
    if (static_cast<size_t>(sent) == frame.size()) return true;
    frame.erase(0, static_cast<size_t>(sent));
  }
  pending_.push_back(std::move(frame));
  if (!writer_.joinable()) writer_ = std::thread([this] { write_loop(); });
  cv_.notify_one();
  return true;
}

void local_link::write_loop() {
  name_this_thread("mlxd-link-write");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return closing_ || !pending_.empty(); });
    if (pending_.empty()) return;  // closing, with everything out
    std::string frame = std::move(pending_.front());
    lock.unlock();
    const bool ok = send_some(fd_, frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size());
    lock.lock();
    pending_.pop_front();
    if (!ok) {
      broken_ = true;
      pending_.clear();
    }
    if (pending_.empty() && write_closed_) ::shutdown(fd_, SHUT_WR);
    if (!ok || closing_) return;
  }
}

void local_link::close_writing() {
  std::lock_guard lock(mu_);
  if (std::exchange(write_closed_, true)) return;
  // With frames still queued the writer shuts the socket after the last one.
  if (pending_.empty()) ::shutdown(fd_, SHUT_WR);
}

std::string local_link::receive(google::protobuf::MessageLite& m, size_t max_bytes) {
  if (std::string e = fill(4); !e.empty()) return e;
  const auto* head = reinterpret_cast<const unsigned char*>(in_.data() + in_begin_);
  const size_t n = size_t{head[0]} | size_t{head[1]} << 8 | size_t{head[2]} << 16 | size_t{head[3]} << 24;
  if (n > max_bytes)
    return "a message of " + std::to_string(n) + " bytes, more than the " + std::to_string(max_bytes) +
           " allowed";
  if (std::string e = fill(4 + n); !e.empty())
    return e == "closed" ? "closed inside a message of " + std::to_string(n) + " bytes" : e;
  const bool parsed = m.ParseFromArray(in_.data() + in_begin_ + 4, static_cast<int>(n));
  in_begin_ += 4 + n;
  if (in_begin_ == in_end_ && in_.size() > read_ahead) {
    in_ = std::vector<char>(read_ahead);  // a prefill chunk's megabytes are not kept
    in_begin_ = in_end_ = 0;
  }
  if (!parsed) return "a message of " + std::to_string(n) + " bytes that does not parse";
  return "";
}

std::string local_link::fill(size_t want) {
  if (in_end_ - in_begin_ >= want) return "";
  std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
  in_end_ -= in_begin_;
  in_begin_ = 0;
  if (in_.size() < want) in_.resize(want);
  while (in_end_ < want) {
    const ssize_t r = ::recv(fd_, in_.data() + in_end_, in_.size() - in_end_, 0);
    if (r > 0) {
      in_end_ += static_cast<size_t>(r);
    } else if (r == 0) {
      return "closed";
    } else if (errno != EINTR) {
      return std::string("cannot read: ") + std::strerror(errno);
    }
  }
  return "";
}

link_offer::link_offer() {
  const fs::path folder = private_folder();
  remove_orphans(folder);
  std::random_device rd;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08x%08x", rd(), rd());
  path_ = (folder / ("link-" + std::to_string(getpid()) + "-" + suffix + ".sock")).string();
  if (path_.size() > max_socket_path)
    throw std::runtime_error("the socket path " + path_ + " is longer than a Unix socket allows");
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("cannot make a Unix socket: ") + std::strerror(errno));
  const sockaddr_un a = address_of(path_);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 1) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    throw std::runtime_error("cannot listen on " + path_ + ": " + why);
  }
  description_ = host_id() + " " + path_;
}

link_offer::~link_offer() {
  ::close(fd_);
  std::error_code ec;
  fs::remove(path_, ec);
}

std::unique_ptr<local_link> link_offer::take() {
  const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) throw std::runtime_error("no connection waits on " + path_ + ": " + std::strerror(errno));
  return std::make_unique<local_link>(fd);
}

std::unique_ptr<local_link> connect_link(const std::string& description) {
  const size_t space = description.find(' ');
  if (space == std::string::npos || space == 0)
    throw std::runtime_error("a malformed offer \"" + description + "\"");
  const std::string host = description.substr(0, space), path = description.substr(space + 1);
  if (host != host_id()) throw std::runtime_error("the offer is from another machine");
  if (path.empty() || path.size() > max_socket_path || path.find('\0') != std::string::npos)
    throw std::runtime_error("a malformed socket path in the offer");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("cannot make a Unix socket: ") + std::strerror(errno));
  const sockaddr_un a = address_of(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot connect to " + path + ": " + why);
  }
  return std::make_unique<local_link>(fd);
}

}  // namespace mlxd::dist
