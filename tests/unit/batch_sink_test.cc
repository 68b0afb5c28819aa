// The batching sink behind the log and the access log: records of several threads all written
// with each thread's order kept, a stalled output that drops and counts without blocking
// producers, threads that exit before their records are written, stop() writing everything, or
// giving up by its deadline what a pipe nobody reads cannot take; and the log itself through it,
// in its line format.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/base/batch_sink.h"
#include "proxy/base/log.h"

using namespace berth;

namespace {

// Reads a pipe to its end on a thread of its own.
class PipeReader {
 public:
  PipeReader() {
    REQUIRE(::pipe(fds_) == 0);
    thread_ = std::thread([this] {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fds_[0], buf, sizeof buf)) > 0) text_.append(buf, static_cast<size_t>(n));
    });
  }
  ~PipeReader() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    if (thread_.joinable()) thread_.join();
    ::close(fds_[0]);
  }
  int write_fd() const { return fds_[1]; }
  // Closes the write end and returns everything read.
  std::string finish() {
    ::close(fds_[1]);
    fds_[1] = -1;
    thread_.join();
    return text_;
  }

 private:
  int fds_[2];
  std::thread thread_;
  std::string text_;
};

// An output that keeps what it is given, and can be held shut (a stalled stderr) until opened.
class HeldOutput final : public BatchOutput {
 public:
  void write(std::span<const iovec> batch) override {
    std::unique_lock lock(mu_);
    ++writes_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    for (const iovec& v : batch) text_.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }
  explicit HeldOutput(bool open) : open_(open) {}

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_;
  int writes_ = 0;
  std::string text_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "t<thread> n<seq> <padding>" -> per thread, the sequence numbers in the order written.
std::map<int, std::vector<int>> sequences(const std::vector<std::string>& lines) {
  std::map<int, std::vector<int>> seqs;
  for (const auto& line : lines) {
    int t, n;
    if (std::sscanf(line.c_str(), "t%d n%d", &t, &n) == 2) seqs[t].push_back(n);
  }
  return seqs;
}

std::string record(int thread, int seq) {
  return "t" + std::to_string(thread) + " n" + std::to_string(seq) + " " + std::string(40, 'x') + "\n";
}

bool strictly_increasing(const std::vector<int>& v) {
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] <= v[i - 1]) return false;
  return true;
}

}  // namespace

TEST_CASE("batch sink: every record of every thread, each thread's in order", "[batch_sink]") {
  PipeReader reader;
  FdOutput output(reader.write_fd());
  BatchSink::Options options;
  options.buffer_bytes = 64 * 1024 * 1024;  // never full here: nothing may be dropped
  options.high_water_bytes = 4096;
  BatchSink sink(output, options);
  sink.start();

  constexpr int kThreads = 4;
  constexpr int kRecords = 20000;
  std::atomic<int> not_queued{0};  // (Catch2's assertions are not for other threads)
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRecords; ++i)
        if (sink.append(record(t, i)) != BatchSink::Append::kQueued) ++not_queued;
    });
  for (auto& th : threads) th.join();  // the threads are gone: their buffers are the writer's now
  sink.stop();

  CHECK(not_queued.load() == 0);
  CHECK(sink.dropped() == 0);
  auto seqs = sequences(lines_of(reader.finish()));
  REQUIRE(seqs.size() == kThreads);
  for (const auto& [t, seq] : seqs) {
    INFO("thread " << t);
    REQUIRE(seq.size() == kRecords);
    CHECK(strictly_increasing(seq));
  }
}

TEST_CASE("batch sink: a stalled output drops and counts; producers never wait for it", "[batch_sink]") {
  HeldOutput output(/*open=*/false);
  BatchSink::Options options;
  options.buffer_bytes = 4096;
  options.high_water_bytes = 1024;
  options.drop_report = [](uint64_t count) { return "dropped " + std::to_string(count) + "\n"; };
  BatchSink sink(output, options);
  sink.start();

  // Each thread appends far more than its buffer and the one batch the stalled writer holds can
  // take, so drops are certain whatever the timing. If an append waited for the output, the
  // threads would never finish (the output opens only after they have).
  constexpr int kThreads = 2;
  constexpr int kRecords = 5000;
  std::atomic<uint64_t> queued{0}, dropped{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRecords; ++i) {
        auto r = sink.append(record(t, i));
        (r == BatchSink::Append::kQueued ? queued : dropped).fetch_add(1);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(dropped.load() > 0);
  CHECK(sink.dropped() == dropped.load());
  CHECK(queued.load() + dropped.load() == uint64_t{kThreads} * kRecords);
  // Bounded: at most two buffers' worth per thread (the one filling, the one being written).
  CHECK(queued.load() * record(0, 0).size() <= uint64_t{kThreads} * 2 * (options.buffer_bytes + 64));

  output.open();
  sink.stop();

  auto lines = lines_of(output.text());
  auto seqs = sequences(lines);
  size_t written = 0;
  for (const auto& [t, seq] : seqs) {
    INFO("thread " << t);
    CHECK(strictly_increasing(seq));
    written += seq.size();
  }
  CHECK(written == queued.load());
  // The drops are reported once the writer catches up (in two lines at most: drops seen at its
  // first collection may be reported with the batch it then stalls on).
  uint64_t reported = 0;
  int reports = 0;
  for (const auto& line : lines) {
    unsigned long long n;
    if (std::sscanf(line.c_str(), "dropped %llu", &n) == 1) reported += n, ++reports;
  }
  CHECK(reported == dropped.load());
  CHECK(reports >= 1);
  CHECK(reports <= 2);
}

TEST_CASE("batch sink: before start and after stop, appends are refused, not queued", "[batch_sink]") {
  HeldOutput output(/*open=*/true);
  BatchSink sink(output, {});
  CHECK(sink.append("early\n") == BatchSink::Append::kNotRunning);
  sink.start();
  CHECK(sink.running());
  CHECK(sink.append("one\n") == BatchSink::Append::kQueued);
  sink.stop();
  CHECK(!sink.running());
  CHECK(sink.append("late\n") == BatchSink::Append::kNotRunning);
  sink.start();  // and it starts again
  CHECK(sink.append("two\n") == BatchSink::Append::kQueued);
  sink.stop();
  CHECK(output.text() == "one\ntwo\n");
}

TEST_CASE("batch sink: threads that come and go while it runs lose nothing", "[batch_sink]") {
  PipeReader reader;
  FdOutput output(reader.write_fd());
  BatchSink::Options options;
  options.buffer_bytes = 64 * 1024 * 1024;
  BatchSink sink(output, options);
  sink.start();
  constexpr int kRounds = 50;
  constexpr int kRecords = 200;
  for (int round = 0; round < kRounds; ++round) {
    std::thread a([&, round] { for (int i = 0; i < kRecords; ++i) sink.append(record(2 * round, i)); });
    std::thread b([&, round] { for (int i = 0; i < kRecords; ++i) sink.append(record(2 * round + 1, i)); });
    a.join();
    b.join();
  }
  sink.stop();
  auto seqs = sequences(lines_of(reader.finish()));
  CHECK(seqs.size() == 2 * kRounds);
  for (const auto& [t, seq] : seqs) {
    INFO("thread " << t);
    CHECK(seq.size() == kRecords);
    CHECK(strictly_increasing(seq));
  }
}

TEST_CASE("batch sink: a thread still holding a registration outlives the sink", "[batch_sink]") {
  HeldOutput output(/*open=*/true);
  std::mutex mu;
  std::condition_variable cv;
  int step = 0;
  auto sink = std::make_unique<BatchSink>(output, BatchSink::Options{});
  sink->start();
  std::thread t([&] {
    sink->append("from the thread\n");
    std::unique_lock lock(mu);
    step = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return step == 2; });  // exits after the sink is destroyed
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return step == 1; });
  }
  sink.reset();
  {
    std::lock_guard lock(mu);
    step = 2;
    cv.notify_all();
  }
  t.join();
  CHECK(output.text() == "from the thread\n");
}

TEST_CASE("log: lines of several threads reach stderr in the line format, stop_writer flushes", "[log]") {
  char path[] = "/tmp/berth-log-test-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  int saved = ::dup(2);
  REQUIRE(::dup2(fd, 2) == 2);
  const uint64_t dropped_before = log::dropped();  // counted since the process started

  log::info("before_start").kv("k", "v");  // written synchronously
  log::start_writer();
  constexpr int kThreads = 3;
  constexpr int kLines = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) log::info("test_line").kv("thread", t).kv("seq", i).kv("text", "a b");
    });
  for (auto& th : threads) th.join();
  log::stop_writer();
  log::warn("after_stop");

  ::dup2(saved, 2);
  ::close(saved);
  std::string text(static_cast<size_t>(::lseek(fd, 0, SEEK_END)), '\0');
  REQUIRE(::pread(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
  ::close(fd);

  auto lines = lines_of(text);
  REQUIRE(lines.size() == kThreads * kLines + 2);
  CHECK(lines.front().find(" level=info event=before_start k=v") != std::string::npos);
  CHECK(lines.back().find(" level=warn event=after_stop") != std::string::npos);
  std::map<int, std::vector<int>> seqs;
  for (const auto& line : lines) {
    REQUIRE(line.rfind("ts=", 0) == 0);
    auto at = line.find(" level=info event=test_line thread=");
    if (at == std::string::npos) continue;
    int t, n;
    REQUIRE(std::sscanf(line.c_str() + at, " level=info event=test_line thread=%d seq=%d", &t, &n) == 2);
    CHECK(line.ends_with(" text=\"a b\""));
    seqs[t].push_back(n);
  }
  REQUIRE(seqs.size() == kThreads);
  for (const auto& [t, seq] : seqs) {
    INFO("thread " << t);
    CHECK(seq.size() == kLines);
    CHECK(strictly_increasing(seq));
  }
  CHECK(log::dropped() == dropped_before);
}

TEST_CASE("log: the line format of each kind of value and the timestamp", "[log]") {
  char path[] = "/tmp/berth-log-test-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  int saved = ::dup(2);
  REQUIRE(::dup2(fd, 2) == 2);
  log::info("values").kv("neg", -42).kv("max", uint64_t{18446744073709551615ull}).kv("ms", 1.25)
      .kv("small", 0.0004).kv("big", -1234567.875).kv("yes", true).kv("q", "say \"hi\"\n");
  ::dup2(saved, 2);
  ::close(saved);
  std::string text(static_cast<size_t>(::lseek(fd, 0, SEEK_END)), '\0');
  REQUIRE(::pread(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
  ::close(fd);

  // ts=YYYY-MM-DDTHH:MM:SS.mmmZ
  REQUIRE(text.size() > 28);
  std::string ts = text.substr(3, 24);
  INFO(text);
  CHECK(text.rfind("ts=", 0) == 0);
  for (size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u, 11u, 12u, 14u, 15u, 17u, 18u, 20u, 21u, 22u})
    CHECK((ts[i] >= '0' && ts[i] <= '9'));
  CHECK(ts[4] == '-');
  CHECK(ts[10] == 'T');
  CHECK(ts[19] == '.');
  CHECK(ts[23] == 'Z');
  CHECK(text.substr(27) ==
        " level=info event=values neg=-42 max=18446744073709551615 ms=1.250 small=0.000 big=-1234567.875"
        " yes=true q=\"say \\\"hi\\\"\\n\"\n");
}

namespace {
// An output that lets a test wait until a given number of bytes has been written.
class WatchedOutput final : public BatchOutput {
 public:
  void write(std::span<const iovec> batch) override {
    std::lock_guard lock(mu_);
    for (const iovec& v : batch) text_.append(static_cast<const char*>(v.iov_base), v.iov_len);
    cv_.notify_all();
  }
  // Whether the output holds `bytes` bytes before the (generous) deadline.
  bool wait_for_bytes(size_t bytes) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return text_.size() >= bytes; });
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
};
}  // namespace

TEST_CASE("batch sink: a writer with nothing to do sleeps, and the next record wakes it", "[batch_sink]") {
  // With nothing buffered the writer waits for a producer rather than for its period; a record
  // appended then, from a thread that has appended before or from a new one, is written without
  // stop() (which would write it anyway). The pauses let the writer go idle between records.
  WatchedOutput out;
  BatchSink::Options o;
  o.period = std::chrono::milliseconds(1);
  BatchSink sink(out, o);
  sink.start();
  std::string expected;
  for (int i = 0; i < 40; ++i) {
    const std::string r = record(i % 2, i);
    if (i % 2 == 0) {
      REQUIRE(sink.append(r) == BatchSink::Append::kQueued);
    } else {
      BatchSink::Append result = BatchSink::Append::kNotRunning;
      std::thread([&] { result = sink.append(r); }).join();  // Catch assertions stay on this thread
      REQUIRE(result == BatchSink::Append::kQueued);
    }
    expected += r;
    REQUIRE(out.wait_for_bytes(expected.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 4 == 0 ? 5 : 0));
  }
  sink.stop();
  CHECK(out.text() == expected);
}

namespace {
// A pipe whose reader does not read until told to: the write end takes the pipe's capacity
// (64 KiB) and then blocks, or, made non-blocking, fails with EAGAIN.
class StalledPipe {
 public:
  explicit StalledPipe(bool nonblocking) {
    REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0);
    if (nonblocking) REQUIRE(::fcntl(fds_[1], F_SETFL, O_NONBLOCK) == 0);
    REQUIRE(::fcntl(fds_[0], F_SETFL, O_NONBLOCK) == 0);  // for take(), which must not wait
  }
  ~StalledPipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int write_fd() const { return fds_[1]; }
  // Everything the pipe holds now.
  std::string take() {
    std::string text;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds_[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    return text;
  }

 private:
  int fds_[2];
};
}  // namespace

TEST_CASE("batch sink: stop() gives up a pipe nobody reads by its deadline and counts what is lost",
          "[batch_sink][stop]") {
  // Without the deadline stop() never returns: the writer is blocked in writev (or in poll on the
  // non-blocking fd) for a reader that never comes.
  const bool nonblocking = GENERATE(false, true);
  INFO((nonblocking ? "non-blocking" : "blocking") << " write end");
  StalledPipe pipe(nonblocking);
  FdOutput output(pipe.write_fd());
  BatchSink sink(output, {});
  sink.start();
  constexpr int kRecords = 4000;  // about 200 KB: three pipes' worth
  int queued = 0;
  for (int i = 0; i < kRecords; ++i) queued += sink.append(record(0, i)) == BatchSink::Append::kQueued;
  REQUIRE(queued == kRecords);

  const auto t0 = std::chrono::steady_clock::now();
  const bool finished = sink.stop(std::chrono::milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(finished);
  CHECK(took < std::chrono::seconds(10));  // generous: the point is that it returns at all
  CHECK(output.abandoned());

  // Every record is either in the pipe, whole, or counted as lost (one cut short counts as lost).
  const std::string written = pipe.take();
  const auto whole = static_cast<uint64_t>(std::count(written.begin(), written.end(), '\n'));
  CHECK(whole > 0);
  CHECK(output.lost() > 0);
  CHECK(output.abandoned_records() == output.lost());
  CHECK(whole + output.lost() == uint64_t{kRecords});
  const auto seqs = sequences(lines_of(written.substr(0, written.rfind('\n') + 1)));
  REQUIRE(seqs.size() == 1);
  CHECK(seqs.at(0).size() == whole);
  CHECK(strictly_increasing(seqs.at(0)));

  // Started again, the sink writes normally: the output is no longer abandoned.
  sink.start();
  CHECK_FALSE(output.abandoned());
  REQUIRE(sink.append("again\n") == BatchSink::Append::kQueued);
  CHECK(sink.stop());
  // A record the deadline cut short in the pipe (nothing to cut back there) is ended by a newline
  // of its own first, so the next record starts a line.
  CHECK(pipe.take() == (written.ends_with('\n') ? "again\n" : "\nagain\n"));
  CHECK(output.lost() == uint64_t{kRecords} - whole);
}

TEST_CASE("batch sink: stop() on an output that keeps up writes everything and reports so", "[batch_sink][stop]") {
  PipeReader reader;
  FdOutput output(reader.write_fd());
  BatchSink sink(output, {});
  sink.start();
  for (int i = 0; i < 1000; ++i) REQUIRE(sink.append(record(0, i)) == BatchSink::Append::kQueued);
  CHECK(sink.stop(std::chrono::seconds(30)));
  CHECK_FALSE(output.abandoned());
  CHECK(output.lost() == 0);
  CHECK(lines_of(reader.finish()).size() == 1000);
}

TEST_CASE("log: stop_writer gives up a stderr nobody reads; later lines do not block", "[log][stop]") {
  StalledPipe pipe(/*nonblocking=*/false);
  const int saved = ::dup(2);
  REQUIRE(::dup2(pipe.write_fd(), 2) == 2);
  const uint64_t dropped_before = log::dropped();
  log::start_writer();
  constexpr uint64_t kLines = 3000;  // some 300 KB: several pipes' worth
  for (uint64_t i = 0; i < kLines; ++i) log::warn("stalled_line").kv("seq", i).kv("text", std::string(60, 'x'));
  const auto t0 = std::chrono::steady_clock::now();
  log::stop_writer();
  const auto took = std::chrono::steady_clock::now() - t0;
  log::warn("after_stop");  // written synchronously, it would wait for ever on the full pipe
  ::dup2(saved, 2);
  ::close(saved);

  CHECK(took < std::chrono::seconds(30));  // generous: the point is that it returns at all
  const std::string written = pipe.take();
  const auto whole = static_cast<uint64_t>(std::count(written.begin(), written.end(), '\n'));
  CHECK(whole > 0);
  CHECK(log::dropped() > dropped_before);
  CHECK(whole + (log::dropped() - dropped_before) == kLines);
  CHECK(written.find("event=after_stop") == std::string::npos);
  // Started and stopped once more with a stderr that takes lines: synchronous lines are written
  // again afterwards, for the tests that follow.
  log::start_writer();
  log::stop_writer();
}

namespace {
// write_fd on one fd, its last error kept.
struct FdWriter final : BatchOutput {
  int fd = -1;
  int error = 0;
  uint64_t lost = 0;
  void write(std::span<const iovec> batch) override {
    uint64_t n = 0;
    error = write_fd(fd, batch, &n);
    lost += n;
  }
};

std::string read_all(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}
}  // namespace

TEST_CASE("batch output: a write cut short inside a line leaves no fragment to glue the next line to",
          "[batch_sink]") {
  // A full disk stops a write in the middle of a record; once space is back, the next record
  // must start a line of its own. RLIMIT_FSIZE stands in for the full disk (EFBIG).
  char path[] = "/tmp/berth-batch-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::fcntl(fd, F_SETFL, O_APPEND) == 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  FdWriter out;
  out.fd = fd;
  std::vector<std::string> lines;
  for (int i = 0; i < 6; ++i) lines.push_back("{\"record\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40, 'x') + "\"}\n");
  auto batch_of = [](const std::vector<std::string>& ls, size_t from, size_t to) {
    std::vector<iovec> v;
    for (size_t k = from; k < to; ++k) v.push_back(iovec{const_cast<char*>(ls[k].data()), ls[k].size()});
    return v;
  };
  // Room for the first line and half of the second.
  rlimit small = saved;
  small.rlim_cur = lines[0].size() + lines[1].size() / 2;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  auto first = batch_of(lines, 0, 3);
  out.write(first);
  CHECK(out.error == EFBIG);
  CHECK(out.lost == 2);  // the cut one and the third
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto second = batch_of(lines, 3, 6);
  out.write(second);
  CHECK(out.error == 0);
  ::signal(SIGXFSZ, old_handler);
  ::close(fd);
  // A regular file is cut back to its last whole line: every line is a whole record.
  CHECK(read_all(path) == lines[0] + lines[3] + lines[4] + lines[5]);
  ::unlink(path);
}
