// DOM and formatting helpers of the dashboard page.
//
// Safety rule of the page: data from the server (workflow names, log lines, event
// args, state values, error messages) only ever reaches the page as text: through
// text nodes / textContent, or as attribute values with setAttribute. No API that
// parses markup is ever used, and no data-derived URL is ever created. el() and svg()
// below are the only way the page builds elements, and they follow that rule.

const SVG_NS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------- DOM helpers

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  appendChildren(node, children);
  return node;
}

export function svg(tag, props, ...children) {
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

export function replaceRows(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)));
    return;
  }
  for (const row of rows) tbody.append(row);
}

export function byId(id) {
  return document.getElementById(id);
}

// ------------------------------------------------------------------ formatting

export function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { hour12: false });
}

export function fmtAgo(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

export function fmtJson(value) {
  try {
    return JSON.stringify(value);
  } catch (error) {
    return String(value);
  }
}

export function shortId(runId) {
  return runId.length > 12 ? runId.slice(0, 12) + "…" : runId;
}

export function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

export function statusBadge(word) {
  return el("span", { class: "status " + cssWord(word) }, word);
}

// Status and wait kinds come from fixed vocabularies; anything else gets no class.
export function cssWord(word) {
  const known = [
    "succeeded", "failed", "paused", "blocked", "cancelled",
    "next_run", "event", "timer", "callback", "child", "batch",
  ];
  return known.includes(word) ? word : "";
}

export function describeWait(waitingFor) {
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
    case "callback":
      return "callback " + (waitingFor.name ? waitingFor.name + " " : "") +
        (waitingFor.callback_id || "?") +
        (waitingFor.due ? " (until " + fmtTime(waitingFor.due) + ")" : "");
    case "child":
      return "child run " + (waitingFor.run_id || "?");
    case "batch":
      return "several waits at once";
    default:
      return waitingFor.kind;
  }
}
