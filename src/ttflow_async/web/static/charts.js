// The dashboard's pictures, drawn as inline SVG: the timeline of runs per workflow
// and the event → workflow flow graph. Labels are text nodes (see dom.js).

import { cssWord, describeWait, svg, truncate } from "./dom.js";

// Runs per workflow over time: finished runs are dots, suspended runs are rings.
//   data: {workflows, history, suspended} as served by the API
//   onSelect(runId): called when a run is clicked
export function renderTimeline(box, data, onSelect) {
  const names = [];
  const addName = (name) => { if (!names.includes(name)) names.push(name); };
  data.workflows.forEach((workflow) => addName(workflow.name));
  data.history.forEach((run) => addName(run.workflow_name));
  data.suspended.forEach((run) => addName(run.workflow_name));

  const points = [
    ...data.history.map((run) => ({
      name: run.workflow_name, runId: run.run_id, time: new Date(run.timestamp).getTime(),
      kind: run.status, finished: true, label: run.status + " " + run.timestamp,
    })),
    ...data.suspended.map((run) => ({
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
      mark.addEventListener("click", () => onSelect(point.runId));
      chart.append(mark);
    }
  });
  box.replaceChildren(chart);
}

// Triggers and events (left) → workflows (middle) → states they write (right); a workflow
// that started child runs (c.invoke) has an "invokes" arc, left of the middle column, to
// the child's workflow.
//   data: {workflows, flow} as served by the API
export function renderFlow(box, data) {
  const { edges, states } = data.flow;
  const invocations = data.flow.invocations || [];
  const sources = [];
  const sourceKind = new Map();
  for (const edge of edges) {
    if (!sourceKind.has(edge.source)) { sources.push(edge.source); sourceKind.set(edge.source, edge.source_kind); }
  }
  const workflows = [];
  const addWorkflow = (name) => { if (!workflows.includes(name)) workflows.push(name); };
  data.workflows.forEach((workflow) => addWorkflow(workflow.name));
  edges.forEach((edge) => addWorkflow(edge.workflow));
  states.forEach((item) => item.producers.forEach(addWorkflow));
  invocations.forEach((item) => { addWorkflow(item.parent); addWorkflow(item.child); });
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
  const arrow = svg("marker", { id: "invokes-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  arrow.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "invokes-arrow" }));
  chart.append(svg("defs", {}, arrow));
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
  // Parent and child sit in the same column: the arc leaves the parent's left side and
  // bulges left (further for rows further apart) into the child's left side.
  const invokeArc = (from, to) => {
    const x = from.x;
    const y1 = from.y + nodeHeight / 2 - 5;
    const y2 = to.y + nodeHeight / 2 + (from.y === to.y ? 5 : 0);
    const bulge = Math.min(90, 36 + Math.abs(y2 - y1) / 4);
    const d = `M ${x} ${y1} C ${x - bulge} ${y1}, ${x - bulge} ${y2}, ${x} ${y2}`;
    return { d, mx: x - bulge * 0.75 - 3, my: (y1 + y2) / 2 };
  };
  for (const item of invocations) {
    const path = invokeArc(workflowAt.get(item.parent), workflowAt.get(item.child));
    const line = svg("path", { d: path.d, class: "edge invokes", "marker-end": "url(#invokes-arrow)" });
    line.append(svg("title", {}, item.parent + " invokes " + item.child + " (" + item.observed + " traced child runs)"));
    chart.append(line);
    chart.append(svg("text", { x: path.mx, y: path.my + 4, class: "edge-label invokes", "text-anchor": "end" },
      "invokes ×" + item.observed));
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
