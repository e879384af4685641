// mdnrnn studio, drawing page: draw on a canvas, the server's model continues the drawing.
//
// The person's strokes are kept as absolute points in the model's data units (the canvas
// spans `canvas_units` of them: 109 for KanjiVG). On pen-up (or a button) the page sends
// them as `prime.strokes`; the server simplifies them as the data was, primes a generator
// and streams stroke-3 rows (dx, dy, pen_lift), one `points` frame per step with one row per
// alternative. Each alternative has its own board; all boards share the person's strokes.
"use strict";

const BOARD_PIXELS = 436;
const state = {
  models: [], model: null, units: 109,
  strokes: [],              // person's strokes: arrays of [x, y] in data units
  current: null,            // the stroke being drawn
  continuations: [[]],      // per alternative: model rows [dx, dy, pen_lift]
  pens: [],                 // per alternative: {x, y, down} where the model's pen is
  request: null,            // id of the stream being shown
  penUpAt: null,            // performance.now() of the last pen-up that asked for a continuation
  firstPointLatency: [],    // ms from pen-up to the first model point on the page, per request
  lastStarted: null,        // the last `started` frame (temperatures the server used)
  lastDone: null,
  modelPoints: 0,           // model points drawn on the boards since the last reset
  exports: [],
  errors: [],
};
window.studioState = state;  // read by the browser tests and the benchmark

const socket = new StudioSocket(onFrame, onReady);
const boards = [];
let colors = { person: "#111111", model: "#d9480f" };

function onReady(frame) {
  state.models = frame.models;
  colors = frame.colors;
  const select = document.getElementById("model");
  fillModels(select, frame.models, "drawing");
  if (!select.value) { setStatus("This server has no drawing model.", true); return; }
  chooseModel(select.value);
  setStatus("Ready: draw a stroke.");
}

function chooseModel(name) {
  state.model = name;
  state.units = state.models.find((m) => m.name === name).canvas_units;
  document.getElementById("finish").disabled = !state.models.find((m) => m.name === name).can_end;
  resetAll();
}

function alternatives() { return Number(document.getElementById("alternatives").value); }

function makeBoards() {
  const container = document.getElementById("boards");
  container.innerHTML = "";
  boards.length = 0;
  const n = alternatives();
  const size = n === 1 ? BOARD_PIXELS : Math.max(220, Math.floor((container.clientWidth - 16 * (n - 1)) / n));
  const ratio = window.devicePixelRatio || 1;
  for (let i = 0; i < n; i++) {
    const canvas = document.createElement("canvas");
    canvas.className = "board";
    canvas.width = canvas.height = Math.round(size * ratio);
    canvas.style.width = canvas.style.height = `${size}px`;
    canvas.dataset.alternative = i;
    const context = canvas.getContext("2d");
    context.scale(canvas.width / state.units, canvas.height / state.units);  // draw in data units
    context.lineCap = context.lineJoin = "round";
    boards.push({ canvas, context, size });
    container.appendChild(canvas);
    canvas.addEventListener("pointerdown", penDown);
    canvas.addEventListener("pointermove", penMove);
    canvas.addEventListener("pointerup", penUp);
    canvas.addEventListener("pointercancel", penUp);
  }
}

// ------------------------------------------------------------------ drawing
function toUnits(event, canvas) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * state.units / box.width, (event.clientY - box.top) * state.units / box.height];
}

function penDown(event) {
  event.preventDefault();
  try { event.target.setPointerCapture(event.pointerId); } catch (error) { /* a synthetic or finished pointer */ }
  stopStream();
  clearContinuations();
  state.current = [toUnits(event, event.target)];
  redraw();
}

function penMove(event) {
  if (!state.current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const point = toUnits(e, event.target);
    const last = state.current[state.current.length - 1];
    if (Math.hypot(point[0] - last[0], point[1] - last[1]) >= 0.25) state.current.push(point);
  }
  redraw();
}

function penUp(event) {
  if (!state.current) return;
  state.strokes.push(state.current);
  state.current = null;
  redraw();
  if (document.getElementById("auto").checked) ask("stroke");
}

function lastPersonPoint() {
  const last = state.strokes[state.strokes.length - 1];
  return last ? last[last.length - 1] : [0, 0];
}

function redraw() {
  boards.forEach((board, i) => {
    const c = board.context;
    c.clearRect(0, 0, state.units, state.units);
    c.lineWidth = state.units / 109 * 2.2;
    c.strokeStyle = colors.person;
    for (const stroke of state.current ? [...state.strokes, state.current] : state.strokes) drawLine(c, stroke);
    c.strokeStyle = colors.model;
    const [x0, y0] = lastPersonPoint();
    let x = x0, y = y0, line = [];
    for (const [dx, dy, pen] of state.continuations[i] || []) {
      x += dx; y += dy; line.push([x, y]);
      if (pen >= 0.5) { drawLine(c, line); line = []; }
    }
    drawLine(c, line);
  });
}

function drawLine(c, points) {
  if (!points.length) return;
  c.beginPath();
  c.moveTo(points[0][0], points[0][1]);
  if (points.length === 1) c.lineTo(points[0][0] + 0.01, points[0][1]);
  for (const [x, y] of points.slice(1)) c.lineTo(x, y);
  c.stroke();
}

// Draws the new rows of a `points` frame as line segments on each board.
function drawRows(rows) {
  rows.forEach((row, i) => {
    if (!row || !boards[i]) return;
    state.continuations[i].push(row);
    const pen = state.pens[i];
    const c = boards[i].context;
    const x = pen.x + row[0], y = pen.y + row[1];
    c.strokeStyle = colors.model;
    c.beginPath();
    if (pen.down) { c.moveTo(pen.x, pen.y); c.lineTo(x, y); } else { c.moveTo(x, y); c.lineTo(x + 0.01, y); }
    c.stroke();
    state.pens[i] = { x, y, down: row[2] < 0.5 };
    state.modelPoints += 1;
  });
}

// ------------------------------------------------------------------ protocol
function ask(until, fromScratch = false) {
  if (!state.model) return;
  stopStream();
  if (fromScratch) { state.strokes = []; }
  clearContinuations();
  redraw();
  state.penUpAt = performance.now();
  state.request = socket.send({
    type: "generate", model: state.model, n: alternatives(), until,
    prime: fromScratch ? null : { strokes: state.strokes },
    temperature: Number(document.getElementById("temperature").value),
    sigma_temperature: Number(document.getElementById("sigma").value),
    rate: Number(document.getElementById("pace").value),
    max_points: until === "end" ? 1000 : 300,
  });
  setStatus("The model is drawing...");
}

function stopStream() {
  if (state.request !== null) socket.send({ type: "stop" });
  state.request = null;
}

function clearContinuations() {
  const n = alternatives();
  state.continuations = Array.from({ length: n }, () => []);
  const [x, y] = lastPersonPoint();
  state.pens = Array.from({ length: n }, () => ({ x, y, down: false }));
  state.modelPoints = 0;
}

function onFrame(frame) {
  if (frame.type === "error") {
    state.errors.push(frame);
    setStatus(`Error: ${frame.message}`, true);
    return;
  }
  if (frame.type === "export") { state.exports.push(frame); download(frame); return; }
  if (frame.id !== state.request) return;  // frames of a stream this page has left behind
  if (frame.type === "started") {
    state.lastStarted = frame;
    document.getElementById("svg").disabled = false;
  } else if (frame.type === "points") {
    if (frame.step === 0 && state.penUpAt !== null) {
      state.firstPointLatency.push(performance.now() - state.penUpAt);
      state.penUpAt = null;
    }
    drawRows(frame.rows);
  } else if (frame.type === "done") {
    state.lastDone = frame;
    state.request = null;
    const why = { end: "finished the drawing", stroke: "drew a stroke", max_points: "reached the point limit", stopped: "stopped" }[frame.reason] || frame.reason;
    setStatus(`The model ${why} (${frame.points.join(" / ")} points). Draw on, or press Continue.`);
  }
}

function resetAll() {
  stopStream();
  state.strokes = [];
  state.current = null;
  makeBoards();
  clearContinuations();
  redraw();
}

// ------------------------------------------------------------------ controls
document.getElementById("model").addEventListener("change", (e) => chooseModel(e.target.value));
document.getElementById("alternatives").addEventListener("change", () => { stopStream(); makeBoards(); clearContinuations(); redraw(); });
bindSlider("temperature", (value) => socket.send({ type: "set", temperature: value }));
bindSlider("sigma", (value) => socket.send({ type: "set", sigma_temperature: value }));
document.getElementById("continue").addEventListener("click", () => ask("stroke"));
document.getElementById("finish").addEventListener("click", () => ask("end"));
document.getElementById("scratch").addEventListener("click", () => ask("end", true));
// The SVG is the server's record of the last request (strokes and continuations): after an
// undo or a clear it no longer matches the boards, until the next continuation.
const svgButton = document.getElementById("svg");
document.getElementById("undo").addEventListener("click", () => {
  stopStream(); state.strokes.pop(); clearContinuations(); redraw();
  svgButton.disabled = true;
  setStatus(`${state.strokes.length} stroke(s).`);
});
document.getElementById("clear").addEventListener("click", () => { resetAll(); svgButton.disabled = true; setStatus("Cleared."); });
document.getElementById("svg").addEventListener("click", () => socket.send({ type: "export", format: "svg" }));
makeBoards();
svgButton.disabled = true;
