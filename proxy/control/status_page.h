// GET / on the admin listener: the live status page, one self-contained HTML document (inline
// CSS and JavaScript, no external assets) compiled into the binary. It polls /api/status and
// /api/events every 2 s and renders routes, services, instances and recent events; every value
// from configuration or container labels is inserted as text, never as markup.
#pragma once

namespace berth {
const char* status_page_html() noexcept;
}  // namespace berth
