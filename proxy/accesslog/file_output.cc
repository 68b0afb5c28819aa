#include "proxy/accesslog/file_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/base/log.h"

namespace berth::accesslog {
namespace {
// O_NONBLOCK for the open only: a FIFO without a reader then fails (ENXIO) instead of blocking
// the opening thread (start-up, or a threadpool thread on reopen) until one comes.
constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK;
constexpr int kOpenMode = 0644;

// Writes block again (the writer thread waits for a slow disk or reader; nothing else does).
void clear_nonblock(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

std::string open_error(int error) {
  return error == ENXIO ? std::string("a FIFO with no reader") : std::strerror(error);
}

struct ReopenRequest {
  uv_fs_t fs;
  FileOutput* output;
};
}  // namespace

std::unique_ptr<FileOutput> FileOutput::open(const std::string& path, std::string& error) {
  if (path == "-") return std::unique_ptr<FileOutput>(new FileOutput(path, STDOUT_FILENO, false));
  int fd = ::open(path.c_str(), kOpenFlags, kOpenMode);
  if (fd < 0) {
    error = "cannot open '" + path + "': " + open_error(errno);
    return nullptr;
  }
  clear_nonblock(fd);
  return std::unique_ptr<FileOutput>(new FileOutput(path, fd, true));
}

FileOutput::~FileOutput() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void FileOutput::write(std::span<const iovec> batch) {
  uint64_t lines_lost = 0;
  const int error = write_fd(fd_, batch, &lines_lost);
  if (error == 0) {
    if (failing_errno_ != 0) log::info("access_log_write_resumed").kv("path", path_);
    failing_errno_ = 0;
    return;
  }
  lost_.fetch_add(lines_lost, std::memory_order_relaxed);
  if (error == ECANCELED) return;  // given up at exit: AccessLog::stop reports it
  if (error != failing_errno_)  // once per kind of failure, not once per batch
    log::error("access_log_write_failed").kv("path", path_).kv("error", std::strerror(error))
        .kv("action", "records are dropped and counted until writes succeed again");
  failing_errno_ = error;
}

void FileOutput::reopen(uv_loop_t* loop) {
  if (!owned_ || reopening_) return;
  auto* req = new ReopenRequest{{}, this};
  req->fs.data = req;
  reopening_ = true;
  int rc = uv_fs_open(loop, &req->fs, path_.c_str(), kOpenFlags, kOpenMode, on_opened);
  if (rc < 0) {
    reopening_ = false;
    log::error("access_log_reopen_failed").kv("path", path_).kv("error", uv_strerror(rc));
    uv_fs_req_cleanup(&req->fs);
    delete req;
  }
}

void FileOutput::on_opened(uv_fs_t* fs) {
  auto* req = static_cast<ReopenRequest*>(fs->data);
  FileOutput& self = *req->output;
  self.reopening_ = false;
  const auto result = static_cast<int>(fs->result);
  uv_fs_req_cleanup(fs);
  delete req;
  if (result < 0) {
    log::error("access_log_reopen_failed").kv("path", self.path_).kv("error", open_error(-result))
        .kv("action", "still writing to the file open before");
    return;
  }
  clear_nonblock(result);
  // Atomic for the writer thread: its writes go either to the old file or to the new one.
  if (::dup3(result, self.fd_, O_CLOEXEC) < 0) {
    log::error("access_log_reopen_failed").kv("path", self.path_).kv("error", std::strerror(errno));
  } else {
    self.reopens_.fetch_add(1, std::memory_order_relaxed);
    log::info("access_log_reopened").kv("path", self.path_);
  }
  ::close(result);
}

}  // namespace berth::accesslog
