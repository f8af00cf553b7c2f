// The page of python -m mclcr_keras.serve: drop a file, POST it to /v1/score, show the verdict,
// the per-frame timeline (SVG drawn from the JSON report) and the explanation figures if any.
// Plain JavaScript, no build step, no third-party code; text is set with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = { token: sessionStorage.getItem("mclcr-token") || "", model: null };

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (e) {
    return response.statusText || "HTTP " + response.status;
  }
}

async function loadModel() {
  const response = await fetch("/v1/model", { headers: headers() });
  if (response.status === 401) {
    $("token-form").hidden = false;
    $("model").textContent = "This server needs a token.";
    return;
  }
  if (!response.ok) {
    $("model").textContent = "The model's description failed: " + (await errorText(response));
    return;
  }
  const m = await response.json();
  state.model = m;
  $("token-form").hidden = true;
  const variant = m.variant ? m.variant + ", " : "";
  $("model").textContent = `Model ${m.model} (${m.format}, ${variant}${m.image_size} px); ` +
    `FAKE when a file's probability is > ${m.threshold.toFixed(4)} ` +
    `(${m.threshold_source.from}); up to ${Math.round(m.limits.max_upload_bytes / 2 ** 20)} MB.`;
  $("explain-choice").hidden = !m.explain;
}

function element(tag, attributes, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

// The series to plot: one per face track (frame_scores carry a track_id when predict tracks
// several faces), else one series of the file's frame scores.
function series(entry) {
  const byTrack = new Map();
  for (const score of entry.frame_scores || []) {
    const key = score.track_id ?? "face";
    if (!byTrack.has(key)) byTrack.set(key, []);
    byTrack.get(key).push(score);
  }
  const found = [...byTrack].map(([name, points]) => ({ name: String(name), points }));
  return found.length ? found : [{ name: "face", points: [] }];
}

function drawTimeline(entry, threshold) {
  const svg = $("timeline");
  svg.replaceChildren();
  const W = 640, H = 200, left = 36, right = 10, top = 10, bottom = 24;
  const all = series(entry);
  const indices = all.flatMap((s) => s.points.map((p) => p.frame_index));
  const last = Math.max(0, ...indices);
  const x = (i) => left + (W - left - right) * (last > 0 ? i / last : 0.5);
  const y = (p) => top + (H - top - bottom) * (1 - p);
  for (const p of [0, 0.5, 1]) {
    element("line", { x1: left, x2: W - right, y1: y(p), y2: y(p), stroke: "#dadce0" }, svg);
    element("text", { x: 4, y: y(p) + 4 }, svg).textContent = p.toFixed(1);
  }
  if (last > 0) {
    element("text", { x: left, y: H - 6 }, svg).textContent = "frame 0";
    element("text", { x: W - right - 60, y: H - 6 }, svg).textContent = "frame " + last;
  } else {
    element("text", { x: x(0) - 20, y: H - 6 }, svg).textContent = "frame 0";
  }
  element("line", { x1: left, x2: W - right, y1: y(threshold), y2: y(threshold),
                    stroke: "#5f6368", "stroke-dasharray": "5 4", id: "threshold-line" }, svg);
  const colours = ["#1a73e8", "#e37400", "#9334e6", "#12b5cb"];
  all.forEach((s, k) => {
    const points = s.points.map((p) => `${x(p.frame_index)},${y(p.probability)}`).join(" ");
    element("polyline", { points, fill: "none", stroke: colours[k % colours.length],
                          "stroke-width": 1.5 }, svg);
    for (const p of s.points) {
      const dot = element("circle", { cx: x(p.frame_index), cy: y(p.probability), r: 3.5,
        fill: p.probability > threshold ? "#b3261e" : "#1b6e3a", class: "frame" }, svg);
      element("title", {}, dot).textContent =
        `frame ${p.frame_index}: ${p.probability.toFixed(4)}` +
        (all.length > 1 ? ` (track ${s.name})` : "");
    }
  });
}

function showFacts(report, entry) {
  const facts = $("facts");
  facts.replaceChildren();
  const rows = [
    ["fake probability", entry.probability == null ? "-" : entry.probability.toFixed(4)],
    ["threshold", `${report.threshold.toFixed(4)} (${report.threshold_source.from})`],
    ["kind", entry.kind || "-"],
    ["frames sampled", String(entry.frames_sampled)],
    ["faces found", String(entry.faces_found)],
    ["face crops scored", String(entry.frames_scored)],
  ];
  if (Array.isArray(entry.tracks)) {
    const top = entry.top_track == null ? "" : `; the file is called by track ${entry.top_track}`;
    rows.push(["face tracks", `${entry.tracks.length} kept of ${entry.tracks_found ?? "?"}${top}`]);
  }
  if (entry.error) rows.push(["reason", entry.error]);
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    facts.append(dt, dd);
  }
}

function showExplanations(report) {
  const box = $("explanations");
  box.replaceChildren();
  for (const figure of report.explanations || []) {
    if (!String(figure.png).startsWith("data:image/png;base64,")) continue;
    const img = document.createElement("img");
    img.src = figure.png;
    img.alt = "explanation: " + figure.name;
    box.appendChild(img);
  }
}

function showReport(report) {
  const entry = report.files[0];
  const verdict = $("verdict");
  verdict.textContent = entry.label || "NOT SCORED";
  verdict.className = "verdict " + (entry.label || "none");
  $("filename").textContent = entry.path;
  showFacts(report, entry);
  drawTimeline(entry, report.threshold);
  showExplanations(report);
  $("raw").textContent = JSON.stringify(report, null, 2);
  $("result").hidden = false;
}

async function submit(file) {
  if (!file) return;
  const limit = state.model ? state.model.limits.max_upload_bytes : Infinity;
  if (file.size > limit) {
    say(`${file.name} is larger than this server's limit (${Math.round(limit / 2 ** 20)} MB).`, true);
    return;
  }
  $("result").hidden = true;
  say(`Scoring ${file.name} (${(file.size / 2 ** 20).toFixed(1)} MB)…`);
  const form = new FormData();
  form.append("file", file, file.name);
  const explain = state.model && state.model.explain && $("explain").checked ? "?explain=1" : "";
  const started = performance.now();
  let response;
  try {
    response = await fetch("/v1/score" + explain, { method: "POST", body: form, headers: headers() });
  } catch (e) {
    say("The request failed: " + e.message, true);
    return;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (response.status === 401) {
    $("token-form").hidden = false;
    say("This server needs a token.", true);
    return;
  }
  if (response.status === 503) {
    const wait = response.headers.get("Retry-After") || "a few";
    say(`The server is busy: try again in ${wait} s. (${await errorText(response)})`, true);
    return;
  }
  if (response.status === 200 || response.status === 422) {
    const report = await response.json();
    showReport(report);
    say(response.status === 200 ? `Scored in ${seconds} s.` : `Not scored: ${report.error}`,
        response.status !== 200);
    document.body.dataset.done = "1";
    return;
  }
  say(`Error ${response.status}: ${await errorText(response)}`, true);
}

function setUp() {
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    submit(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => submit(e.target.files[0]));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("mclcr-token", state.token);
    loadModel();
  });
  loadModel();
}

setUp();
