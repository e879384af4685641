// mdnrnn studio, performance page: call and response with a touch model.
//
// Taps and swipes on the pad become touch rows (x, y, dt): position in [0, 1] (y grows
// downwards) and seconds since the previous row. After a pause (1 s by default) the page
// sends the call as `prime.rows` with `until: "seconds"` and the call's duration; the model's
// answer streams back as rows, which the page shows and plays at their own times. Sound uses
// the MIDI exporter's mapping (notes from the server's `ready` frame): a touch's first x picks
// a note of C major pentatonic from C3 to C6, its first y the loudness (top loud), and a
// swipe's horizontal travel bends the pitch.
"use strict";

const MIN_ROW_GAP = 0.015;  // seconds between swipe rows (the RoboJam corpus has ~60 per second)
const state = {
  model: null, notes: [], tapThreshold: 0.1,
  call: [],              // rows of the person's current call
  lastEventAt: null,     // performance.now() / 1000 of the last row (person's or model's)
  down: false,
  timer: null,
  request: null,
  answer: [],            // rows of the model's current answer
  answerStartAt: null,   // performance.now() / 1000 when the answer starts playing
  answerClock: 0,        // seconds into the answer of the last scheduled row
  calls: [],             // {callSeconds, answerSeconds, callRows, answerRows} per exchange
  lastStarted: null, lastDone: null, exports: [], errors: [],
};
window.studioState = state;

const socket = new StudioSocket(onFrame, onReady);
const canvas = document.getElementById("pad-canvas");
const context = canvas.getContext("2d");
let colors = { person: "#111111", model: "#d9480f" };
let audio = null;
let personVoice = null;

function onReady(frame) {
  colors = frame.colors;
  state.notes = frame.notes;
  state.tapThreshold = frame.tap_threshold;
  const select = document.getElementById("model");
  fillModels(select, frame.models, "performance");
  state.model = select.value || null;
  if (!state.model) { setStatus("This server has no performance model.", true); return; }
  resize();
  setStatus("Ready: tap and swipe, then wait for the answer.");
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = canvas.clientHeight * ratio;
  context.setTransform(canvas.width, 0, 0, canvas.height, 0, 0);  // draw in [0, 1] units
}

function now() { return performance.now() / 1000; }

// ------------------------------------------------------------------ sound
function audioContext() {
  if (!document.getElementById("sound").checked) return null;
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
  } catch (error) {
    audio = null;
  }
  return audio;
}

function noteOf(x, y) {
  const notes = state.notes;
  const note = notes[Math.min(Math.floor(Math.min(Math.max(x, 0), 1) * notes.length), notes.length - 1)];
  const loudness = (127 + Math.min(Math.max(y, 0), 1) * (40 - 127)) / 127;  // velocity_range (40, 127)
  return { note, loudness, x0: x };
}

function frequency(note, bendSemitones = 0) { return 440 * Math.pow(2, (note - 69 + bendSemitones) / 12); }

function bend(voice, x) {  // the exporter's bend: (x - x_first) * (high - low) semitones, within +-12
  const span = state.notes[state.notes.length - 1] - state.notes[0];
  return Math.max(-12, Math.min(12, (x - voice.x0) * span));
}

// Starts a voice at audio time `at`; returns it (or null without sound).
function startVoice(x, y, at) {
  const ctx = audioContext();
  if (!ctx) return null;
  const voice = noteOf(x, y);
  voice.osc = ctx.createOscillator();
  voice.gain = ctx.createGain();
  voice.osc.type = "triangle";
  voice.osc.frequency.setValueAtTime(frequency(voice.note), at);
  voice.gain.gain.setValueAtTime(0, at);
  voice.gain.gain.linearRampToValueAtTime(0.3 * voice.loudness, at + 0.01);
  voice.osc.connect(voice.gain).connect(ctx.destination);
  voice.osc.start(at);
  voice.startedAt = at;
  return voice;
}

function moveVoice(voice, x, at) {
  if (voice) voice.osc.frequency.setValueAtTime(frequency(voice.note, bend(voice, x)), at);
}

function stopVoice(voice, at) {
  if (!voice) return;
  const end = Math.max(at, voice.startedAt + 0.1);  // min_duration 0.1 s, as in the exporter
  voice.gain.gain.setValueAtTime(voice.gain.gain.value, end);
  voice.gain.gain.linearRampToValueAtTime(0, end + 0.05);
  voice.osc.stop(end + 0.06);
}

// ------------------------------------------------------------------ pictures
function dot(x, y, color, radius = 0.012) {
  context.fillStyle = color;
  context.beginPath();
  context.arc(x, y, radius, 0, 2 * Math.PI);
  context.fill();
}

function segment(a, b, color) {
  context.strokeStyle = color;
  context.lineWidth = 0.008;
  context.lineCap = "round";
  context.beginPath();
  context.moveTo(a[0], a[1]);
  context.lineTo(b[0], b[1]);
  context.stroke();
}

function fade() {
  context.fillStyle = "rgba(255, 255, 255, 0.55)";
  context.fillRect(0, 0, 1, 1);
}

// ------------------------------------------------------------------ the person's call
function position(event) {
  const box = canvas.getBoundingClientRect();
  return [Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1),
          Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1)];
}

function addRow(x, y) {
  const t = now();
  const dt = state.lastEventAt === null ? 0 : t - state.lastEventAt;
  state.lastEventAt = t;
  const row = [x, y, state.call.length === 0 ? Math.min(dt, 10) : dt];
  const previous = state.call[state.call.length - 1];
  state.call.push(row);
  if (previous && row[2] <= state.tapThreshold) segment(previous, row, colors.person);
  dot(x, y, colors.person, row[2] <= state.tapThreshold ? 0.006 : 0.014);
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  try { canvas.setPointerCapture(event.pointerId); } catch (error) { /* a synthetic or finished pointer */ }
  clearTimeout(state.timer);
  if (state.request !== null) { socket.send({ type: "stop" }); state.request = null; }
  if (state.call.length === 0) fade();
  state.down = true;
  const [x, y] = position(event);
  addRow(x, y);
  const ctx = audioContext();
  personVoice = ctx ? startVoice(x, y, ctx.currentTime) : null;
});

canvas.addEventListener("pointermove", (event) => {
  if (!state.down) return;
  if (now() - state.lastEventAt < MIN_ROW_GAP) return;
  const [x, y] = position(event);
  addRow(x, y);
  if (audio) moveVoice(personVoice, x, audio.currentTime);
});

function release() {
  if (!state.down) return;
  state.down = false;
  if (audio) stopVoice(personVoice, audio.currentTime);
  personVoice = null;
  clearTimeout(state.timer);
  state.timer = setTimeout(respond, Number(document.getElementById("pause").value) * 1000);
}
canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);

function callSeconds(rows) {  // from the first row to the last, at least one tap's length
  return Math.max(rows.slice(1).reduce((sum, row) => sum + row[2], 0), 0.3);
}

function respond() {
  if (!state.call.length || !state.model) return;
  const rows = state.call;
  state.call = [];
  const seconds = callSeconds(rows);
  state.calls.push({ callSeconds: seconds, callRows: rows.length, answerSeconds: 0, answerRows: 0 });
  state.answer = [];
  state.answerStartAt = null;
  state.answerClock = 0;
  state.request = socket.send({
    type: "generate", model: state.model, until: "seconds", seconds: Math.min(seconds, 60),
    after: Number(document.getElementById("pause").value),
    prime: { rows }, temperature: Number(document.getElementById("temperature").value),
    sigma_temperature: Number(document.getElementById("sigma").value), max_points: 2000,
  });
  setStatus(`You played ${seconds.toFixed(1)} s; the model answers...`);
}

// ------------------------------------------------------------------ the model's answer
function playRow(row) {
  const exchange = state.calls[state.calls.length - 1];
  if (state.answerStartAt === null) {
    state.answerStartAt = now() + 0.05;
    state.answerClock = 0;
    fade();
  } else {
    state.answerClock += row[2];
  }
  const offset = state.answerClock;
  const previous = state.answer[state.answer.length - 1];
  state.answer.push(row);
  exchange.answerRows = state.answer.length;
  exchange.answerSeconds = offset;
  const startsTouch = !previous || row[2] > state.tapThreshold;
  const delay = Math.max(0, (state.answerStartAt + offset - now()) * 1000);
  setTimeout(() => {
    if (!startsTouch && previous) segment(previous, row, colors.model);
    dot(row[0], row[1], colors.model, startsTouch ? 0.014 : 0.006);
  }, delay);
  const ctx = audioContext();
  if (ctx) {
    const at = ctx.currentTime + delay / 1000;
    if (startsTouch) {
      if (state.answerVoice) stopVoice(state.answerVoice, at);
      state.answerVoice = startVoice(row[0], row[1], at);
    } else {
      moveVoice(state.answerVoice, row[0], at);
    }
  }
  state.lastEventAt = state.answerStartAt + offset;
}

function onFrame(frame) {
  if (frame.type === "error") { state.errors.push(frame); setStatus(`Error: ${frame.message}`, true); return; }
  if (frame.type === "export") { state.exports.push(frame); download(frame); return; }
  if (frame.id !== state.request) return;
  if (frame.type === "started") state.lastStarted = frame;
  else if (frame.type === "points") { if (frame.rows[0]) playRow(frame.rows[0]); }
  else if (frame.type === "done") {
    state.lastDone = frame;
    state.request = null;
    if (state.answerVoice && audio) { stopVoice(state.answerVoice, audio.currentTime + Math.max(0, state.answerStartAt + state.answerClock - now())); state.answerVoice = null; }
    const exchange = state.calls[state.calls.length - 1];
    setStatus(`You played ${exchange.callSeconds.toFixed(1)} s, the model answered ${exchange.answerSeconds.toFixed(1)} s (${exchange.answerRows} rows). Your turn.`);
  }
}

document.getElementById("model").addEventListener("change", (e) => { state.model = e.target.value; });
bindSlider("temperature", (value) => socket.send({ type: "set", temperature: value }));
bindSlider("sigma", (value) => socket.send({ type: "set", sigma_temperature: value }));
document.getElementById("midi").addEventListener("click", () => socket.send({ type: "export", format: "midi" }));
window.addEventListener("resize", resize);
