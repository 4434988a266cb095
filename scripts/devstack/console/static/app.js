// walbridge dev console: follows /api/stream (server-sent events) and draws
// the events, tables, deliveries, health and backfills; checks the pattern
// playground with /api/pattern. Plain DOM, no dependencies. Event data is
// only ever set as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
// The page keeps the last KEEP events (the server's snapshot has as many);
// table counts are the server's, whole, kept current between its readings.
const KEEP = 1000;
const state = { items: new Map(), deliveries: new Map(), tables: new Map(), matched: new Set() };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function summary(ev) {
  const d = ev.detail || {};
  const s = { table: "", op: "", key: "", changed: "" };
  if (d.table && d.operation) {
    s.table = `${d.schema}.${d.table}`;
    s.op = d.operation;
    const values = d.newValues && Object.keys(d.newValues).length ? d.newValues : d.oldValues || {};
    const first = Object.keys(values)[0];
    if (first) s.key = `${first}=${JSON.stringify(values[first].value)}`;
    if (d.operation === "update") s.changed = (d.changedValues || []).join(", ") || "-";
  } else {
    s.table = ev.source || "";
    s.op = ev["detail-type"] || "";
  }
  return s;
}

function addItem(it, live) {
  if (state.items.has(it.seq)) return;
  const ev = JSON.parse(JSON.stringify(it.event));
  const s = summary(ev);
  it.summary = s;
  it.text = JSON.stringify(it.event).toLowerCase();
  state.items.set(it.seq, it);
  if (live) state.tables.set(s.table, (state.tables.get(s.table) || 0) + 1);
  if (state.items.size > KEEP) {
    const [oldest, gone] = state.items.entries().next().value;
    gone.li.remove();
    state.items.delete(oldest);
    state.deliveries.delete(gone.id);
  }

  const li = el("li");
  li.dataset.seq = it.seq;
  li.dataset.table = s.table;
  li.dataset.op = s.op;
  const row = el("div", "row");
  row.append(el("span", "time", new Date(it.received).toLocaleTimeString()));
  row.append(el("span", "table", s.table));
  row.append(el("span", `op op-${s.op}`, s.op));
  const rest = el("span", "rules");
  rest.append(document.createTextNode(s.key + (s.changed ? ` changed: ${s.changed}` : "") + " → "));
  if (it.matches.length === 0) rest.append(document.createTextNode("no rule matched"));
  it.matches.forEach((m, i) => {
    if (i) rest.append(document.createTextNode(", "));
    const b = el("b", "", m.rule);
    b.title = m.file || "";
    rest.append(b);
  });
  row.append(rest);
  const detail = el("div", "detail");
  const rules = el("div", "muted");
  rules.textContent = it.matches.length
    ? "Rules: " + it.matches.map((m) => `${m.rule} (${m.file || "?"}) → ${m.targets.join(", ") || "no targets"}`).join("; ")
    : "No rule matched this event.";
  const delivs = el("div", "delivs");
  const pre = el("pre", "", JSON.stringify(it.event, null, 2));
  detail.append(rules, delivs, pre);
  row.addEventListener("click", () => li.classList.toggle("open"));
  li.append(row, detail);
  it.li = li;
  it.delivs = delivs;
  $("events").prepend(li);
  for (const d of state.deliveries.get(it.id) || []) drawDelivery(it, d);
  applyFilter(li);
}

function drawDelivery(it, d) {
  const line = d.delivered
    ? `${d.rule} → ${d.target}: delivered on attempt ${d.attempts}${d.result ? "; returned " + d.result : ""}`
    : `${d.rule} → ${d.target}: NOT delivered after ${d.attempts} attempts: ${d.err}`;
  it.delivs.append(el("div", d.delivered ? "deliv" : "deliv failed", line));
}

function addDelivery(d) {
  const key = d.EventID;
  const norm = { rule: d.Rule, target: d.Target, attempts: d.Attempts, delivered: d.Delivered, err: d.Err, result: d.Result };
  if (!state.deliveries.has(key)) state.deliveries.set(key, []);
  state.deliveries.get(key).push(norm);
  for (const it of state.items.values()) if (it.id === key) drawDelivery(it, norm);
}

function drawTables() {
  const ul = $("tables");
  ul.textContent = "";
  const sel = $("f-table");
  const chosen = sel.value;
  [...sel.options].slice(1).forEach((o) => o.remove());
  [...state.tables.keys()].sort().forEach((t) => {
    const li = el("li", t === chosen ? "on" : "");
    li.dataset.table = t;
    li.append(el("span", "", t), el("span", "n", String(state.tables.get(t))));
    li.addEventListener("click", () => {
      sel.value = sel.value === t ? "" : t;
      filterAll();
    });
    ul.append(li);
    const o = el("option", "", t);
    o.value = t;
    sel.append(o);
  });
  sel.value = chosen;
}

function visible(it) {
  const t = $("f-table").value, op = $("f-op").value, text = $("f-text").value.trim().toLowerCase();
  if (t && it.summary.table !== t) return false;
  if (op && it.summary.op !== op) return false;
  if (text && !it.text.includes(text)) return false;
  if ($("f-matched").checked && !state.matched.has(it.seq)) return false;
  return true;
}

function applyFilter(li) {
  const it = state.items.get(Number(li.dataset.seq));
  li.classList.toggle("hidden", !visible(it));
  li.classList.toggle("match", state.matched.has(it.seq));
}

function filterAll() {
  for (const it of state.items.values()) applyFilter(it.li);
  const shown = document.querySelectorAll("#events li:not(.hidden)").length;
  $("shown").textContent = `${shown} of ${state.items.size} events shown`;
  drawTables();
}

function fmtBytes(n) {
  if (n === undefined || n === null) return "–";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
const fmtMs = (v) => (v === undefined || v === null ? "–" : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(1)} s`);

function drawHealth(h) {
  state.tables = new Map(Object.entries(h.tables || {}));
  $("h-events").textContent = String(h.events || 0);
  $("h-lag").textContent = `${fmtMs(h.lagP50Ms)} / ${fmtMs(h.lagLastMs)}`;
  $("h-wal").textContent = fmtBytes(h.walRetainedBytes);
  $("h-age").textContent = h.confirmedAgeSeconds === undefined ? "–" : `${h.confirmedAgeSeconds.toFixed(1)} s`;
  $("h-kinesis").textContent = h.kinesisRecords === undefined ? "–" : String(h.kinesisRecords);
  $("h-problems").textContent = (h.problems || []).join(" · ");
  const bf = $("backfills");
  bf.textContent = "";
  if (!h.backfills || h.backfills.length === 0) {
    bf.append(el("p", "muted", "none (capture backfill --table T)"));
    return;
  }
  for (const b of h.backfills) {
    const pct = b.estimate > 0 ? Math.min(100, (100 * b.rowsDone) / b.estimate) : b.state === "done" ? 100 : 0;
    const div = el("div", "backfill");
    div.append(el("div", "", `#${b.id} ${b.table} ${b.state}: ${b.rowsDone} of ~${b.estimate} rows, ${Math.round(b.rowsPerSecond)} rows/s`));
    const bar = el("div", "bar");
    const fill = el("div");
    fill.style.width = `${pct}%`;
    bar.append(fill);
    div.append(bar);
    bf.append(div);
  }
}

let checkTimer = null;
let checkSeq = 0;
function checkPattern() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(async () => {
    const mine = ++checkSeq;
    let res;
    try {
      const r = await fetch("api/pattern", { method: "POST", body: $("pattern").value });
      res = await r.json();
    } catch (e) {
      $("p-status").textContent = `could not check: ${e}`;
      return;
    }
    if (mine !== checkSeq) return;
    state.matched = new Set(res.matches);
    const status = $("p-status");
    const probs = $("p-problems");
    probs.textContent = "";
    for (const p of res.problems) probs.append(el("li", "", p.Path ? `${p.Path}: ${p.Msg}` : p.Msg));
    if (!res.valid) {
      status.className = "p-status bad";
      status.textContent = "EventBridge would refuse this pattern";
    } else {
      status.className = res.problems.length ? "p-status bad" : "p-status good";
      status.textContent = `${res.problems.length ? "accepted, but: " : "ok: "}matches ${res.matches.length} of the ${state.items.size} recent events`;
    }
    status.dataset.matches = String(res.matches.length);
    filterAll();
  }, 150);
}

// redraw filters the list and checks the pattern again after a burst of
// events, at most every 200 ms, so that thousands of events a second do not
// redraw thousands of times.
let redrawTimer = null;
function redraw() {
  if (redrawTimer) return;
  redrawTimer = setTimeout(() => { redrawTimer = null; filterAll(); checkPattern(); }, 200);
}

function connect() {
  const es = new EventSource("api/stream");
  es.addEventListener("snapshot", (e) => {
    const snap = JSON.parse(e.data);
    state.items.clear(); state.deliveries.clear(); state.tables.clear();
    $("events").textContent = "";
    for (const d of snap.deliveries) addDelivery(d);
    for (const it of snap.items) addItem(it, false);
    drawHealth(snap.health);
    $("conn").textContent = "live";
    $("conn").className = "conn live";
    filterAll();
    checkPattern();
  });
  es.addEventListener("record", (e) => { addItem(JSON.parse(e.data), true); redraw(); });
  es.addEventListener("delivery", (e) => addDelivery(JSON.parse(e.data)));
  es.addEventListener("health", (e) => { drawHealth(JSON.parse(e.data)); drawTables(); });
  es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn"; };
}

for (const id of ["f-table", "f-op", "f-matched"]) $(id).addEventListener("change", filterAll);
$("f-text").addEventListener("input", filterAll);
$("pattern").addEventListener("input", checkPattern);
connect();
