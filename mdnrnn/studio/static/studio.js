// mdnrnn studio: the WebSocket client shared by the drawing and performance pages.
// Protocol: docs/serve.md. Every frame is a JSON object with a "type".
"use strict";

class StudioSocket {
  // onFrame(frame) is called for every frame from the server; onReady(frame) once, first.
  constructor(onFrame, onReady) {
    this.onFrame = onFrame;
    this.onReady = onReady;
    this.nextId = 1;
    this.ready = null;
    this.frames = 0;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      this.frames += 1;
      if (frame.type === "ready") {
        this.ready = frame;
        this.onReady(frame);
      } else {
        this.onFrame(frame);
      }
    };
    this.ws.onclose = () => setStatus("Disconnected from the server: reload the page.", true);
  }

  // Sends a message, giving it a fresh "id" unless it has one; returns the id.
  send(message) {
    if (message.id === undefined && message.type !== "set") message.id = this.nextId++;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    return message.id;
  }
}

function setStatus(text, error = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

// Fills a <select> with the models of one kind; picks ?model=NAME when it is there.
function fillModels(select, models, kind) {
  const wanted = new URLSearchParams(location.search).get("model");
  select.innerHTML = "";
  for (const model of models.filter((m) => m.kind === kind)) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.description ? `${model.name}: ${model.description}` : model.name;
    if (model.name === wanted) option.selected = true;
    select.appendChild(option);
  }
}

// A slider with a live <output>: calls onChange(value) on every move.
function bindSlider(id, onChange) {
  const input = document.getElementById(id);
  const output = document.getElementById(id + "-value");
  const update = () => { output.value = Number(input.value).toFixed(2); };
  input.addEventListener("input", () => { update(); onChange(Number(input.value)); });
  update();
  return input;
}

function download(frame) {
  let blob;
  if (frame.base64 !== undefined) {
    const bytes = Uint8Array.from(atob(frame.base64), (c) => c.charCodeAt(0));
    blob = new Blob([bytes], { type: frame.mime });
  } else {
    blob = new Blob([frame.text], { type: frame.mime });
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = frame.filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
