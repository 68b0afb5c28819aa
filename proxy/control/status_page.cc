#include "proxy/control/status_page.h"

namespace berth {

namespace {

// The page. Rates are computed here, in the browser, from successive samples of the
// per-service totals in /api/status; a sparkline keeps the last 90 samples (3 minutes).
// It asks for at most LIMIT routes and services, problems first, matching the filter box (kept
// in the URL hash, #filter=TEXT): a table of 10,000 routes is neither sent nor drawn whole.
constexpr const char kPage[] = R"BERTHPAGE(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berth status</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7385; --line:#e2e5ec; --bg:#f6f7fa; --card:#fff;
          --green:#1f9d55; --amber:#d68a00; --red:#d0342c; --blue:#2f6fdb; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 "DejaVu Sans", system-ui, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:18px; align-items:baseline; padding:10px 16px; background:#1d2330; color:#fff; }
  header h1 { font-size:17px; margin:0; }
  header .meta { color:#b8c0d0; font-size:12px; }
  header .err { color:#ffb4ae; }
  header .warn { color:#ffd27a; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:12px; padding:12px 16px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:8px 10px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:13px; margin:0 0 6px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); vertical-align:top;
           overflow-wrap:anywhere; }
  th { font-weight:600; color:var(--muted); font-size:12px; }
  td.num { text-align:right; font-variant-numeric: tabular-nums; }
  .dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:5px; vertical-align:-1px; }
  .green { background:var(--green); } .amber { background:var(--amber); } .red { background:var(--red); }
  .pill { display:inline-block; padding:0 6px; border-radius:8px; font-size:11px; color:#fff; }
  .pill.ok { background:var(--green); } .pill.s503 { background:var(--red); } .pill.redirect { background:var(--blue); }
  .svc { border-top:1px solid var(--line); padding:6px 0; }
  .svc:first-of-type { border-top:0; }
  .svc-head { display:flex; gap:14px; align-items:center; flex-wrap:wrap; }
  .svc-name { font-weight:600; font-size:14px; }
  .rate { color:var(--muted); } .rate b { color:var(--fg); }
  .why { color:var(--muted); font-size:12px; }
  .empty { color:var(--muted); font-style:italic; }
  svg.spark { width:160px; height:28px; background:#fafbfd; border:1px solid var(--line); }
  svg.spark .req { fill:none; stroke:var(--blue); stroke-width:1.5; }
  svg.spark .e5 { fill:none; stroke:var(--red); stroke-width:1.5; }
  .ev-type { font-family:"DejaVu Sans Mono", monospace; font-size:12px; white-space:nowrap; overflow-wrap:normal; }
  td.time { white-space:nowrap; overflow-wrap:normal; }
  .mono { font-family:"DejaVu Sans Mono", monospace; font-size:12px; }
  header input { margin-left:auto; width:320px; padding:3px 6px; border:1px solid #4a5368; border-radius:4px;
                 background:#2a3142; color:#fff; font:inherit; }
  .cap { color:var(--muted); font-size:12px; margin:0 0 6px; }
  .cap:empty { display:none; }
</style>
</head>
<body data-updates="0">
<header>
  <h1>Berth</h1>
  <span class="meta" id="summary">loading…</span>
  <span class="meta" id="discovery"></span>
  <span class="meta warn" id="restart"></span>
  <span class="meta err" id="error"></span>
  <input id="filter" type="search" placeholder="filter: host, path, route or service" aria-label="filter"
         maxlength="200" autocomplete="off" spellcheck="false">
</header>
<main>
  <section class="wide">
    <h2>Services and instances</h2>
    <div class="cap" id="services-cap"></div>
    <div id="services"></div>
  </section>
  <section>
    <h2>Routes</h2>
    <div class="cap" id="routes-cap"></div>
    <table><thead><tr><th>Route</th><th>Host</th><th>Path</th><th>Prio</th><th>Service</th><th>State</th></tr></thead>
    <tbody id="routes"></tbody></table>
  </section>
  <section>
    <h2>Recent events</h2>
    <table><thead><tr><th>Time (UTC)</th><th>Event</th><th>Details</th></tr></thead>
    <tbody id="events"></tbody></table>
  </section>
</main>
<script>
"use strict";
const POLL_MS = 2000, KEEP = 90, SHOW_EVENTS = 30, LIMIT = 200;
const samples = new Map();  // service -> [{t, requests, e5}]
let updates = 0, polls = 0, timer = 0, typing = 0;
const filterBox = document.getElementById("filter");

function filterFromHash() { return new URLSearchParams(location.hash.slice(1)).get("filter") || ""; }
function statusUrl() {
  const f = filterBox.value.trim();
  return "/api/status?limit=" + LIMIT + "&order=problems" + (f ? "&filter=" + encodeURIComponent(f) : "");
}
function count(n) { return n.toLocaleString("en-US"); }
// "showing 200 of 10,000 — narrow the filter", or how many of all match the filter.
function capLine(id, what, shown, matched, total, filter) {
  let text = "";
  if (shown < matched) text = "showing " + count(shown) + " of " + count(matched) + " " + what +
                              (filter ? " matching \u201c" + filter + "\u201d" : "") + " \u2014 narrow the filter";
  else if (filter) text = count(matched) + " of " + count(total) + " " + what + " match \u201c" + filter + "\u201d";
  document.getElementById(id).textContent = text;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function cell(row, text, cls) { const td = el("td", cls, text); row.appendChild(td); return td; }
function fmtRate(v) { return v === null ? "\u2014" : (v >= 100 ? v.toFixed(0) : v.toFixed(2)); }

function rates(name, s, now) {
  if (s.requests === null || s.requests === undefined) return { req: null, e5: null, points: [] };
  let h = samples.get(name);
  if (!h) { h = []; samples.set(name, h); }
  h.push({ t: now, requests: s.requests, e5: s.responses_5xx });
  while (h.length > KEEP + 1) h.shift();
  const points = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000;
    if (dt <= 0) continue;
    points.push({ req: Math.max(0, h[i].requests - h[i - 1].requests) / dt,
                  e5: Math.max(0, h[i].e5 - h[i - 1].e5) / dt });
  }
  const last = points.length ? points[points.length - 1] : { req: null, e5: null };
  return { req: last.req, e5: last.e5, points: points };
}

function sparkline(points) {
  const NS = "http://www.w3.org/2000/svg", W = 160, H = 28;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const max = Math.max(1, ...points.map(p => p.req));
  for (const key of ["req", "e5"]) {
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("class", key);
    const step = W / Math.max(1, KEEP - 1), start = W - step * (points.length - 1);
    line.setAttribute("points", points.map((p, i) =>
      (start + i * step).toFixed(1) + "," + (H - 2 - (p[key] / max) * (H - 4)).toFixed(1)).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function renderServices(status) {
  const box = document.getElementById("services");
  const out = [];
  const shown = new Set(status.services.map(s => s.name));
  for (const name of samples.keys()) if (!shown.has(name)) samples.delete(name);  // filtered out or gone
  for (const s of status.services) {
    const div = el("div", "svc");
    div.dataset.service = s.name;
    const head = el("div", "svc-head");
    head.appendChild(el("span", "svc-name", s.name));
    const r = rates(s.name, s, status.monotonic_ms);
    const req = el("span", "rate"); req.appendChild(document.createTextNode("req/s ")); req.appendChild(el("b", null, fmtRate(r.req)));
    const e5 = el("span", "rate"); e5.appendChild(document.createTextNode("5xx/s ")); e5.appendChild(el("b", null, fmtRate(r.e5)));
    head.appendChild(req); head.appendChild(e5);
    if (status.traffic) head.appendChild(sparkline(r.points));
    if (s.panic) head.appendChild(el("span", "pill s503", "panic mode"));
    div.appendChild(head);
    if (!s.instances.length) {
      div.appendChild(el("div", "empty", "no instance: its routes answer 503"));
    } else {
      const t = el("table");
      const hr = el("tr");
      for (const h of ["", "Container", "Address", "Weight", "In flight", "Health"]) hr.appendChild(el("th", null, h));
      t.appendChild(hr);
      for (const i of s.instances) {
        const tr = el("tr", "instance");
        tr.dataset.address = i.address;
        const dotCell = cell(tr, "");
        dotCell.appendChild(el("span", "dot " + (["green", "amber", "red"].includes(i.colour) ? i.colour : "red")));
        cell(tr, i.container || "(config)", "container");
        cell(tr, i.address, "mono");
        cell(tr, i.weight ?? "\u2014", "num");
        cell(tr, i.in_flight, "num");
        const why = cell(tr, i.why, "why");
        if (i.docker) why.appendChild(el("div", null, "Docker: " + i.docker));
        t.appendChild(tr);
      }
      div.appendChild(t);
    }
    out.push(div);
  }
  box.replaceChildren(...out);
}

function renderRoutes(status) {
  const body = document.getElementById("routes");
  const rows = status.routes.map(r => {
    const tr = el("tr", "route");
    tr.dataset.route = r.name;
    cell(tr, r.name); cell(tr, r.host || "(any)"); cell(tr, r.path_prefix, "mono");
    cell(tr, r.priority, "num");
    const services = r.split ? r.split.map(t => t.service + " (weight " + t.weight + ")").join(", ")
                     : r.state === "redirect" ? "\u2014 (answered by Berth)" : r.service;
    cell(tr, services + (r.mirror ? " (mirror: " + r.mirror.service + ", " + r.mirror.percent + " %)" : ""));
    const st = cell(tr, "");
    const pill = r.state === "ok" ? ["ok", "ok"] : r.state === "redirect" ? ["redirect", "redirect"]
                                                                          : ["s503", "503: no instance"];
    st.appendChild(el("span", "pill " + pill[0], pill[1]));
    return tr;
  });
  body.replaceChildren(...rows);
}

function renderEvents(journal) {
  const body = document.getElementById("events");
  const events = journal.events.slice(-SHOW_EVENTS).reverse();  // newest first on the page
  const rows = events.map(e => {
    const tr = el("tr", "event");
    cell(tr, e.time.replace("T", " ").replace("Z", ""), "mono time");
    cell(tr, e.type, "ev-type");
    const parts = [];
    for (const k of Object.keys(e)) {
      if (["seq", "time", "time_ms", "type"].includes(k)) continue;
      parts.push(k + "=" + e[k]);
    }
    cell(tr, parts.join("  "), "why");
    return tr;
  });
  body.replaceChildren(...rows);
}

async function update(poll) {
  try {
    const filter = filterBox.value.trim();
    const [status, journal] = await Promise.all([
      fetch(statusUrl(), { cache: "no-store" }).then(async r => {
        const j = await r.json();
        if (!r.ok) throw new Error(j.error);  // a 400: says which parameter
        return j;
      }),
      fetch("/api/events", { cache: "no-store" }).then(r => r.json())]);
    if (poll !== polls) return;  // the filter changed meanwhile: a newer update draws
    renderServices(status);
    renderRoutes(status);
    renderEvents(journal);
    capLine("services-cap", "services", status.services.length, status.services_matched, status.services_total, filter);
    capLine("routes-cap", "routes", status.routes.length, status.routes_matched, status.routes_total, filter);
    document.getElementById("summary").textContent = "generation " + status.generation + " \u00b7 " +
      count(status.routes_total) + " routes \u00b7 " + count(status.services_total) + " services \u00b7 " +
      count(status.instances_total) + " instances \u00b7 " + status.time.replace("T", " ").replace("Z", " UTC");
    document.getElementById("discovery").textContent = status.discovery.map(d =>
      d.name + ": " + (d.in_sync ? "in sync" : d.stale_reason) +
      (d.degraded_reason ? " (" + d.degraded_reason + ")" : "")).join(" \u00b7 ");
    const waiting = status.restart_needed || [];
    document.getElementById("restart").textContent =
      waiting.length ? "the config file waits for a restart: " + waiting.join("; ") : "";
    document.getElementById("error").textContent = "";
    updates += 1;
    document.body.dataset.updates = String(updates);
  } catch (err) {
    document.getElementById("error").textContent = "update failed: " + err;
  }
}
// The next update starts once this one is done: a slow answer (a very large table) is not
// asked for again before it arrives. A new filter starts one at once; the older one's answer
// is dropped.
async function poll() {
  clearTimeout(timer);
  const mine = ++polls;
  await update(mine);
  if (mine === polls) timer = setTimeout(poll, POLL_MS);
}
filterBox.value = filterFromHash();
filterBox.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    const f = filterBox.value.trim();
    history.replaceState(null, "", f ? "#filter=" + encodeURIComponent(f) : location.pathname + location.search);
    poll();
  }, 250);
});
window.addEventListener("hashchange", () => {
  if (filterFromHash() === filterBox.value.trim()) return;
  filterBox.value = filterFromHash();
  poll();
});
poll();
</script>
</body>
</html>
)BERTHPAGE";

}  // namespace

const char* status_page_html() noexcept { return kPage; }

}  // namespace berth
