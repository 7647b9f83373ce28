/* The compare page: reads the chosen jobs' metric series from the JSON API's /compare (the
   session cookie signs the request) and draws one chart per metric with a line per job,
   coloured as in the legend. */
"use strict";

(async () => {
  const root = document.getElementById("compare");
  if (!root) return;
  const jobs = JSON.parse(root.dataset.jobs);
  const names = JSON.parse(root.dataset.metrics);
  const note = document.getElementById("compare-note");
  const query = `jobs=${jobs.join(",")}&names=${encodeURIComponent(names.join(","))}`;
  const response = await fetch(`/api/v1/compare?${query}`, {headers: {Accept: "application/json"}});
  if (!response.ok) {
    note.textContent = `Could not read the metrics (HTTP ${response.status}).`;
    return;
  }
  const replies = (await response.json()).jobs;
  document.querySelectorAll("#legend li").forEach((item, i) => {
    item.style.setProperty("--swatch", RlvrCharts.COLORS[i % RlvrCharts.COLORS.length]);
  });
  const charts = document.getElementById("charts");
  for (const name of names) {
    const lines = replies.map(reply => ({label: `#${reply.id}`, points: reply.series[name] || []}));
    if (lines.some(line => line.points.length)) RlvrCharts.draw(RlvrCharts.figure(charts, name), lines);
  }
  note.textContent = charts.querySelector("figure") ? "" : "These jobs have no metrics yet.";
})();
