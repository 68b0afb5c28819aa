#include "discovery/line_splitter.h"

namespace berth::discovery {

namespace {
void emit(std::string_view line, const std::function<void(std::string_view)>& on_line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.empty()) on_line(line);
}
}  // namespace

bool LineSplitter::too_long() {
  partial_.clear();
  ++skipped_;
  skipping_ = skip_long_;
  return skip_long_;
}

bool LineSplitter::feed(std::string_view bytes, const std::function<void(std::string_view)>& on_line) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      if (skipping_) return true;
      if (partial_.size() + bytes.size() > max_line_) return too_long();
      partial_.append(bytes);
      return true;
    }
    if (skipping_) {
      skipping_ = false;  // the long line ends here
    } else if (partial_.empty()) {
      emit(bytes.substr(0, nl), on_line);
    } else if (partial_.size() + nl > max_line_) {
      if (!too_long()) return false;
      skipping_ = false;  // and ends here
    } else {
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
