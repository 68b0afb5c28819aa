#include "discovery/registry/etcd_client.h"

#include <charconv>
#include <map>

namespace berth::discovery::registry {

namespace {
// "http://host:port[/]" -> the endpoint.
DockerEndpoint endpoint_of(const std::string& url, std::string* host_header) {
  std::string_view rest(url);
  rest.remove_prefix(rest.rfind("https://", 0) == 0 ? 8 : 7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  *host_header = std::string(rest);
  DockerEndpoint e;
  e.kind = DockerEndpoint::Kind::kTcp;
  size_t colon = rest.rfind(':');
  std::string_view host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  e.host = std::string(host);
  unsigned port = 0;
  std::string_view digits = rest.substr(colon + 1);
  std::from_chars(digits.data(), digits.data() + digits.size(), port);
  e.port = static_cast<uint16_t>(port);
  return e;
}

std::string error_text(const nlohmann::json& j) {
  // unary: {"error":"...","message":"...","code":14}; stream: {"error":{"message":..,"grpc_code":..}}
  auto it = j.find("error");
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto m = it->find("message");
    if (m != it->end() && m->is_string()) return m->get<std::string>();
  }
  return it->dump();
}

}  // namespace

nlohmann::json parse_etcd_body(const std::string& body, std::string* error) {
  error->clear();
  nlohmann::json whole = nlohmann::json::parse(body, nullptr, false);
  if (!whole.is_discarded()) {
    if (!whole.is_object()) {
      *error = "reply is not a JSON object";
      return {};
    }
    if (std::string e = error_text(whole); !e.empty()) {
      *error = e;
      return whole;
    }
    if (auto r = whole.find("result"); r != whole.end() && r->is_object()) return *r;
    return whole;
  }
  // Stream-shaped: the first line decides.
  LineSplitter splitter;
  nlohmann::json first;
  bool have = false;
  splitter.feed(body + "\n", [&](std::string_view line) {
    if (have) return;
    have = true;
    first = nlohmann::json::parse(line, nullptr, false);
  });
  if (!have || first.is_discarded() || !first.is_object()) {
    *error = "reply is not JSON";
    return {};
  }
  if (std::string e = error_text(first); !e.empty()) {
    *error = e;
    return first;
  }
  if (auto r = first.find("result"); r != first.end() && r->is_object()) return *r;
  return first;
}

bool etcd_unavailable_error(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  auto it = j.find("error");
  if (it == j.end()) return false;
  auto code_is = [](const nlohmann::json& o, const char* name, int want) {
    auto c = o.find(name);
    return c != o.end() && c->is_number_integer() && c->get<int>() == want;
  };
  if (it->is_object()) return code_is(*it, "grpc_code", 14) || code_is(*it, "http_code", 503);
  return code_is(j, "code", 14);
}

std::string read_watch_bytes(LineSplitter& splitter, std::string_view bytes,
                             const std::function<bool(const nlohmann::json&)>& on_result, bool* skipped) {
  const uint64_t skipped_before = splitter.skipped();
  std::string end;
  bool going = true;
  splitter.feed(bytes, [&](std::string_view line) {
    if (!going || !end.empty()) return;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      end = "watch sent a line that is not JSON";
      return;
    }
    if (std::string e = error_text(j); !e.empty()) {
      end = "watch error: " + e;
      return;
    }
    auto r = j.find("result");
    if (r != j.end() && r->is_object()) going = on_result(*r);
  });
  *skipped = splitter.skipped() != skipped_before;
  return end;
}

struct EtcdClient::Attempt {
  std::string path;
  std::string body;
  std::chrono::milliseconds timeout;
  std::function<void(EtcdReply)> done;
  size_t tries = 0;
  bool pinned = false;
  std::string errors;  // of the members tried so far
};

EtcdClient::EtcdClient(uv_loop_t* loop, const std::vector<std::string>& urls, std::shared_ptr<TlsContext> tls)
    : loop_(loop), urls_(urls) {
  for (const std::string& url : urls_) {
    std::string host;
    DockerEndpoint e = endpoint_of(url, &host);
    bool https = url.rfind("https://", 0) == 0;
    members_.push_back(std::make_unique<DockerClient>(loop_, e, https ? tls : nullptr));
    hosts_.push_back(host);
  }
}

EtcdClient::~EtcdClient() = default;

DockerClient::Request EtcdClient::request(const std::string& path, const std::string& body) const {
  DockerClient::Request r;
  r.method = "POST";
  r.target = "/v3/" + path;
  r.body = body;
  r.host = hosts_[current_];
  r.headers.emplace_back("Grpc-Metadata-hasleader", "true");
  return r;
}

void EtcdClient::call(const std::string& path, const nlohmann::json& body, std::chrono::milliseconds timeout,
                      std::function<void(EtcdReply)> done, bool pinned) {
  auto a = std::make_shared<Attempt>();
  a->path = path;
  a->body = body.dump();
  a->timeout = timeout;
  a->done = std::move(done);
  a->pinned = pinned;
  attempt(std::move(a));
}

void EtcdClient::attempt(std::shared_ptr<Attempt> a) {
  size_t member = current_;
  ++a->tries;
  members_[member]->send(request(a->path, a->body), a->timeout, [this, a, member](HttpResult r) {
    EtcdReply reply;
    reply.status = r.status;
    reply.member = urls_[member];
    if (!r.error.empty()) {
      reply.error = r.error;
    } else {
      std::string problem;
      reply.body = parse_etcd_body(r.body, &problem);
      if (!problem.empty()) reply.error = "HTTP " + std::to_string(r.status) + ": " + problem;
      else if (r.status < 200 || r.status >= 300) reply.error = "HTTP " + std::to_string(r.status);
    }
    // A member that is down, slow or without a leader: the next one may serve. A refusal of
    // the request itself (400, 404...) would be the same everywhere.
    bool member_problem = !r.error.empty() || r.status == 503 || r.status == 0 ||
                          reply.error.find("no leader") != std::string::npos || etcd_unavailable_error(reply.body);
    if (!reply.ok() && member_problem && !a->pinned) {
      a->errors += (a->errors.empty() ? "" : "; ") + urls_[member] + ": " + reply.error;
      if (current_ == member) next_member();
      if (a->tries < members_.size()) {
        attempt(a);
        return;
      }
      reply.error = a->errors;
    }
    a->done(std::move(reply));
  });
}

EtcdClient::Id EtcdClient::watch(const nlohmann::json& create_request, std::chrono::milliseconds head_timeout,
                                 WatchCallbacks callbacks) {
  Id id = next_watch_++;
  auto cb = std::make_shared<WatchCallbacks>(std::move(callbacks));
  nlohmann::json body = {{"create_request", create_request}};
  Watch w{current_, 0};
  // Shared with the data callback: it stays alive while a line it split ends the watch. A line
  // over 16 MiB is skipped rather than ending the watch: ended, the watch would be made again
  // from the same revision and meet the same line, for ever.
  auto splitter = std::make_shared<LineSplitter>(16u << 20, /*skip_long=*/true);
  DockerClient::StreamCallbacks s;
  s.on_head = [this, id, cb](const ResponseHead& head) {
    if (head.status != 200) {
      auto it = watches_.find(id);
      if (it == watches_.end()) return;
      members_[it->second.member]->cancel(it->second.id);
      watches_.erase(it);
      if (cb->on_end) cb->on_end("watch refused: HTTP " + std::to_string(head.status));
      return;
    }
    if (cb->on_open) cb->on_open();
  };
  s.on_data = [this, id, cb, splitter](std::string_view bytes) {
    bool skipped = false;
    std::string end = read_watch_bytes(
        *splitter, bytes,
        [&](const nlohmann::json& result) {
          if (!watches_.count(id)) return false;
          if (cb->on_message) cb->on_message(result);
          return true;
        },
        &skipped);
    if (!watches_.count(id)) return;
    if (!end.empty()) return end_watch_with(id, cb, end);
    if (skipped && cb->on_skipped) cb->on_skipped();
  };
  s.on_end = [this, id, cb](const std::string& why) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    watches_.erase(it);
    // DockerClient's words for a clean end of a stream name the Docker engine.
    if (cb->on_end) cb->on_end(why == "the engine ended the event stream" ? "the member ended the stream" : why);
  };
  DockerClient* client = members_[current_].get();
  watches_.emplace(id, std::move(w));
  DockerClient::Id cid = client->stream(request("watch", body.dump()), head_timeout, std::move(s));
  auto it = watches_.find(id);
  if (it != watches_.end()) it->second.id = cid;
  return id;
}

void EtcdClient::end_watch_with(Id id, const std::shared_ptr<WatchCallbacks>& cb, const std::string& why) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  members_[it->second.member]->cancel(it->second.id);
  watches_.erase(it);
  if (cb->on_end) cb->on_end(why);
}

void EtcdClient::cancel_watch(Id id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  members_[it->second.member]->cancel(it->second.id);
  watches_.erase(it);
}

}  // namespace berth::discovery::registry
