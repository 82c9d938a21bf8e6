"use strict";
// The dashboard at /_mock/ui: plain DOM, fetch and SVG; no CDN, no build step. Text from the server
// is only ever set through textContent. The live list comes from /_mock/ui/feed, an SSE stream read
// with fetch (EventSource cannot send the admin token as a header, and a token in a URL ends up in
// logs and the browser's history).

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "mock-llm-sse admin token";
const SHOWN_ROWS = 400;
const RETRY_MS = 2000;
const params = new URLSearchParams(location.search);
const FEED_MAX_S = params.get("max_s");

const records = new Map(); // id -> record, as the feed sent it
let verdict = { findings: [], calls: [], pending: [] };
let findingsByRecord = new Map(); // id -> [finding]
let instance = null;
let selected = null;
let renderQueued = false;

// ---- access --------------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body?.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function askForToken(message) {
  const form = $("token-form");
  form.hidden = false;
  form.classList.toggle("wrong", Boolean(token()));
  $("token-message").textContent = token()
    ? `The admin token was refused: ${message}`
    : `This server needs its admin token to show the journal: ${message}`;
  $("token").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token-form").hidden = true;
  connect();
});

// ---- the feed ------------------------------------------------------------------------------------

function setFeed(text, kind = "") {
  const status = $("feed-status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

/** A line-by-line SSE parser (WHATWG rules: CR, LF or CRLF; a blank line dispatches). */
function sseParser(onEvent) {
  let buffer = "";
  let event = { type: "message", data: null };
  return (text) => {
    buffer += text;
    const held = buffer.endsWith("\r") ? 1 : 0;
    const lines = buffer.slice(0, buffer.length - held).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(buffer.length - held);
    for (const line of lines) {
      if (line === "") {
        if (event.data !== null) onEvent(event);
        event = { type: "message", data: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") event.data = event.data === null ? value : `${event.data}\n${value}`;
      else if (field === "event") event.type = value;
    }
  };
}

let feedController = null;
let retryTimer = null;

function retry(ms) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, ms);
}

async function connect() {
  clearTimeout(retryTimer);
  feedController?.abort();
  const controller = new AbortController();
  feedController = controller;
  setFeed("Connecting…");
  const url = `/_mock/ui/feed${FEED_MAX_S ? `?max_s=${encodeURIComponent(FEED_MAX_S)}` : ""}`;
  let response;
  try {
    response = await fetch(url, { headers: authHeaders(), signal: controller.signal, cache: "no-store" });
  } catch (error) {
    if (controller.signal.aborted) return;
    setFeed(`The server cannot be reached (${error.message}); trying again in ${RETRY_MS / 1000} s`, "error");
    return retry(RETRY_MS);
  }
  if (response.status === 401) {
    setFeed("Needs the admin token", "error");
    return askForToken(await errorMessage(response));
  }
  if (!response.ok) {
    setFeed(`The feed failed: ${await errorMessage(response)}; trying again in ${RETRY_MS / 1000} s`, "error");
    return retry(RETRY_MS);
  }
  $("token-form").hidden = true;
  setFeed("Live", "live");
  let ended = null;
  const parse = sseParser((event) => {
    const data = JSON.parse(event.data);
    if (event.type === "hello") {
      if (instance !== null && data.instance !== instance) records.clear(); // the server restarted
      instance = data.instance;
    } else if (event.type === "record") {
      records.set(data.id, data);
      queueRender();
    } else if (event.type === "kept") {
      // the journal no longer holds the records below `oldest` (all of them for null): cleared or pushed out
      for (const id of [...records.keys()]) if (data.oldest === null || id < data.oldest) records.delete(id);
      queueRender();
    } else if (event.type === "verdict") {
      showVerdict(data);
    } else if (event.type === "end") {
      ended = data.reason;
    }
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parse(decoder.decode(value, { stream: true }));
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    setFeed(`The feed broke off (${error.message}); connecting again in ${RETRY_MS / 1000} s`, "error");
    return retry(RETRY_MS);
  }
  if (controller !== feedController) return;
  if (ended !== null) setFeed(`Feed ended: ${ended}. Connecting again in ${RETRY_MS / 1000} s`, "ended");
  else setFeed(`The feed ended without its end event; connecting again in ${RETRY_MS / 1000} s`, "error");
  retry(RETRY_MS);
}

// ---- the verdict ---------------------------------------------------------------------------------

function showVerdict(data) {
  verdict = data;
  findingsByRecord = new Map();
  for (const finding of data.findings) {
    for (const id of finding.records) {
      if (!findingsByRecord.has(id)) findingsByRecord.set(id, []);
      findingsByRecord.get(id).push(finding);
    }
  }
  const pending = data.pending.length ? `, ${data.pending.length} check(s) waiting` : "";
  $("verdict-summary").textContent =
    `${data.requests} request(s) in ${data.calls.length} call(s): ${data.errors} error(s), ${data.warnings} warning(s)${pending}`;
  const list = $("findings");
  list.replaceChildren();
  for (const finding of data.findings) {
    const item = el("li", { class: `finding ${finding.severity}` });
    item.append(el("strong", {}, finding.title), " ", el("span", { class: "code" }, finding.code), el("br"));
    item.append(el("span", {}, finding.detail), el("br"), el("span", { class: "muted" }, "records: "));
    for (const id of finding.records) item.append(recordLink(id));
    list.append(item);
  }
  if (!data.findings.length) list.append(el("li", { class: "muted" }, "No findings: the clients behaved."));
  queueRender();
}

// ---- helpers -------------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function recordLink(id) {
  const link = el("a", { href: `#record-${id}`, class: "record-link" }, `#${id}`);
  return link;
}

const faultOf = (r) => r.query?.fault ?? r.request_headers?.["x-mock-fault"] ?? "";
const endpointOf = (r) => r.endpoint ?? r.path;
const outcomeOf = (r) => r.outcome ?? "in flight";

function clock(unixSeconds) {
  const date = new Date(unixSeconds * 1000);
  return `${date.toTimeString().slice(0, 8)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** The record a resumed request (one with Last-Event-ID) picks up from: the one before it in its call
 * (the verdict's grouping), else the latest earlier record of the same path, scenario and prompt. */
function resumedFrom(record) {
  if (record.last_event_id === null) return null;
  for (const call of verdict.calls) {
    const at = call.indexOf(record.id);
    if (at > 0) return call[at - 1];
  }
  let found = null;
  for (const other of records.values()) {
    const same = other.path === record.path && other.scenario === record.scenario && other.prompt === record.prompt;
    if (same && other.id < record.id && (found === null || other.id > found)) found = other.id;
  }
  return found;
}

function resumedBy(record) {
  for (const other of records.values()) {
    if (other.id > record.id && other.last_event_id !== null && resumedFrom(other) === record.id) return other.id;
  }
  return null;
}

// ---- the timeline --------------------------------------------------------------------------------

/** What the timeline draws, in ms from the request's arrival. The writes' moments count from when the
 * response began to play, which is the time to prepare it (a millisecond or so) after the arrival:
 * drawn as they are, they sit that much early against the schedule's moments (close, stall, end). */
function timelineOf(record) {
  const timing = record.events_timing;
  const dues = timing?.due_ms ?? [];
  let count = 0;
  const writes = dues.map((due, i) => {
    count += timing.events[i];
    return { due, written: timing.written_ms[i], events: timing.events[i], upTo: count };
  });
  const now = Date.now() / 1000;
  const end = record.duration_ms ?? Math.max(0, (now - record.received_at) * 1000);
  let span = Math.max(end, ...writes.map((w) => Math.max(w.due, w.written)), MIN_SPAN_MS);
  if (record.stall_at_ms !== null) span = Math.max(span, record.stall_at_ms + (record.stall_ms ?? 0));
  if (record.close_at_ms !== null) span = Math.max(span, record.close_at_ms);
  return { writes, end, span, more: timing?.more ?? 0, moreLate: timing?.more_late_ms ?? 0 };
}

const MIN_SPAN_MS = 10; // an answer of a millisecond is drawn on a 10 ms scale, not stretched
const CUTS = { dropped: "dropped", reset: "reset", stalled: "stalled" };

function drawTimeline(record, { width = 640, compact = false } = {}) {
  const model = timelineOf(record);
  const height = compact ? 18 : 118;
  const pad = compact ? 7 : 14;
  const track = compact ? 9 : 54;
  const x = (ms) => pad + (ms / model.span) * (width - 2 * pad);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: compact ? "mini" : "timeline",
    "data-span-ms": model.span.toFixed(1),
    role: "img",
    "aria-label": `timeline of request ${record.id}`,
  });
  const pattern = svg("pattern", { id: "hatch", width: 4, height: 4, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
  pattern.append(svg("rect", { width: 2, height: 4, fill: "#f6c58a" }));
  const defs = svg("defs");
  defs.append(pattern);
  root.append(defs);
  root.append(svg("line", { class: "track", x1: x(0), x2: x(model.end), y1: track, y2: track }));

  if (!compact) {
    const axis = svg("g", { class: "axis" });
    const step = niceStep(model.span / 6);
    for (let ms = 0; ms <= model.span + 1e-9; ms += step) {
      axis.append(svg("line", { x1: x(ms), x2: x(ms), y1: track + 26, y2: track + 31 }));
      axis.append(svg("text", { x: x(ms), y: track + 43, "text-anchor": "middle" }, `${Math.round(ms)} ms`));
    }
    root.append(axis);
  }

  // A stall: the gap the server leaves on purpose (to the end for one that lasts until the client leaves).
  if (record.stall_at_ms !== null) {
    const until = record.stall_ms !== null ? record.stall_at_ms + record.stall_ms : model.end;
    const stall = svg("rect", {
      class: "stall",
      x: x(record.stall_at_ms),
      y: track - (compact ? 5 : 10),
      width: Math.max(1, x(until) - x(record.stall_at_ms)),
      height: compact ? 10 : 20,
    });
    stall.append(svg("title", {}, `stall from ${record.stall_at_ms.toFixed(0)} ms${record.stall_ms !== null ? ` for ${record.stall_ms.toFixed(0)} ms` : " until the client leaves"}`));
    root.append(stall);
    if (!compact) root.append(svg("text", { x: x(record.stall_at_ms) + 3, y: track - 14 }, "stall"));
  }

  const labelled = !compact && model.writes.length <= 40;
  for (const [i, write] of model.writes.entries()) {
    const group = svg("g", { class: "write", "data-event": write.upTo, "data-due-ms": write.due.toFixed(3), "data-written-ms": write.written.toFixed(3) });
    const late = write.written - write.due;
    if (!compact && late > 0.5) group.append(svg("line", { class: "late", x1: x(write.due), x2: x(write.written), y1: track, y2: track }));
    group.append(svg("circle", { class: "due", cx: x(write.due), cy: track, r: compact ? 2 : 4 }));
    group.append(svg("circle", { class: "written", cx: x(write.written), cy: track, r: compact ? 1.6 : 3 }));
    const events = write.events === 1 ? `event ${write.upTo}` : `events ${write.upTo - write.events + 1}-${write.upTo}`;
    group.append(svg("title", {}, `${events}: due ${write.due.toFixed(1)} ms, written ${write.written.toFixed(1)} ms (${late >= 0 ? "+" : ""}${late.toFixed(1)} ms)`));
    if (labelled && (model.writes.length <= 16 || i % Math.ceil(model.writes.length / 16) === 0)) {
      group.append(svg("text", { x: x(write.written), y: track + 18, "text-anchor": "middle" }, String(write.upTo)));
    }
    root.append(group);
  }

  if (record.close_at_ms !== null) mark(root, "close", x(record.close_at_ms), track, compact, "close event");

  const after = `after event ${record.events_sent}`;
  const outcome = record.outcome;
  if (outcome === "dropped" || outcome === "reset") {
    const kind = outcome === "dropped" ? "drop" : "reset";
    const named = faultOf(record).split(",").find((f) => f.startsWith(`${kind}@`));
    const label = `${CUTS[outcome]} ${after}${named ? ` (${named.split("!")[0]})` : ""}`;
    mark(root, "cut", x(model.end), track, compact, label, outcome);
  } else if (outcome === "stalled") {
    mark(root, "left", x(model.end), track, compact, `client left the stall ${after}`, outcome);
  } else if (outcome === "client_disconnected") {
    mark(root, "left", x(model.end), track, compact, `client left ${after}`, outcome);
  } else if (outcome === "error_status") {
    mark(root, "cut", x(model.end), track, compact, `HTTP ${record.status ?? "—"}`, outcome);
  } else if (outcome === "completed") {
    mark(root, "end", x(model.end), track, compact, record.status === 204 ? "204, nothing left" : "end", outcome);
  } else {
    mark(root, "flight", x(model.end), track, compact, "in flight", "in-flight");
  }

  if (!compact) {
    const from = resumedFrom(record);
    if (from !== null) root.append(linkText(`↩ resumes #${from} (Last-Event-ID ${record.last_event_id})`, from, x(0), 12, "start"));
    const by = resumedBy(record);
    if (by !== null) root.append(linkText(`resumed by #${by} ↪`, by, x(model.end), 12, "end"));
  }
  return root;
}

function mark(root, kind, at, track, compact, label, outcome = kind) {
  const group = svg("g", { class: `${kind} marker`, "data-outcome": outcome });
  const reach = compact ? 8 : 16;
  if (kind === "cut") {
    group.append(svg("path", { d: `M${at - reach / 2} ${track - reach / 2} L${at + reach / 2} ${track + reach / 2} M${at + reach / 2} ${track - reach / 2} L${at - reach / 2} ${track + reach / 2}` }));
  }
  group.append(svg("line", { x1: at, x2: at, y1: track - reach, y2: track + reach }));
  group.append(svg("title", {}, label));
  if (!compact) group.append(svg("text", { x: at, y: track - reach - 4, "text-anchor": at > 420 ? "end" : "start" }, label));
  root.append(group);
}

function linkText(text, id, at, y, anchor) {
  const link = svg("a", { href: `#record-${id}`, class: "resume" });
  link.append(svg("text", { x: at, y, "text-anchor": anchor }, text));
  return link;
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-3)));
  for (const factor of [1, 2, 5, 10]) if (factor * power >= raw) return factor * power;
  return 10 * power;
}

// ---- the list and the filters --------------------------------------------------------------------

const FILTERS = [
  ["filter-scenario", (r) => r.scenario ?? ""],
  ["filter-endpoint", endpointOf],
  ["filter-outcome", outcomeOf],
];

function matches(record) {
  for (const [id, value] of FILTERS) {
    const wanted = $(id).value;
    if (wanted && value(record) !== wanted) return false;
  }
  const finding = $("filter-finding").value;
  const found = findingsByRecord.get(record.id) ?? [];
  if (finding === "*") return found.length > 0;
  if (finding) return found.some((f) => f.code === finding);
  return true;
}

function fillOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const value of [...values].sort()) {
    if (!have.has(value)) select.append(new Option(value, value));
  }
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  const all = [...records.values()];
  for (const [id, value] of FILTERS) fillOptions($(id), new Set(all.map(value).filter(Boolean)));
  fillOptions($("filter-finding"), new Set(verdict.findings.map((f) => f.code)));
  const shown = all.filter(matches).sort((a, b) => b.id - a.id);
  $("counts").textContent = `${shown.length} of ${all.length} request(s)`;
  $("empty").hidden = all.length > 0;
  const body = $("requests").tBodies[0];
  body.replaceChildren(...shown.slice(0, SHOWN_ROWS).map(row));
  if (selected !== null) showDetail(selected, false);
}

function row(record) {
  const tr = el("tr", { "data-id": record.id, id: `row-${record.id}` });
  if (record.id === selected) tr.classList.add("selected");
  const outcome = outcomeOf(record);
  const findings = el("td", { class: "findings" });
  for (const finding of findingsByRecord.get(record.id) ?? []) {
    findings.append(el("span", { class: `badge ${finding.severity}`, title: finding.title }, finding.code));
  }
  const timeline = el("td", { class: "mini" });
  timeline.append(drawTimeline(record, { width: 110, compact: true }));
  tr.append(
    el("td", { class: "num" }, String(record.id)),
    el("td", { class: "mono" }, clock(record.received_at)),
    el("td", { class: "request", title: `${record.method} ${record.path}` }, `${record.method} ${endpointOf(record)}`),
    el("td", {}, record.scenario ?? "—"),
    el("td", { class: "mono fault" }, faultOf(record)),
    el(
      "td",
      {},
      el("span", { class: "status-code" }, record.status === null ? "—" : String(record.status)),
      " ",
      el("span", { class: `outcome ${outcome.replace(" ", "-")}` }, outcome),
    ),
    el("td", { class: "num" }, String(record.events_sent)),
    el("td", { class: "num" }, record.duration_ms === null ? "…" : record.duration_ms.toFixed(0)),
    findings,
    timeline,
  );
  tr.addEventListener("click", () => {
    location.hash = `record-${record.id}`;
  });
  return tr;
}

// ---- one request ---------------------------------------------------------------------------------

let framesShownFor = null;

function showDetail(id, fresh = true) {
  const record = records.get(id);
  if (!record) {
    $("detail-title").textContent = `#${id} is not in the journal (cleared, or not arrived yet)`;
    $("detail-body").hidden = true;
    return;
  }
  $("detail-body").hidden = false;
  $("detail-title").textContent = `#${record.id} ${record.method} ${record.path}`;
  $("detail-title").className = "";
  $("timeline").replaceChildren(drawTimeline(record));
  const links = $("links");
  links.replaceChildren();
  const from = resumedFrom(record);
  if (from !== null) links.append(`Resumes `, recordLink(from), ` with Last-Event-ID ${record.last_event_id}. `);
  const by = resumedBy(record);
  if (by !== null) links.append(`Resumed by `, recordLink(by), ". ");
  const facts = $("facts");
  facts.replaceChildren();
  const timing = record.events_timing;
  const late = timing ? Math.max(0, timing.more_late_ms, ...timing.due_ms.map((d, i) => timing.written_ms[i] - d)) : null;
  const rows = [
    ["received", clock(record.received_at)],
    ["scenario", record.scenario],
    ["endpoint", endpointOf(record)],
    ["prompt", record.prompt],
    ["fault", faultOf(record) || null],
    ["status", record.status],
    ["outcome", outcomeOf(record)],
    ["events sent", record.events_sent],
    ["duration", record.duration_ms === null ? null : `${record.duration_ms.toFixed(1)} ms`],
    ["due end", record.due_end_ms === null ? null : `${record.due_end_ms.toFixed(1)} ms`],
    ["most late", late === null ? null : `${late.toFixed(1)} ms`],
    ["writes not drawn", timing?.more ? `${timing.more} (latest ${timing.more_late_ms.toFixed(1)} ms late)` : null],
    ["close event at", record.close_at_ms === null ? null : `${record.close_at_ms.toFixed(1)} ms`],
    ["stall", record.stall_at_ms === null ? null : `at ${record.stall_at_ms.toFixed(1)} ms for ${record.stall_ms === null ? "ever" : `${record.stall_ms.toFixed(0)} ms`}`],
    ["Last-Event-ID", record.last_event_id],
    ["last id sent", record.last_id_sent],
    ["retry:", record.retry_ms],
    ["Retry-After", record.retry_after],
    ["conversation", record.conversation],
  ];
  for (const [name, value] of rows) {
    if (value === null || value === undefined || value === "") continue;
    facts.append(el("dt", {}, name), el("dd", {}, String(value)));
  }
  const own = findingsByRecord.get(record.id) ?? [];
  const box = $("record-findings");
  box.replaceChildren();
  if (own.length) {
    const list = el("ul");
    for (const f of own) list.append(el("li", { class: `finding ${f.severity}` }, el("strong", {}, f.title), ` (${f.code}): ${f.advice}`));
    box.append(el("strong", {}, "Findings"), list);
  }
  if (fresh || framesShownFor !== id) {
    framesShownFor = null;
    $("frames").hidden = true;
    $("frames-note").textContent = "";
  }
}

async function showFrames() {
  const id = selected;
  if (id === null) return;
  $("frames-note").textContent = "Rendering…";
  const response = await fetch(`/_mock/requests/${id}/frames`, { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) {
    $("frames-note").textContent = `No frames: ${await errorMessage(response)}`;
    if (response.status === 401) askForToken(await errorMessage(response));
    return;
  }
  const rendered = await response.json();
  if (selected !== id) return;
  framesShownFor = id;
  const pre = $("frames");
  pre.replaceChildren();
  pre.append(el("span", { class: "op" }, `HTTP ${rendered.status}\n`));
  for (const [name, value] of rendered.headers) pre.append(el("span", { class: "op" }, `${name}: ${value}\n`));
  for (const op of rendered.ops) {
    const at = `+${op.at_ms.toFixed(0)} ms`;
    if (op.op === "write") {
      pre.append(el("span", { class: "op" }, `\n── ${at}${op.events ? `, ${op.events} event(s)` : ""} ──\n`), op.data);
    } else if (op.op === "stall") {
      pre.append(el("span", { class: "op" }, `\n── ${at} stall for ${op.ms.toFixed(0)} ms ──\n`));
    } else {
      const words = { drop: "connection dropped (no final chunk)", reset: "connection reset (TCP RST)", hang: "silent until the client leaves" };
      pre.append(el("span", { class: "cut" }, `\n── ${at} ${words[op.op]} ──\n`));
    }
  }
  pre.hidden = false;
  $("frames-note").textContent = rendered.notes.join(" ");
}

function select(id) {
  selected = id;
  for (const tr of document.querySelectorAll("#requests tr.selected")) tr.classList.remove("selected");
  $(`row-${id}`)?.classList.add("selected");
  $(`row-${id}`)?.scrollIntoView({ block: "nearest" });
  showDetail(id);
}

function selectFromHash() {
  const found = /^#record-(\d+)$/.exec(location.hash);
  if (found) select(Number(found[1]));
}

// ---- scenarios -----------------------------------------------------------------------------------

async function loadScenarios() {
  const list = $("scenarios");
  let scenarios;
  try {
    const response = await fetch("/_mock/scenarios", { headers: authHeaders() });
    if (!response.ok) throw new Error(await errorMessage(response));
    scenarios = await response.json();
  } catch (error) {
    list.replaceChildren(el("li", { class: "muted" }, `Scenarios not loaded: ${error.message}`));
    return;
  }
  list.replaceChildren(
    ...scenarios.map((s) => {
      const item = el("li", { "data-scenario": s.name });
      item.append(el("strong", {}, s.name), " ", el("a", { href: `/?scenario=${encodeURIComponent(s.name)}`, class: "try" }, "try it"));
      item.append(" ", el("span", { class: "source", title: s.source }, s.source.split("/").pop()), el("br"), el("span", {}, s.description));
      return item;
    }),
  );
}

// ---- start ---------------------------------------------------------------------------------------

for (const id of ["filter-scenario", "filter-endpoint", "filter-outcome", "filter-finding"]) {
  $(id).addEventListener("change", queueRender);
}
$("frames-button").addEventListener("click", showFrames);
window.addEventListener("hashchange", selectFromHash);
setInterval(() => {
  // in-flight timelines grow with the clock
  if ([...records.values()].some((r) => r.outcome === null)) queueRender();
}, 500);
selectFromHash();
loadScenarios();
connect();
