// The ttflow-async dashboard page.
//
// Safety rule of this file: data from the server (workflow names, log lines, event
// args, state values, error messages) only ever reaches the page as text: through
// document.createTextNode / textContent, or as attribute values with setAttribute.
// No API that parses markup is ever used, and no data-derived URL is ever created.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "ttflow-async-dashboard-token";
const REFRESH_MS = 4000;

const state = {
  workflows: [],
  suspended: [],
  history: [],
  events: [],
  traces: [],
  flow: { edges: [], states: [] },
  status: null,
  selectedRun: null,
  selectedLog: null,
};

// ---------------------------------------------------------------- DOM helpers

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  appendChildren(node, children);
  return node;
}

function svg(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyProps(node, props);
  appendChildren(node, children);
  return node;
}

function applyProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, String(value));
  }
}

function appendChildren(node, children) {
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function replaceRows(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)));
    return;
  }
  for (const row of rows) tbody.append(row);
}

function byId(id) {
  return document.getElementById(id);
}

// ------------------------------------------------------------------ formatting

function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { hour12: false });
}

function fmtAgo(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

function fmtJson(value) {
  try {
    return JSON.stringify(value);
  } catch (error) {
    return String(value);
  }
}

function shortId(runId) {
  return runId.length > 12 ? runId.slice(0, 12) + "…" : runId;
}

function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function timeCell(iso) {
  return el("td", { title: iso || "" }, fmtTime(iso));
}

function statusBadge(word) {
  return el("span", { class: "status " + cssWord(word) }, word);
}

// Status and wait kinds come from fixed vocabularies; anything else gets no class.
function cssWord(word) {
  const known = ["succeeded", "failed", "paused", "blocked", "next_run", "event", "timer"];
  return known.includes(word) ? word : "";
}

function runButton(runId) {
  return el("button", { type: "button", class: "link", title: runId, onclick: () => selectRun(runId) },
    shortId(runId));
}

function describeWait(waitingFor) {
  switch (waitingFor.kind) {
    case "next_run":
      return "the next pass";
    case "event":
      return "event " + (waitingFor.name || "?") +
        (waitingFor.timeout_at ? " (until " + fmtTime(waitingFor.timeout_at) + ")" : "");
    case "timer":
      return "timer due " + fmtTime(waitingFor.due);
    case "blocked":
      return "blocked: " + (waitingFor.error_message || "");
    default:
      return waitingFor.kind;
  }
}

// ----------------------------------------------------------------------- HTTP

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      Authorization: "Bearer " + token(),
    },
    body: JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    payload = null;
  }
  return { status: response.status, payload };
}

// -------------------------------------------------------------------- renders

function renderStatus() {
  const status = state.status;
  if (!status) return;
  const lock = byId("lock-pill");
  lock.textContent = status.locked ? "lock: held" : "lock: free";
  lock.className = "pill " + (status.locked ? "on" : "ok");
  byId("wakeup-pill").textContent =
    "next wakeup: " + (status.next_wakeup ? fmtTime(status.next_wakeup) : "none");
  const writes = byId("writes-pill");
  writes.textContent = status.writes_enabled ? "writes: token required" : "writes: disabled";
  writes.className = "pill " + (status.writes_enabled ? "ok" : "");
  updateWriteControls();
}

function updateWriteControls() {
  const enabled = Boolean(state.status && state.status.writes_enabled);
  const haveToken = token() !== "";
  for (const button of document.querySelectorAll("button.write")) {
    button.disabled = !(enabled && haveToken);
  }
  byId("writes-hint").textContent = !enabled
    ? "Write actions are disabled on this server: start the dashboard with a token."
    : haveToken
      ? "Token set for this browser tab."
      : "Enter the dashboard token to fire triggers, send events or resume.";
}

function renderWorkflows() {
  const rows = state.workflows.map((workflow) =>
    el("tr", {},
      el("td", { class: "mono" }, workflow.name),
      el("td", {}, workflow.trigger.kind + ": " + workflow.trigger.name),
      el("td", {}, workflow.description || "")));
  replaceRows(byId("workflows"), rows, 3, "No workflows registered.");

  const triggerNames = byId("trigger-names");
  triggerNames.replaceChildren();
  const events = byId("event-names");
  events.replaceChildren();
  const seen = new Set();
  for (const workflow of state.workflows) {
    const { kind, name } = workflow.trigger;
    const target = kind === "trigger" ? triggerNames : kind === "event" ? events : null;
    if (target && !seen.has(kind + name)) {
      seen.add(kind + name);
      target.append(el("option", { value: name }));
    }
  }
  for (const run of state.suspended) {
    if (run.waiting_for.kind === "event" && run.waiting_for.name && !seen.has("w" + run.waiting_for.name)) {
      seen.add("w" + run.waiting_for.name);
      triggerNames.append(el("option", { value: run.waiting_for.name }));
    }
  }
}

function renderSuspended() {
  const rows = state.suspended.map((run) =>
    el("tr", {},
      el("td", { class: "mono" }, run.workflow_name),
      el("td", {}, runButton(run.run_id)),
      el("td", {}, statusBadge(run.waiting_for.kind), " ", describeWait(run.waiting_for)),
      el("td", { title: run.since }, fmtAgo(run.since))));
  replaceRows(byId("suspended"), rows, 4, "Nothing is suspended.");
}

function renderHistory() {
  const rows = state.history.slice().reverse().map((run) =>
    el("tr", {},
      timeCell(run.timestamp),
      el("td", { class: "mono" }, run.workflow_name),
      el("td", {}, runButton(run.run_id)),
      el("td", {}, statusBadge(run.status))));
  replaceRows(byId("history"), rows, 4, "No finished runs yet.");
}

function renderEvents() {
  const rows = state.events.slice().reverse().map((event) =>
    el("tr", {},
      timeCell(event.timestamp),
      el("td", { class: "mono" }, event.event_name),
      el("td", { class: "mono" }, fmtJson(event.args))));
  replaceRows(byId("events"), rows, 3, "No events delivered yet.");
}

function renderTraces() {
  const rows = state.traces.slice().reverse().map((trace) => {
    const runs = el("ul", {});
    for (const execution of trace.executions) {
      const item = el("li", {},
        el("span", { class: "mono" }, execution.workflow_name), " ",
        runButton(execution.run_id), " ",
        statusBadge(execution.status), " ← ", execution.triggered_by);
      for (const change of execution.state_changes) {
        item.append(el("div", { class: "muted mono" },
          change.name + ": " + fmtJson(change.old) + " → " + fmtJson(change.new)));
      }
      runs.append(item);
    }
    return el("tr", {},
      timeCell(trace.timestamp),
      el("td", { class: "mono" }, trace.trigger_name || "(plain pass)"),
      el("td", {}, trace.executions.length ? runs : "no run was ready"));
  });
  replaceRows(byId("traces"), rows, 3, "No passes traced yet.");
}

function renderLog() {
  byId("logs-run").textContent = state.selectedRun || "(select a run)";
  const list = byId("run-log");
  list.replaceChildren();
  if (!state.selectedRun) return;
  const lines = state.selectedLog || [];
  if (lines.length === 0) list.append(el("li", { class: "muted note" }, "no log lines"));
  for (const line of lines) list.append(el("li", {}, line));
}

// ------------------------------------------------------------------- timeline

function renderTimeline() {
  const box = byId("timeline");
  const names = [];
  const addName = (name) => { if (!names.includes(name)) names.push(name); };
  state.workflows.forEach((workflow) => addName(workflow.name));
  state.history.forEach((run) => addName(run.workflow_name));
  state.suspended.forEach((run) => addName(run.workflow_name));

  const points = [
    ...state.history.map((run) => ({
      name: run.workflow_name, runId: run.run_id, time: new Date(run.timestamp).getTime(),
      kind: run.status, finished: true, label: run.status + " " + run.timestamp,
    })),
    ...state.suspended.map((run) => ({
      name: run.workflow_name, runId: run.run_id, time: new Date(run.since).getTime(),
      kind: run.waiting_for.kind, finished: false,
      label: "suspended since " + run.since + ": " + describeWait(run.waiting_for),
    })),
  ];

  const width = 960;
  const left = 170;
  const right = 24;
  const top = 24;
  const rowHeight = 30;
  const height = top + Math.max(1, names.length) * rowHeight + 30;
  const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
    "aria-label": "Runs per workflow over time" });

  if (points.length === 0) {
    chart.append(svg("text", { x: 12, y: top + 16, class: "empty-note" }, "No runs yet."));
  }
  let start = Math.min(...points.map((p) => p.time));
  let end = Math.max(...points.map((p) => p.time));
  if (!Number.isFinite(start)) { start = Date.now() - 60000; end = Date.now(); }
  if (end - start < 60000) { start -= 30000; end += 30000; }
  const margin = (end - start) * 0.04;
  start -= margin;
  end += margin;
  const x = (time) => left + ((time - start) / (end - start)) * (width - left - right);

  const axisY = top + names.length * rowHeight + 4;
  chart.append(svg("line", { x1: left, y1: axisY, x2: width - right, y2: axisY, class: "axis" }));
  for (let i = 0; i <= 4; i += 1) {
    const time = start + ((end - start) * i) / 4;
    const tickX = x(time);
    chart.append(svg("line", { x1: tickX, y1: top - 8, x2: tickX, y2: axisY, class: "axis" }));
    chart.append(svg("text", { x: tickX, y: axisY + 16, class: "tick", "text-anchor": "middle" },
      new Date(time).toLocaleTimeString(undefined, { hour12: false })));
  }

  names.forEach((name, index) => {
    const y = top + index * rowHeight + rowHeight / 2;
    chart.append(svg("line", { x1: left, y1: y, x2: width - right, y2: y, class: "axis" }));
    chart.append(svg("text", { x: left - 10, y: y + 4, "text-anchor": "end", class: "row-label" },
      truncate(name, 22), svg("title", {}, name)));
    // Runs of the same pass finish at the same moment: nudge each mark left of the
    // next one (the latest stays exact) so that every run stays visible and clickable.
    let nextX = Infinity;
    const row = points.filter((p) => p.name === name).sort((a, b) => b.time - a.time);
    for (const point of row) {
      const cx = Math.max(left, Math.min(x(point.time), nextX - 9));
      nextX = cx;
      const mark = point.finished
        ? svg("circle", { cx, cy: y, r: 6, class: "dot " + cssWord(point.kind) })
        : svg("circle", { cx, cy: y, r: 6, class: "ring " + cssWord(point.kind) });
      mark.append(svg("title", {}, name + " " + point.runId + "\n" + point.label));
      mark.addEventListener("click", () => selectRun(point.runId));
      chart.append(mark);
    }
  });
  box.replaceChildren(chart);
}

// ----------------------------------------------------------------- flow graph

function renderFlow() {
  const box = byId("flow");
  const { edges, states } = state.flow;
  const sources = [];
  const sourceKind = new Map();
  for (const edge of edges) {
    if (!sourceKind.has(edge.source)) { sources.push(edge.source); sourceKind.set(edge.source, edge.source_kind); }
  }
  const workflows = [];
  const addWorkflow = (name) => { if (!workflows.includes(name)) workflows.push(name); };
  state.workflows.forEach((workflow) => addWorkflow(workflow.name));
  edges.forEach((edge) => addWorkflow(edge.workflow));
  states.forEach((item) => item.producers.forEach(addWorkflow));
  // Order sources by the first workflow they start, so that few lines cross.
  const firstTarget = (source) => Math.min(
    ...edges.filter((edge) => edge.source === source).map((edge) => workflows.indexOf(edge.workflow)));
  sources.sort((a, b) => firstTarget(a) - firstTarget(b));
  const produced = states.filter((item) => item.producers.length > 0);

  const width = 960;
  const nodeWidth = 210;
  const nodeHeight = 28;
  const gap = 14;
  const top = 30;
  const columns = [20, (width - nodeWidth) / 2, width - nodeWidth - 20];
  const rows = Math.max(1, sources.length, workflows.length, produced.length);
  const height = top + rows * (nodeHeight + gap) + 10;
  const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
    "aria-label": "Event to workflow flow" });
  ["triggers and events", "workflows", "states written"].forEach((title, index) => {
    chart.append(svg("text", { x: columns[index], y: 16, class: "column-title" }, title));
  });
  if (workflows.length === 0) {
    chart.append(svg("text", { x: columns[1], y: top + 18, class: "empty-note" }, "No workflows."));
    box.replaceChildren(chart);
    return;
  }

  const place = (names, column) => {
    const offset = ((rows - names.length) * (nodeHeight + gap)) / 2;
    const positions = new Map();
    names.forEach((name, index) => {
      positions.set(name, { x: columns[column], y: top + offset + index * (nodeHeight + gap) });
    });
    return positions;
  };
  const sourceAt = place(sources, 0);
  const workflowAt = place(workflows, 1);
  const stateAt = place(produced.map((item) => item.name), 2);

  const curve = (from, to) => {
    const x1 = from.x + nodeWidth;
    const y1 = from.y + nodeHeight / 2;
    const x2 = to.x;
    const y2 = to.y + nodeHeight / 2;
    const mid = (x1 + x2) / 2;
    return { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`, mx: mid, my: (y1 + y2) / 2 };
  };

  for (const edge of edges) {
    const path = curve(sourceAt.get(edge.source), workflowAt.get(edge.workflow));
    const line = svg("path", { d: path.d, class: "edge" + (edge.registered ? "" : " observed") });
    line.append(svg("title", {}, edge.source + " → " + edge.workflow + " (" + edge.observed + " traced runs)"));
    chart.append(line);
    if (edge.observed > 0) {
      chart.append(svg("text", { x: path.mx, y: path.my - 4, class: "edge-count", "text-anchor": "middle" },
        String(edge.observed)));
    }
  }
  for (const item of produced) {
    for (const producer of item.producers) {
      const path = curve(workflowAt.get(producer), stateAt.get(item.name));
      const line = svg("path", { d: path.d, class: "edge produces" });
      line.append(svg("title", {}, producer + " writes " + item.name));
      chart.append(line);
    }
  }

  const node = (position, kind, label, title) => {
    const group = svg("g", { class: "node " + kind, transform: `translate(${position.x} ${position.y})` });
    group.append(svg("rect", { width: nodeWidth, height: nodeHeight, rx: 6 }));
    group.append(svg("text", { x: 10, y: 18 }, truncate(label, 30)));
    group.append(svg("title", {}, title));
    chart.append(group);
  };
  const kindClass = (kind) => (["trigger", "event", "every", "state"].includes(kind) ? kind : "event");
  for (const source of sources) {
    const kind = sourceKind.get(source);
    const label = kind === "trigger" ? "▶ " + source : kind === "every" ? "every pass" : "⚡ " + source;
    node(sourceAt.get(source), kindClass(kind), label, kind + ": " + source);
  }
  for (const workflow of workflows) node(workflowAt.get(workflow), "workflow", workflow, "workflow " + workflow);
  for (const item of produced) {
    const readers = item.consumers.length ? " (starts " + item.consumers.join(", ") + ")" : "";
    node(stateAt.get(item.name), "state", "◆ " + item.name, "state " + item.name + readers);
  }
  box.replaceChildren(chart);
}

// ---------------------------------------------------------------- data flow

async function selectRun(runId) {
  state.selectedRun = runId;
  await refreshLog();
}

async function refreshLog() {
  if (!state.selectedRun) { renderLog(); return; }
  const runId = state.selectedRun;
  const data = await getJson("/api/runs/" + encodeURIComponent(runId) + "/logs");
  if (state.selectedRun === runId) {
    state.selectedLog = data.lines;
    renderLog();
  }
}

async function refresh() {
  try {
    const [workflows, suspended, history, events, traces, flow, status] = await Promise.all([
      getJson("/api/workflows"),
      getJson("/api/runs/suspended"),
      getJson("/api/runs/history?limit=200"),
      getJson("/api/events?limit=200"),
      getJson("/api/traces?limit=50"),
      getJson("/api/flow"),
      getJson("/api/status"),
    ]);
    Object.assign(state, { workflows, suspended, history, events, traces, flow, status });
    renderStatus();
    renderWorkflows();
    renderSuspended();
    renderHistory();
    renderEvents();
    renderTraces();
    renderTimeline();
    renderFlow();
    await refreshLog();
    byId("updated").textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
  } catch (error) {
    byId("updated").textContent = "refresh failed: " + error.message;
  }
}

// ------------------------------------------------------------------- actions

function parseArgs(text) {
  if (text.trim() === "") return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, message: "The args are not valid JSON: " + error.message };
  }
}

function showResult(text, isError) {
  const box = byId("action-result");
  box.textContent = text;
  box.className = "result" + (isError ? " error" : "");
}

function describeOutcome(response) {
  const { status, payload } = response;
  if (status === 200 || status === 202) {
    if (payload.queued) return { text: "Queued: " + (payload.message || ""), error: false };
    if (payload.results.length === 0) return { text: "Pass done: no run was ready.", error: false };
    const lines = payload.results.map((r) =>
      r.workflow_name + " " + r.run_id + ": " + r.status + (r.error_message ? " (" + r.error_message + ")" : ""));
    return { text: "Pass done:\n" + lines.join("\n"), error: false };
  }
  let detail = payload && payload.detail !== undefined ? payload.detail : "no details";
  if (typeof detail !== "string") detail = fmtJson(detail);
  return { text: "HTTP " + status + ": " + detail, error: true };
}

async function act(path, body) {
  showResult("…", false);
  const response = await postJson(path, body);
  const outcome = describeOutcome(response);
  showResult(outcome.text, outcome.error);
  if (response.status === 200 && response.payload.results.length > 0) {
    // Show the log of the run this action started (not, say, an every-pass workflow).
    const results = response.payload.results;
    const started = results.find((result) => result.triggered_by === body.name) || results[0];
    state.selectedRun = started.run_id;
  }
  await refresh();
}

function setup() {
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = byId("token");
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    input.value = "";
    updateWriteControls();
  });
  byId("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    updateWriteControls();
  });
  byId("trigger-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const args = parseArgs(byId("trigger-args").value);
    if (!args.ok) { showResult(args.message, true); return; }
    await act("/api/trigger", { name: byId("trigger-name").value, args: args.value });
  });
  byId("event-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const args = parseArgs(byId("event-args").value);
    if (!args.ok) { showResult(args.message, true); return; }
    await act("/api/events", { name: byId("event-name").value, args: args.value, run: true });
  });
  byId("resume").addEventListener("click", () => act("/api/resume", {}));
  updateWriteControls();
  refresh();
  setInterval(() => {
    if (byId("auto-refresh").checked) refresh();
  }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", setup);
