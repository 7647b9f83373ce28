/* Metric charts of the job and compare pages, drawn by uPlot (web/static/vendor/uplot, MIT,
   kept in the repo: the pages load nothing from elsewhere). One chart per metric, a line per
   run; the legend under each chart shows the values under the cursor, and the cursors of all
   charts move together, so one step can be read across every metric.

   Controls the page may hold: #smoothing, a range 0..0.99 that smooths every line with an
   exponential moving average (the raw points stay as a faint line behind), and
   #metric-filter, which shows only the charts whose metric name contains its text.

   Each chart's <figure> carries data-metric and data-points (raw points drawn), and its
   uPlot instance as `figure.uplot`, which the browser tests read. */
"use strict";

const RlvrCharts = (() => {
  const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457"];
  const HEIGHT = 220;
  const drawn = new Map();  // figure -> {plot, lines}: redrawn when the smoothing changes
  let smoothing = 0;

  /* TensorBoard's smoothing: an EMA debiased by 1 - weight^n, so the first points are not
     pulled toward zero the way a plain EMA started at 0 would pull them. */
  function ema(values, weight) {
    if (!weight) return values;
    let last = 0, n = 0;
    return values.map(v => {
      if (v === null || v === undefined || !Number.isFinite(v)) return null;
      last = last * weight + (1 - weight) * v;
      n += 1;
      return last / (1 - weight ** n);
    });
  }

  function format(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(4));
  }

  function figure(parent, name) {
    const existing = [...parent.querySelectorAll("figure.chart")].find(f => f.dataset.metric === name);
    if (existing) return existing;
    const fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.metric = name;
    fig.dataset.points = "0";
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    fig.appendChild(caption);
    parent.appendChild(fig);
    applyFilter(fig);
    return fig;
  }

  function width(fig) {
    return Math.max(fig.clientWidth - 16, 240);
  }

  /* uPlot wants one shared x array: the union of the lines' steps, nulls where a line has no
     point (uPlot.join), with gaps bridged so a sparse metric (a periodic eval) is one line. */
  function options(fig, lines) {
    const series = [{label: "step", value: (u, v) => v ?? "–"}];
    lines.forEach((line, i) => {
      const color = line.color || COLORS[i % COLORS.length];
      const label = line.label || fig.dataset.metric;
      series.push({label, stroke: color, width: 1.6, spanGaps: true, value: (u, v) => format(v),
                   points: {show: line.points.length <= 30}});
      if (smoothing) series.push({label: `${label} (raw)`, stroke: color + "44", width: 1, spanGaps: true,
                                  value: (u, v) => format(v), points: {show: false}});
    });
    return {
      width: width(fig),
      height: HEIGHT,
      series,
      scales: {x: {time: false}},
      axes: [
        {label: "step", size: 36, labelSize: 14, grid: {stroke: "#eceef1"}},
        {size: 64, values: (u, ticks) => ticks.map(format), grid: {stroke: "#eceef1"}},
      ],
      cursor: {sync: {key: "rlvr"}, drag: {x: true, y: false}},
      legend: {live: true},
    };
  }

  function data(lines) {
    const tables = lines.map(line => {
      const xs = line.points.map(p => p[0]), ys = line.points.map(p => p[1]);
      return smoothing ? [xs, ema(ys, smoothing), ys] : [xs, ys];
    });
    return uPlot.join(tables);
  }

  /* lines: [{label, points: [[step, value], ...], color?}]; a line without points is left out,
     so give each a color when the colors must match a legend. */
  function draw(fig, lines) {
    lines = lines.filter(line => line.points.length);
    fig.dataset.points = String(lines.reduce((n, line) => n + line.points.length, 0));
    const old = drawn.get(fig);
    const sameShape = old && old.lines.length === lines.length && old.smoothing === smoothing;
    if (sameShape) {
      old.plot.setData(data(lines));
      old.lines = lines;
      return;
    }
    if (old) old.plot.destroy();
    if (!lines.length) { drawn.delete(fig); fig.uplot = null; return; }
    const plot = new uPlot(options(fig, lines), data(lines), fig);
    // the legend shows each run's smoothed value; its raw twin stays off the legend
    if (smoothing) {
      plot.root.querySelectorAll(".u-legend .u-series").forEach((row, i) => {
        if (i > 0 && i % 2 === 0) row.style.display = "none";  // uPlot's CSS overrides `hidden`
      });
    }
    drawn.set(fig, {plot, lines, smoothing});
    fig.uplot = plot;
  }

  function redrawAll() {
    for (const [fig, {lines}] of [...drawn]) draw(fig, lines);
  }

  function applyFilter(fig) {
    const filter = document.getElementById("metric-filter");
    const text = filter ? filter.value.trim().toLowerCase() : "";
    fig.hidden = Boolean(text) && !fig.dataset.metric.toLowerCase().includes(text);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const slider = document.getElementById("smoothing");
    if (slider) {
      const shown = document.getElementById("smoothing-value");
      slider.addEventListener("input", () => {
        smoothing = Number(slider.value);
        if (shown) shown.textContent = smoothing.toFixed(2);
        redrawAll();
      });
    }
    const filter = document.getElementById("metric-filter");
    if (filter) filter.addEventListener("input", () => document.querySelectorAll("figure.chart").forEach(applyFilter));
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => drawn.forEach(({plot}, fig) => plot.setSize({width: width(fig), height: HEIGHT})), 100);
    });
  });

  return {figure, draw, ema, COLORS};
})();
