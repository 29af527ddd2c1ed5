// The page of `iotbridge-db serve`: fills the tables from /api/, draws one
// chart per topic (SVG from /api/chart.svg), and polls /api/readings every
// second so that new readings appear without a reload.
"use strict";

const POLL_MS = 1000;
// Topics, stats and charts cost a few queries per topic: redrawn when new
// readings came, but at most every TOPICS_MIN_MS, and every CHART_REFRESH_MS
// anyway (the time range moves on).
const TOPICS_MIN_MS = 5000;
const CHART_REFRESH_MS = 30000;
let newestId = null;
let lastCharts = 0;
let pending = false;

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function cell(row, value, cls) {
  const td = row.insertCell();
  td.textContent = text(value);
  if (cls) td.className = cls;
  return td;
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  return res.json();
}

async function loadStats() {
  const s = await getJson("/api/stats");
  document.getElementById("stats").textContent =
    `${s.ns} in ${s.store} · ${s.count} readings · ${(s.size / 1024).toFixed(1)} KiB · ` +
    `${s.nindexes} index${s.nindexes === 1 ? "" : "es"}${s.capped ? " · capped" : ""}`;
}

async function loadTopics() {
  const topics = await getJson("/api/topics");
  const body = document.querySelector("#topics tbody");
  body.replaceChildren();
  for (const t of topics) {
    const row = body.insertRow();
    row.dataset.topic = t.topic;
    cell(row, t.topic);
    cell(row, t.last_value, "num value");
    cell(row, t.last_time ? t.last_time.replace("T", " ").replace("Z", "") : "", "time");
  }
  return topics;
}

async function loadCharts(topics) {
  const range = document.getElementById("range").value;
  const charts = document.getElementById("charts");
  const wanted = new Set(topics.map((t) => t.topic));
  for (const old of Array.from(charts.children)) if (!wanted.has(old.dataset.topic)) old.remove();
  for (const t of topics) {
    let box = Array.from(charts.children).find((c) => c.dataset.topic === t.topic);
    if (!box) {
      box = document.createElement("div");
      box.className = "chart";
      box.dataset.topic = t.topic;
      const title = document.createElement("h3");
      title.textContent = t.topic;
      box.appendChild(title);
      box.appendChild(document.createElement("div"));
      charts.appendChild(box);
    }
    const url = `/api/chart.svg?topic=${encodeURIComponent(t.topic)}&since=${range}&width=640`;
    const res = await fetch(url, { cache: "no-store" });
    box.lastChild.innerHTML = await res.text();
    box.dataset.range = range;
  }
  lastCharts = Date.now();
}

async function loadReadings() {
  const readings = await getJson("/api/readings?limit=20");
  const id = readings.length ? readings[0].id : null;
  const changed = id !== newestId;
  if (changed) {
    const body = document.querySelector("#readings tbody");
    body.replaceChildren();
    for (const r of readings) {
      const row = body.insertRow();
      row.dataset.id = r.id;
      if (newestId !== null && r.time_ms > (body.dataset.newest || 0)) row.className = "fresh";
      cell(row, r.time ? r.time.replace("T", " ").replace("Z", "") : "", "time");
      cell(row, r.topic);
      cell(row, r.value, "num value");
    }
    body.dataset.newest = readings.length ? readings[0].time_ms : 0;
    newestId = id;
  }
  return changed;
}

async function refreshAll() {
  await Promise.all([loadStats(), loadTopics().then(loadCharts)]);
}

async function poll() {
  const live = document.getElementById("live");
  try {
    pending = (await loadReadings()) || pending;
    const since = Date.now() - lastCharts;
    if ((pending && since >= TOPICS_MIN_MS) || since >= CHART_REFRESH_MS) {
      await refreshAll();
      pending = false;
    }
    live.className = "live";
    live.textContent = "live";
  } catch (e) {
    live.className = "live stale";
    live.textContent = "not updating: " + e.message;
  }
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  setTimeout(poll, POLL_MS);
}

document.getElementById("range").addEventListener("change", () => loadTopics().then(loadCharts));
poll();
