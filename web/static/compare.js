/* The compare page: reads the chosen jobs' metric series, every metric any of them logged,
   from the JSON API's /compare (the session cookie signs the request) and draws one chart per
   metric with a line per job, labelled and coloured as in the legend; the usual metrics
   (data-metrics) come first. */
"use strict";

(async () => {
  const root = document.getElementById("compare");
  if (!root) return;
  const jobs = JSON.parse(root.dataset.jobs);
  const labels = JSON.parse(root.dataset.labels);
  const usual = JSON.parse(root.dataset.metrics);
  const note = document.getElementById("compare-note");
  const response = await fetch(`/api/v1/compare?jobs=${jobs.join(",")}`, {headers: {Accept: "application/json"}});
  if (!response.ok) {
    note.textContent = `Could not read the metrics (HTTP ${response.status}).`;
    return;
  }
  const replies = (await response.json()).jobs;
  const swatch = (item, i) => item.style.setProperty("--swatch", RlvrCharts.COLORS[i % RlvrCharts.COLORS.length]);
  document.querySelectorAll("#legend li").forEach(swatch);
  document.querySelectorAll(".swatch").forEach(item => swatch(item, Number(item.dataset.index)));
  const logged = new Set(replies.flatMap(reply => Object.keys(reply.series)));
  const names = usual.filter(n => logged.has(n)).concat([...logged].filter(n => !usual.includes(n)).sort());
  const charts = document.getElementById("charts");
  for (const name of names) {
    const lines = replies.map((reply, i) => ({
      label: labels[i], color: RlvrCharts.COLORS[i % RlvrCharts.COLORS.length], points: reply.series[name] || [],
    }));
    RlvrCharts.draw(RlvrCharts.figure(charts, name), lines);
  }
  note.textContent = charts.querySelector("figure") ? "" : "These jobs have no metrics yet.";
})();
