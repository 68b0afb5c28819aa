#include "discovery/docker_client.h"

#include <nlohmann/json.hpp>

#include "discovery/docker_connection.h"
#include "proxy/base/clock.h"

namespace berth::discovery {

namespace {
constexpr size_t kMaxBody = 64u << 20;
}

std::string HttpResult::describe() const {
  if (!error.empty()) return error;
  std::string text = "HTTP " + std::to_string(status);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    text += ": " + j["message"].get<std::string>();
  return text;
}

// One request on its own connection. Buffered (get) or streaming (stream).
class DockerClient::Exchange {
 public:
  Exchange(DockerClient* client, Request request, std::chrono::milliseconds timeout)
      : client_(client), request_(std::move(request)), timeout_(timeout),
        parser_(HttpResponseParser::Callbacks{[this](const ResponseHead& h) { on_head(h); },
                                              [this](std::string_view b) { on_body(b); }, nullptr}) {}
  ~Exchange() { drop(); }

  std::function<void(HttpResult)> done;  // buffered mode
  StreamCallbacks stream;                // streaming mode (when done is empty)

  void begin(Id id) {
    id_ = id;
    arm(static_cast<uint64_t>(timeout_.count()));
    connection_ = std::make_unique<DockerConnection>(
        client_->loop_, client_->endpoint_, client_->tls_ ? client_->tls_->get() : nullptr,
        DockerConnection::Callbacks{[this] { on_connected(); },
                                    [this](std::string_view bytes) { on_bytes(bytes); },
                                    [this](const std::string& why) { on_closed(why); }});
    connection_->open();
  }
  // The timeout, moved once by the time it lost when it fires late (late_timer_extension): a
  // control loop held up by a large change must not fail an answer that came meanwhile.
  void arm(uint64_t ms) {
    due_ms_ = uv_now(client_->loop_) + ms;
    timer_.start(client_->loop_, ms, [this] {
      const uint64_t timeout = static_cast<uint64_t>(timeout_.count());
      if (const uint64_t more = late_timer_extension(due_ms_, uv_now(client_->loop_), timeout, timeout_moved_)) {
        timeout_moved_ = true;
        arm(more);
        return;
      }
      end("no response from the engine within " + std::to_string(timeout_.count()) + " ms");
    });
  }
  // Silently: no callback.
  void drop() {
    finished_ = true;
    timer_.close();
    if (connection_) connection_->close();
  }

 private:
  bool streaming() const { return !done; }

  void on_connected() {
    std::string head = request_.method + " " + request_.target + " HTTP/1.1\r\nHost: " + request_.host +
                       "\r\nUser-Agent: berth\r\nAccept: application/json\r\nConnection: close\r\n";
    for (const auto& [name, value] : request_.headers) head += name + ": " + value + "\r\n";
    if (request_.method != "GET" || !request_.body.empty())
      head += "Content-Type: application/json\r\nContent-Length: " + std::to_string(request_.body.size()) + "\r\n";
    head += "\r\n";
    head += request_.body;
    connection_->write(head);
  }
  void on_head(const ResponseHead& head) {
    result_.status = head.status;
    result_.head = head;
    if (streaming()) {
      timer_.stop();  // an idle event stream is normal (no heartbeat)
      if (stream.on_head) stream.on_head(head);
    }
  }
  void on_body(std::string_view bytes) {
    if (finished_) return;
    if (streaming()) {
      if (stream.on_data) stream.on_data(bytes);
      return;
    }
    if (result_.body.size() + bytes.size() > kMaxBody) {
      overflow_ = true;
      return;
    }
    result_.body.append(bytes);
  }
  void on_bytes(std::string_view bytes) {
    if (finished_) return;
    if (!parser_.feed(bytes)) {
      end(parser_.error());
      return;
    }
    if (finished_) return;
    if (overflow_) end("response body larger than 64 MiB");
    else if (parser_.complete()) end("");
  }
  void on_closed(const std::string& why) {
    if (finished_) return;
    if (!why.empty()) end(why);
    else end(parser_.finish() ? "" : parser_.error());
  }
  // Ends the exchange once; `why` empty = the whole response arrived.
  void end(const std::string& why) {
    if (finished_) return;
    drop();
    client_->retire(id_);  // `this` stays alive until a later loop turn
    if (streaming()) {
      if (stream.on_end) stream.on_end(why.empty() ? std::string("the engine ended the event stream") : why);
      return;
    }
    result_.error = why;
    if (done) done(std::move(result_));
  }

  DockerClient* client_;
  Request request_;
  std::chrono::milliseconds timeout_;
  uint64_t due_ms_ = 0;         // uv_now() when the timeout is due
  bool timeout_moved_ = false;  // moved once already
  HttpResponseParser parser_;
  HttpResult result_;
  bool finished_ = false;
  bool overflow_ = false;
  Id id_ = 0;
  Timer timer_;
  std::unique_ptr<DockerConnection> connection_;
};

DockerClient::DockerClient(uv_loop_t* loop, DockerEndpoint endpoint, std::shared_ptr<TlsContext> tls)
    : loop_(loop), endpoint_(std::move(endpoint)), tls_(std::move(tls)) {}

DockerClient::~DockerClient() {
  cancel_all();
  retired_.clear();
  reaper_.close();
}

DockerClient::Id DockerClient::get(const std::string& target, std::chrono::milliseconds timeout,
                                   std::function<void(HttpResult)> done) {
  Request request;
  request.target = target;
  return send(std::move(request), timeout, std::move(done));
}

DockerClient::Id DockerClient::send(Request request, std::chrono::milliseconds timeout,
                                    std::function<void(HttpResult)> done) {
  auto exchange = std::make_unique<Exchange>(this, std::move(request), timeout);
  exchange->done = done ? std::move(done) : [](HttpResult) {};
  return start(std::move(exchange));
}

DockerClient::Id DockerClient::stream(const std::string& target, std::chrono::milliseconds head_timeout,
                                      StreamCallbacks callbacks) {
  Request request;
  request.target = target;
  return stream(std::move(request), head_timeout, std::move(callbacks));
}

DockerClient::Id DockerClient::stream(Request request, std::chrono::milliseconds head_timeout,
                                      StreamCallbacks callbacks) {
  auto exchange = std::make_unique<Exchange>(this, std::move(request), head_timeout);
  exchange->stream = std::move(callbacks);
  return start(std::move(exchange));
}

DockerClient::Id DockerClient::start(std::unique_ptr<Exchange> exchange) {
  Id id = next_id_++;
  Exchange* raw = exchange.get();
  active_.emplace(id, std::move(exchange));
  raw->begin(id);
  return id;
}

void DockerClient::retire(Id id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  retired_.push_back(std::move(it->second));
  active_.erase(it);
  if (!reaper_.active()) reaper_.start(loop_, 0, [this] { retired_.clear(); });
}

void DockerClient::cancel(Id id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  it->second->drop();
  retire(id);
}

void DockerClient::cancel_all() {
  while (!active_.empty()) cancel(active_.begin()->first);
}

}  // namespace berth::discovery
