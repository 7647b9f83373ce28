/* The job page while its job moves. Every two seconds it reads the job from the JSON API
   (the session cookie signs the request), updates the status, progress, ETA and cancel
   button, refetches the timeline when the job's row changed and the newest metric steps
   when a step was added, and redraws the charts: every metric the job logged, the usual
   ones (data-metrics) first; no page reload. When the job ends it reloads
   once, so that the server renders the result and the buttons of a finished job. */
"use strict";

(() => {
  const root = document.getElementById("job");
  const api = `/api/v1/jobs/${root.dataset.jobId}`;
  const usual = JSON.parse(root.dataset.metrics);
  const terminal = JSON.parse(root.dataset.terminal);
  const endedBeforeLoad = terminal.includes(root.dataset.status);
  const note = document.getElementById("live-note");
  const POLL_MS = 2000;
  let seenUpdate = null, seenDone = null, seenAttempt = null;
  let series = {}, lastStep = 0;  // what the charts show: name -> [[step, value], ...]

  async function get(path) {
    const response = await fetch(api + (path || "?spec=false"), {headers: {Accept: "application/json"}, credentials: "same-origin"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  function duration(seconds) {
    const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h}h ${m}m` : m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  /* From this attempt's pace: time since it started over the steps it reported. */
  function eta(job) {
    const {done, total} = job.progress;
    if (job.status !== "running" || !done || done >= total || !job.started_at || !job.heartbeat_at) return "";
    const elapsed = (Date.parse(job.heartbeat_at) - Date.parse(job.started_at)) / 1000;
    return elapsed > 0 ? `· ETA ${duration(elapsed / done * (total - done))}` : "";
  }

  function showJob(job) {
    const badge = document.getElementById("status");
    badge.className = `badge ${job.status}`;
    badge.textContent = job.status;
    const bar = document.getElementById("progress-bar");
    bar.max = job.progress.total || 1;
    bar.value = job.progress.done;
    document.getElementById("progress").textContent = `${job.progress.done}/${job.progress.total}`;
    document.getElementById("eta").textContent = eta(job);
    document.getElementById("attempt").textContent = job.attempt;
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.hidden = !["queued", "running"].includes(job.status);
  }

  async function showTimeline() {
    const {events} = await get("/events");
    const items = events.map(event => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = event.at.slice(11, 23);
      const badge = document.createElement("span");
      badge.className = `badge ${event.status}`;
      badge.textContent = event.status;
      li.append(time, " ", badge, " ", event.message || "");
      return li;
    });
    document.getElementById("timeline").replaceChildren(...items);
  }

  /* Fetches only the steps after the last one but one: metrics can join a step after it was
     first seen (a periodic eval reports under the step it follows). */
  async function showCharts() {
    if (!usual.length) return;
    const after = lastStep > 0 ? lastStep - 1 : null;
    const fresh = (await get("/metrics" + (after === null ? "" : `?after=${after}`))).series;
    for (const [name, points] of Object.entries(fresh)) {
      series[name] = (series[name] || []).filter(([step]) => after !== null && step <= after).concat(points);
      lastStep = Math.max(lastStep, points[points.length - 1][0]);
    }
    const charts = document.getElementById("charts");
    const rest = Object.keys(series).filter(n => !usual.includes(n)).sort();
    for (const name of usual.concat(rest).filter(n => series[n] && series[n].length)) {
      RlvrCharts.draw(RlvrCharts.figure(charts, name), [{label: "", points: series[name]}]);
    }
    document.getElementById("no-metrics").hidden = charts.querySelector("figure") !== null;
  }

  async function poll() {
    try {
      const job = await get("");
      if (terminal.includes(job.status) && !endedBeforeLoad) {
        window.location.reload();
        return;
      }
      showJob(job);
      if (job.updated_at !== seenUpdate) {
        await showTimeline();
        seenUpdate = job.updated_at;
      }
      if (job.attempt !== seenAttempt || job.progress.done < seenDone) {
        series = {};  // a resumed attempt replaces the steps after its checkpoint
        lastStep = 0;
      }
      if (job.progress.done !== seenDone || job.attempt !== seenAttempt) {
        await showCharts();
        seenDone = job.progress.done;
        seenAttempt = job.attempt;
      }
      note.hidden = true;
      if (endedBeforeLoad) return;
    } catch (error) {
      note.textContent = `Live updates paused (${error.message}); trying again.`;
      note.hidden = false;
    }
    setTimeout(poll, POLL_MS);
  }

  poll();
})();
