// The dashboard page: fetches the JSON API, renders the tables, runs the actions.
// Every string from the server is rendered as text (see the rule in dom.js).

import { renderFlow, renderTimeline } from "./charts.js";
import {
  byId,
  describeWait,
  el,
  fmtAgo,
  fmtJson,
  fmtTime,
  replaceRows,
  shortId,
  statusBadge,
} from "./dom.js";

const TOKEN_KEY = "ttflow-async-dashboard-token";
const REFRESH_MS = 4000;

const state = {
  workflows: [],
  suspended: [],
  history: [],
  events: [],
  traces: [],
  flow: { edges: [], states: [], invocations: [] },
  status: null,
  selectedRun: null,
  selectedLog: null,
};

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

function timeCell(iso) {
  return el("td", { title: iso || "" }, fmtTime(iso));
}

function runButton(runId) {
  return el("button", { type: "button", class: "link", title: runId, onclick: () => selectRun(runId) },
    shortId(runId));
}


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

function canWrite() {
  return Boolean(state.status && state.status.writes_enabled) && token() !== "";
}

function updateWriteControls() {
  const enabled = Boolean(state.status && state.status.writes_enabled);
  const haveToken = token() !== "";
  for (const button of document.querySelectorAll("button.write")) {
    button.disabled = !(enabled && haveToken);
  }
  // The per-run buttons exist only while writes are possible from this tab.
  renderSuspended();
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

function parentLabel(parentRunId) {
  if (!parentRunId) return null;
  return el("div", { class: "parent muted" }, "child of ", runButton(parentRunId));
}

function runActions(run) {
  if (!canWrite()) return [];
  const buttons = [
    el("button", { type: "button", class: "act cancel", title: "Cancel run " + run.run_id,
      onclick: () => cancelRun(run.run_id) }, "Cancel"),
  ];
  const callbackId = run.waiting_for.kind === "callback" ? run.waiting_for.callback_id : null;
  if (callbackId) {
    buttons.push(
      el("button", { type: "button", class: "act complete", title: "Complete callback " + callbackId,
        onclick: () => completeCallback(callbackId) }, "Complete"),
      el("button", { type: "button", class: "act fail", title: "Fail callback " + callbackId,
        onclick: () => failCallback(callbackId) }, "Fail"));
  }
  return buttons;
}

function renderSuspended() {
  const rows = state.suspended.map((run) =>
    el("tr", { "data-run-id": run.run_id },
      el("td", { class: "mono" }, run.workflow_name),
      el("td", {}, runButton(run.run_id), parentLabel(run.parent_run_id)),
      el("td", {}, statusBadge(run.waiting_for.kind), " ", describeWait(run.waiting_for)),
      el("td", { title: run.since }, fmtAgo(run.since)),
      el("td", { class: "actions" }, ...runActions(run))));
  replaceRows(byId("suspended"), rows, 5, "Nothing is suspended.");
}

function renderHistory() {
  const rows = state.history.slice().reverse().map((run) =>
    el("tr", {},
      timeCell(run.timestamp),
      el("td", { class: "mono" }, run.workflow_name),
      el("td", {}, runButton(run.run_id), parentLabel(run.parent_run_id)),
      el("td", {}, statusBadge(run.status),
        run.error_message
          ? el("div", { class: "reason", title: run.error_traceback || run.error_message }, run.error_message)
          : null)));
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
        statusBadge(execution.status), " ← ", execution.triggered_by,
        parentLabel(execution.parent_run_id));
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

// ---------------------------------------------------------------- data flow

async function selectRun(runId) {
  state.selectedRun = runId;
  try {
    await refreshLog();
  } catch (error) {
    byId("logs-run").textContent = runId + " (could not load: " + error.message + ")";
  }
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

// One refresh at a time: a refresh asked for while one runs is done right after it.
let refreshing = null;
let refreshAgain = false;

function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await refreshOnce();
    } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}

async function refreshOnce() {
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
    renderTimeline(byId("timeline"), state, selectRun);
    renderFlow(byId("flow"), state);
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
  let response;
  try {
    response = await postJson(path, body);
  } catch (error) {
    showResult("The request failed: " + error.message, true);
    return;
  }
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

async function cancelRun(runId) {
  const reason = window.prompt("Cancel run " + runId + "? Reason:", "cancelled from the dashboard");
  if (reason === null) return;
  showResult("…", false);
  let response;
  try {
    response = await postJson("/api/runs/" + encodeURIComponent(runId) + "/cancel",
      reason.trim() === "" ? {} : { reason: reason.trim() });
  } catch (error) {
    showResult("The request failed: " + error.message, true);
    return;
  }
  if (response.status === 200) {
    showResult("Cancelled " + runId + ".", false);
    state.selectedRun = runId;
  } else {
    showResult(describeOutcome(response).text, true);
  }
  await refresh();
}

async function completeCallback(callbackId) {
  const text = window.prompt("Complete callback " + callbackId + " with this JSON result:", "null");
  if (text === null) return;
  const result = parseArgs(text);
  if (!result.ok) { showResult(result.message.replace("args are", "result is"), true); return; }
  await act("/api/callbacks/" + encodeURIComponent(callbackId) + "/complete", { result: result.value });
}

async function failCallback(callbackId) {
  const error = window.prompt("Fail callback " + callbackId + " with this error:", "");
  if (error === null) return;
  if (error.trim() === "") { showResult("Give an error text to fail the callback.", true); return; }
  await act("/api/callbacks/" + encodeURIComponent(callbackId) + "/fail", { error: error.trim() });
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
