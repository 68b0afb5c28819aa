#include "discovery/line_splitter.h"

namespace berth::discovery {

namespace {
void emit(std::string_view line, const std::function<void(std::string_view)>& on_line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.empty()) on_line(line);
}
}  // namespace

bool LineSplitter::feed(std::string_view bytes, const std::function<void(std::string_view)>& on_line) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      if (partial_.size() + bytes.size() > max_line_) return false;
      partial_.append(bytes);
      return true;
    }
    if (partial_.empty()) {
      emit(bytes.substr(0, nl), on_line);
    } else {
      if (partial_.size() + nl > max_line_) return false;
      partial_.append(bytes.substr(0, nl));
      std::string line = std::move(partial_);
      partial_.clear();
      emit(line, on_line);
    }
    bytes.remove_prefix(nl + 1);
  }
  return true;
}

}  // namespace berth::discovery
