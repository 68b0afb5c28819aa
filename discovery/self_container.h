// Best effort: the id (or id prefix) of the container Berth itself runs in, if any, from
// $BERTH_CONTAINER_ID (an id or a name), /proc/self/cgroup, /proc/self/mountinfo or $HOSTNAME.
// Empty when it does not look like a container. The source confirms the guess by inspecting it.
#pragma once

#include <string>
#include <string_view>

namespace berth::discovery {

std::string guess_own_container_id();

// Pure helpers, exposed for tests: the first 64-hex container id in a cgroup / mountinfo text.
std::string container_id_in(std::string_view text);

}  // namespace berth::discovery
