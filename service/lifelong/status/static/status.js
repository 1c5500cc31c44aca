// The status page: polls api/v1/status every 1-2 s and draws the history it returns with uPlot.
// Read-only; everything it shows is in that JSON document.
"use strict";

const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989"];
const EVENTS = {
  drift: ["drift detected", "#bc4c00"],
  update_refused: ["update refused", "#cf222e"],
  shrink_step: ["step size halved", "#8250df"],
  restart: ["network restarted", "#1f2328"],
};
const HEIGHT = 170;

const view = { seq: 0, time: [], series: {}, events: [], plots: [], built: false, doc: null };

const $ = (id) => document.getElementById(id);
const integer = (n) => Math.round(n).toLocaleString("en-US");
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
const eventStyle = (kind) => EVENTS[kind] || [kind.replaceAll("_", " "), "#59636e"];

function duration(seconds) {
  if (seconds >= 3600) return `${+(seconds / 3600).toFixed(1)} h`;
  if (seconds >= 60) return `${+(seconds / 60).toFixed(1)} min`;
  return `${+seconds.toFixed(2)} s`;
}

async function poll() {
  let delay = 1000;
  try {
    const response = await fetch(`api/v1/status?since=${view.seq}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const doc = await response.json();
    delay = Math.min(2, Math.max(1, doc.interval_seconds)) * 1000;
    apply(doc);
  } catch (error) {
    showState("offline", `no answer from the service (${error.message}); retrying`);
  }
  setTimeout(poll, delay);
}

function apply(doc) {
  const history = doc.history;
  if (history.seq < view.seq) {  // the service restarted: start over
    Object.assign(view, { seq: 0, time: [], series: {}, events: [] });
    return;
  }
  view.doc = doc;
  const before = view.time.length;
  view.time.push(...history.time);
  for (const [key, values] of Object.entries(history.series)) {
    if (!(key in view.series)) view.series[key] = new Array(before).fill(null);
    view.series[key].push(...values);
  }
  for (const values of Object.values(view.series)) {
    while (values.length < view.time.length) values.push(null);
  }
  view.events.push(...history.events);
  view.seq = history.seq;
  trim(doc.horizon_seconds);
  if (!view.built) build(doc);
  showModel(doc);
  draw();
}

function trim(horizon) {
  const newest = view.time[view.time.length - 1];
  let drop = 0;
  while (drop < view.time.length && view.time[drop] < newest - horizon) drop++;
  if (drop) {
    view.time.splice(0, drop);
    for (const values of Object.values(view.series)) values.splice(0, drop);
  }
  const oldest = view.time[0];
  view.events = view.events.filter((e) => e.time >= oldest);
}

// Dashed vertical lines where events happened, on every chart.
const markers = {
  hooks: {
    draw: [(u) => {
      const { ctx, bbox } = u;
      const pixel = devicePixelRatio;
      ctx.save();
      ctx.lineWidth = 2 * pixel;
      ctx.setLineDash([5 * pixel, 4 * pixel]);
      for (const event of view.events) {
        if (event.time < u.scales.x.min || event.time > u.scales.x.max) continue;
        const x = Math.round(u.valToPos(event.time, "x", true));
        ctx.strokeStyle = eventStyle(event.kind)[1];
        ctx.beginPath();
        ctx.moveTo(x, bbox.top);
        ctx.lineTo(x, bbox.top + bbox.height);
        ctx.stroke();
      }
      ctx.restore();
    }],
  },
};

// uPlot's own range, except for a flat line: from 0 (a layer with no dead unit shows 0 of 1).
function yRange(u, min, max) {
  if (min === max) return [Math.min(0, min), Math.max(1, max * 1.1)];
  return uPlot.rangeNum(min, max, 0.1, true);
}

function build(doc) {
  const container = $("charts");
  for (const chart of doc.charts) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.title = chart.title;
    box.innerHTML = "<h3></h3><div class=unit></div>";
    box.querySelector("h3").textContent = chart.title;
    box.querySelector(".unit").textContent = chart.unit;
    container.append(box);
    const options = {
      width: Math.max(200, box.clientWidth - 12),
      height: HEIGHT,
      plugins: [markers],
      scales: { x: { time: true }, y: { range: yRange } },
      axes: [{}, { size: 56 }],
      series: [
        { label: "time", value: (u, t) => (t == null ? "--" : clock(t)) },
        ...chart.series.map(([, label], i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
        })),
      ],
    };
    const plot = new uPlot(options, [[], ...chart.series.map(() => [])], box);
    view.plots.push({ chart, box, plot });
  }
  new ResizeObserver(() => {
    for (const { box, plot } of view.plots) {
      plot.setSize({ width: Math.max(200, box.clientWidth - 12), height: HEIGHT });
    }
  }).observe(container);
  const kinds = Object.values(doc.markers);
  $("legend").innerHTML = "";
  if (kinds.length) {
    $("legend").append("Markers:");
    for (const kind of kinds) {
      const [label, color] = eventStyle(kind);
      const line = document.createElement("span");
      line.className = "marker";
      line.style.borderColor = color;
      $("legend").append(line, label);
    }
  }
  view.built = true;
}

function draw() {
  const shown = view.events.length;
  for (const { chart, box, plot } of view.plots) {
    const columns = chart.series.map(([key]) => view.series[key] || view.time.map(() => null));
    plot.setData([view.time, ...columns]);
    if (plot.cursor.left == null || plot.cursor.left < 0) plot.setLegend({ idx: view.time.length - 1 });
    box.dataset.points = columns.reduce(
      (n, values) => Math.max(n, values.filter((v) => v != null).length), 0);
    box.dataset.markers = shown;
  }
  const n = view.time.length;
  const horizon = view.doc.horizon_seconds;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  $("range").textContent = n
    ? `Showing ${clock(view.time[0])}–${clock(view.time[n - 1])} (${zone}): up to the last ` +
      `${duration(horizon)}, one reading every ${duration(view.doc.interval_seconds)}; ` +
      "units under each chart's title."
    : "No readings yet.";
  const list = $("events");
  list.innerHTML = "";
  for (const event of [...view.events].reverse()) {
    const item = document.createElement("li");
    item.className = event.kind;
    const at = view.time.indexOf(event.time);
    const learned = view.series.samples_learned?.[at];
    item.textContent = `${clock(event.time)} ${eventStyle(event.kind)[0]}` +
      (learned != null ? ` (${integer(learned)} samples learned)` : "");
    list.append(item);
  }
  if (!shown) list.innerHTML = "<li class=none>none in the range shown</li>";
}

function showState(state, reason) {
  const badge = $("state");
  badge.textContent = state;
  badge.className = `state ${state}`;
  badge.title = reason || "";
}

// "none", or "reason: n, ..." for the non-zero counts of a mapping.
function counts(mapping) {
  const seen = Object.entries(mapping).filter(([, n]) => n > 0);
  return seen.length ? seen.map(([k, n]) => `${k.replaceAll("_", " ")}: ${integer(n)}`).join(", ") : "none";
}

function showModel(doc) {
  const m = doc.model;
  $("role").textContent = m.role === "replica" ? "prediction replica" : "learner";
  const reasons = {
    learning: "learned samples during the last reading",
    waiting: m.role === "replica" ? "no snapshot read yet" : "no sample learned during the last reading",
    serving: "serving predictions from its snapshot",
  };
  showState(m.state, reasons[m.state]);
  const names = (list) => (list.length > 12 ? `${list.slice(0, 12).join(", ")}, …` : list.join(", "));
  const facts = [
    ["Task", m.task],
    ["Features", m.features.length ? `${m.features.length}: ${names(m.features)}` : "none yet"],
    ["Classes", m.task === "regression" ? "none (regression)" : m.classes.length ? names(m.classes.map(String)) : "none yet"],
    ["Served snapshot", `version ${integer(m.version)} (samples it learned)`],
  ];
  if (m.role === "learner") {
    const lag = Object.entries(m.kafka_lag);
    facts.push(
      ["Samples learned", integer(m.samples_learned)],
      ["Learning", `${integer(m.samples_per_second)} samples/s`],
      ["Kafka lag", lag.length ? lag.map(([p, n]) => `partition ${p}: ${integer(n)}`).join(", ") : "not reading Kafka"],
      ["Updates refused", counts(doc.stats.updates_refused)],
      ["Recoveries", counts(doc.stats.recoveries)],
    );
    $("config").textContent = JSON.stringify(m.config, null, 2);
    $("configuration").hidden = false;
  } else {
    facts.push(["Snapshots from", m.snapshot_source]);
  }
  const dl = $("facts");
  dl.innerHTML = "";
  for (const [label, value] of facts) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value;
    div.append(dt, dd);
    dl.append(div);
  }
}

poll();
