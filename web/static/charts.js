/* Line charts in SVG from metric series, as the API sends them ([[step, value], ...]).
   No library and no network: `RlvrCharts.figure(parent, name)` makes (or finds) a chart,
   `RlvrCharts.draw(figure, lines)` redraws it with lines = [{label, points}], one colour
   each. A drawn figure says in data-points how many points it plots. Hovering shows the
   values at the nearest step. */
"use strict";

window.RlvrCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  const W = 380, H = 150, M = {left: 48, right: 10, top: 8, bottom: 20};
  const MARKERS_UP_TO = 60;  // points per line drawn as dots too; past that the line alone reads better

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  function format(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  /* An axis label: as many decimals as the axis' span needs to tell its labels apart. */
  function tick(v, span) {
    const decimals = Math.min(Math.max(1 - Math.floor(Math.log10(span)), 0), 8);
    return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3 && span < 1e-3) ? v.toExponential(2) : v.toFixed(decimals);
  }

  function range(values) {
    let low = Infinity, high = -Infinity;
    for (const v of values) { low = Math.min(low, v); high = Math.max(high, v); }
    return low === high ? [low - (Math.abs(low) * 0.1 || 1), high + (Math.abs(high) * 0.1 || 1)] : [low, high];
  }

  function figure(parent, name) {
    const existing = [...parent.querySelectorAll("figure.chart")].find(f => f.dataset.metric === name);
    if (existing) return existing;
    const fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.metric = name;
    fig.dataset.points = "0";
    const caption = document.createElement("figcaption");
    caption.append(name + " ");
    const readout = document.createElement("span");
    readout.className = "readout muted";
    caption.appendChild(readout);
    fig.appendChild(caption);
    const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                           "aria-label": `${name} by step`}, fig);
    svg.classList.add("plot");
    parent.appendChild(fig);
    return fig;
  }

  function draw(fig, lines) {
    const svg = fig.querySelector("svg");
    svg.replaceChildren();
    const all = lines.flatMap(line => line.points);
    fig.dataset.points = String(all.length);
    if (!all.length) return;
    const [x0, x1] = range(all.map(p => p[0]));
    const [y0, y1] = range(all.map(p => p[1]));
    const x = s => M.left + (W - M.left - M.right) * (s - x0) / (x1 - x0);
    const y = v => H - M.bottom - (H - M.top - M.bottom) * (v - y0) / (y1 - y0);
    el("rect", {x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom, class: "frame"}, svg);
    for (const v of [y0, (y0 + y1) / 2, y1]) {
      el("line", {x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid"}, svg);
      el("text", {x: M.left - 4, y: y(v) + 4, "text-anchor": "end", class: "tick"}, svg, tick(v, y1 - y0));
    }
    const steps = [...new Set(all.map(p => p[0]))].sort((a, b) => a - b);
    for (const s of [steps[0], steps[steps.length - 1]]) {
      el("text", {x: x(s), y: H - 5, "text-anchor": s === steps[0] ? "start" : "end", class: "tick"}, svg, `step ${s}`);
    }
    lines.forEach((line, i) => {
      const color = COLORS[i % COLORS.length];
      const coords = line.points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`);
      el("polyline", {points: coords.join(" "), class: "line", stroke: color}, svg);
      if (line.points.length <= MARKERS_UP_TO) {
        for (const [s, v] of line.points) el("circle", {cx: x(s).toFixed(1), cy: y(v).toFixed(1), r: 2.2, fill: color}, svg);
      }
    });
    const cursor = el("line", {y1: M.top, y2: H - M.bottom, class: "cursor", visibility: "hidden"}, svg);
    const readout = fig.querySelector(".readout");
    const summary = lines.length === 1
      ? `last ${format(lines[0].points[lines[0].points.length - 1][1])} · steps ${steps[0]}–${steps[steps.length - 1]}`
      : `steps ${steps[0]}–${steps[steps.length - 1]}`;
    readout.textContent = summary;
    svg.onmousemove = event => {
      const box = svg.getBoundingClientRect();
      const at = x0 + (x1 - x0) * ((event.clientX - box.left) * W / box.width - M.left) / (W - M.left - M.right);
      const step = steps.reduce((best, s) => Math.abs(s - at) < Math.abs(best - at) ? s : best, steps[0]);
      cursor.setAttribute("x1", x(step));
      cursor.setAttribute("x2", x(step));
      cursor.setAttribute("visibility", "visible");
      const values = lines.map(line => [line.label, line.points.find(p => p[0] === step)])
        .filter(([, point]) => point).map(([label, point]) => (label ? `${label} ` : "") + format(point[1]));
      readout.textContent = `step ${step}: ${values.join(" · ")}`;
    };
    svg.onmouseleave = () => { cursor.setAttribute("visibility", "hidden"); readout.textContent = summary; };
  }

  return {figure, draw, COLORS};
})();
