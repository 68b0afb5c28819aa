#include "proxy/accesslog/file_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/base/log.h"

namespace berth::accesslog {
namespace {
constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
constexpr int kOpenMode = 0644;

struct ReopenRequest {
  uv_fs_t fs;
  FileOutput* output;
};
}  // namespace

std::unique_ptr<FileOutput> FileOutput::open(const std::string& path, std::string& error) {
  if (path == "-") return std::unique_ptr<FileOutput>(new FileOutput(path, STDOUT_FILENO, false));
  int fd = ::open(path.c_str(), kOpenFlags, kOpenMode);
  if (fd < 0) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<FileOutput>(new FileOutput(path, fd, true));
}

FileOutput::~FileOutput() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void FileOutput::write(std::span<const iovec> batch) { FdOutput(fd_).write(batch); }

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
    log::error("access_log_reopen_failed").kv("path", self.path_).kv("error", uv_strerror(result))
        .kv("action", "still writing to the file open before");
    return;
  }
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
