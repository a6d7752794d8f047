// The status page: draws what the sensor says (boxes in 0-255 units, facing, IDs, counts)
// from /api/state and the live stream /api/events. It has no pixels to show.
"use strict";

const UNITS = 256;
const COLOURS = { facing: "#0a8f4e", away: "#d97706", outline: "#1d2330", grid: "#d6d9df",
                  line: "#2563eb", fill: "rgba(37, 99, 235, 0.15)", text: "#1d2330" };
const page = { view: null, timeline: [], windowSeconds: 300, clockOffset: 0, control: false };

function $(id) { return document.getElementById(id); }

function serverNow() { return Date.now() / 1000 + page.clockOffset; }

function apply(state) {
  page.clockOffset = state.now - Date.now() / 1000;
  page.view = state.view;
  if (state.timeline) {
    page.timeline = state.timeline;
    page.windowSeconds = state.timeline_seconds;
  }
  if (state.interface) fillTable($("interface"), Object.entries(state.interface));
  setControl(state.control);
  render();
  renderVoice(state.voice);
}

// The voice sensor's events: command, confidence, time. Never audio: there is none.
function renderVoice(voice) {
  $("voice").hidden = !voice;
  if (!voice) return;
  $("voice-published").textContent = voice.published;
  $("voice-gated").textContent = voice.gated;
  const body = $("voice-events").tBodies[0];
  body.replaceChildren(...voice.events.map((e) => {
    const tr = document.createElement("tr");
    const when = new Date(e.time * 1000).toLocaleTimeString();
    for (const text of [e.command, String(e.confidence), when]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function render() {
  const view = page.view;
  if (!view) return;
  document.body.dataset.sequence = view.sequence;
  const facing = view.faces.filter((f) => f.facing).length;
  $("count").textContent = view.count;
  $("facing-count").textContent = facing;
  $("fps").textContent = Number(view.status.fps || 0).toFixed(1);
  const state = $("sensor-state");
  state.textContent = view.status.state;
  state.className = "badge " + (view.status.state === "fault" ? "fault"
                                : view.status.state === "running" ? "on" : "");
  drawFrame(view.faces);
  fillFaces(view.faces);
  const rows = Object.entries(view.status).map(([k, v]) => [k, typeof v === "number" &&
    !Number.isInteger(v) ? v.toFixed(2) : String(v)]);
  rows.push(["audit", typeof view.audit === "string" ? view.audit : JSON.stringify(view.audit)]);
  fillTable($("status"), rows);
  drawTimeline();
}

function fillTable(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map(([key, value]) => {
    const tr = document.createElement("tr");
    for (const text of [key.replaceAll("_", " "), String(value)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function fillFaces(faces) {
  const body = $("faces").tBodies[0];
  body.replaceChildren(...faces.map((f, i) => {
    const tr = document.createElement("tr");
    const cells = [i + 1, f.box.join(", "), f.confidence, f.facing ? "yes" : "no",
                   f.id >= 0 ? `${f.id} (${f.id_confidence})` : "—"];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = String(text);
      tr.appendChild(td);
    }
    return tr;
  }));
}

function drawFrame(faces) {
  const canvas = $("frame");
  const ctx = canvas.getContext("2d");
  const s = canvas.width / UNITS;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = COLOURS.grid;
  ctx.lineWidth = 1;
  for (let u = 64; u < UNITS; u += 64) {
    ctx.beginPath();
    ctx.moveTo(u * s, 0); ctx.lineTo(u * s, canvas.height);
    ctx.moveTo(0, u * s); ctx.lineTo(canvas.width, u * s);
    ctx.stroke();
  }
  ctx.strokeStyle = COLOURS.outline;
  ctx.lineWidth = 4;
  ctx.strokeRect(2, 2, canvas.width - 4, canvas.height - 4);
  ctx.font = "bold 22px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  for (const f of faces) {
    const [l, t, r, b] = f.box;
    const colour = f.facing ? COLOURS.facing : COLOURS.away;
    ctx.fillStyle = colour + "33";
    ctx.fillRect(l * s, t * s, (r - l) * s, (b - t) * s);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 5;
    ctx.strokeRect(l * s, t * s, (r - l) * s, (b - t) * s);
    const label = (f.id >= 0 ? `ID ${f.id}` : "face") + ` ${f.confidence}%`;
    ctx.fillStyle = colour;
    ctx.fillText(label, l * s + 4, Math.max(24, t * s - 4));
  }
  canvas.dataset.boxes = JSON.stringify(faces.map((f) => f.box));
}

// The count over [start, now] as the corners of a step line, closed along the base:
// the count in force at the window's start (the last change before it, which the
// server keeps for this) is drawn from the start as a flat line, then a vertical step at
// every change inside the window. Nothing is known before the first change: 0.
function timelineSteps(points, start, now) {
  let count = 0;
  for (const [t, c] of points) if (t <= start) count = c;
  const path = [[start, 0], [start, count]];
  for (const [t, c] of points) {
    if (t <= start) continue;
    path.push([t, count], [t, c]);
    count = c;
  }
  path.push([now, count], [now, 0]);
  return path;
}

function drawTimeline() {
  const canvas = $("timeline");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  const now = serverNow(), start = now - page.windowSeconds;
  const points = page.timeline;
  const top = Math.max(4, ...points.map((p) => p[1]));
  const x = (t) => pad + (Math.max(t, start) - start) / page.windowSeconds * (w - 2 * pad);
  const y = (c) => h - pad - c / top * (h - 2 * pad);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = COLOURS.grid;
  ctx.fillStyle = "#6b7280";
  ctx.font = "12px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let m = 0; m <= page.windowSeconds / 60; m++) {
    const px = x(now - m * 60);
    ctx.beginPath(); ctx.moveTo(px, pad / 2); ctx.lineTo(px, h - pad); ctx.stroke();
    ctx.fillText(m === 0 ? "now" : `-${m} min`, px - 14, h - 6);
  }
  for (let c = 0; c <= top; c++) ctx.fillText(String(c), 4, y(c) + 4);
  const path = timelineSteps(points, start, now);
  ctx.beginPath();
  path.forEach(([t, c], i) => (i ? ctx.lineTo(x(t), y(c)) : ctx.moveTo(x(t), y(c))));
  ctx.closePath();
  ctx.fillStyle = COLOURS.fill;
  ctx.fill();
  ctx.strokeStyle = COLOURS.line;
  ctx.lineWidth = 2;
  ctx.stroke();
  const last = path[path.length - 2][1];
  $("window").textContent = String(Math.round(page.windowSeconds / 60));
  canvas.dataset.points = String(points.length);
  canvas.dataset.last = String(last);
  canvas.dataset.path = JSON.stringify(path.map(([t, c]) => [Number((t - start).toFixed(3)), c]));
}

function setControl(enabled) {
  if (enabled === page.control) return;
  page.control = enabled;
  $("control").hidden = !enabled;
}

function token() {
  return $("token").value.trim();
}

async function command(body) {
  const out = $("control-result");
  out.className = "";
  out.textContent = "sending…";
  try {
    const response = await fetch("/api/command", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
      body: JSON.stringify(body),
    });
    const reply = await response.json();
    if (!response.ok) throw new Error(reply.error || response.statusText);
    sessionStorage.setItem("mlsensors-token", token());
    out.textContent = `sent: register 0x0${reply.register.toString(16)} = ${reply.value}`;
  } catch (e) {
    out.className = "error";
    out.textContent = "refused: " + e.message;
  }
}

function setupControl() {
  const select = $("calibrate-id");
  for (let n = 0; n < 8; n++) select.add(new Option(String(n), String(n)));
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("mlsensors-token", hash.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  $("token").value = sessionStorage.getItem("mlsensors-token") || "";
  $("calibrate").addEventListener("click",
    () => command({ action: "calibrate", id: Number(select.value) }));
  $("erase").addEventListener("click", () => command({ action: "erase" }));
}

function connect() {
  const link = $("link");
  const events = new EventSource("/api/events");
  events.onopen = () => { link.textContent = "live"; link.className = "badge on"; };
  events.onmessage = (e) => apply(JSON.parse(e.data));
  events.onerror = () => { link.textContent = "reconnecting…"; link.className = "badge off"; };
}

setupControl();
fetch("/api/state").then((r) => r.json()).then(apply).catch(() => {});
connect();
setInterval(drawTimeline, 1000);
