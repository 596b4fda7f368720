// The browser's end of a terminal maintenance session (docs/protocol/tunnel.md): xterm.js over the
// session's WebSocket, one stream, flow-controlled like every tunnel end: output is acknowledged
// once xterm has rendered it, so a flood of output never piles up in the page. Also plays back a
// session's asciicast v2 recording.
(function () {
  "use strict";
  const OP = { OPEN: 1, OPENED: 2, DATA: 3, ACK: 4, CLOSE: 5, RESIZE: 6 };
  const STREAM = 1;
  const WINDOW = 256 * 1024;
  const MAX_DATA = 32 * 1024;
  const MAX_PAUSE_MS = 1000; // long silences in a recording are shortened on playback

  function frame(op, payload) {
    const body = payload || new Uint8Array(0);
    const out = new Uint8Array(5 + body.length);
    const view = new DataView(out.buffer);
    view.setUint8(0, op);
    view.setUint32(1, STREAM);
    out.set(body, 5);
    return out;
  }

  function uint16Pair(first, second) {
    const bytes = new Uint8Array(4);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, first);
    view.setUint16(2, second);
    return bytes;
  }

  function uint32(value) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value);
    return bytes;
  }

  function live(element) {
    const status = document.getElementById("terminal-status");
    const term = new Terminal({ cursorBlink: true, fontSize: 14 });
    term.open(element);
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + element.dataset.url);
    ws.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    let credit = WINDOW;
    let opened = false;
    let ended = false;
    let queued = new Uint8Array(0);

    function flush() {
      while (opened && queued.length && credit > 0) {
        const n = Math.min(queued.length, MAX_DATA, credit);
        ws.send(frame(OP.DATA, queued.slice(0, n)));
        credit -= n;
        queued = queued.slice(n);
      }
    }

    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        if (message.type === "waiting") {
          status.textContent = "Waiting for the gateway to connect its end…";
        } else if (message.type === "ready") {
          status.textContent = "Connected.";
          ws.send(frame(OP.OPEN, uint16Pair(term.cols, term.rows)));
        } else if (message.type === "end") {
          ended = true;
          status.textContent = "Session ended: " + message.reason;
          term.write("\r\n[session ended: " + message.reason + "]\r\n");
        }
        return;
      }
      const data = new Uint8Array(event.data);
      const op = data[0];
      if (op === OP.OPENED) {
        opened = true;
        term.focus();
        flush();
      } else if (op === OP.DATA) {
        const payload = data.slice(5);
        term.write(payload, () => ws.send(frame(OP.ACK, uint32(payload.length))));
      } else if (op === OP.ACK) {
        credit = Math.min(WINDOW, credit + new DataView(data.buffer).getUint32(5));
        flush();
      } else if (op === OP.CLOSE) {
        opened = false;
        status.textContent = "The terminal closed: " + new TextDecoder().decode(data.slice(5));
      }
    };
    ws.onclose = (event) => {
      if (!ended) status.textContent = "Disconnected (" + event.code + ").";
    };
    term.onData((text) => {
      const bytes = encoder.encode(text);
      const joined = new Uint8Array(queued.length + bytes.length);
      joined.set(queued);
      joined.set(bytes, queued.length);
      queued = joined;
      flush();
    });
    term.onResize(({ cols, rows }) => {
      if (opened) ws.send(frame(OP.RESIZE, uint16Pair(cols, rows)));
    });
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function play(button, element) {
    button.disabled = true;
    element.dataset.finished = "false";
    const answer = await fetch(button.dataset.url, { credentials: "same-origin" });
    const lines = (await answer.text()).split("\n").filter((line) => line.trim());
    const header = JSON.parse(lines[0]);
    element.replaceChildren();
    const term = new Terminal({ cols: header.width, rows: header.height, fontSize: 14 });
    term.open(element);
    let previous = 0;
    for (const line of lines.slice(1)) {
      const [time, code, data] = JSON.parse(line);
      await sleep(Math.min(MAX_PAUSE_MS, Math.max(0, (time - previous) * 1000)));
      previous = time;
      if (code === "o") {
        term.write(data);
      } else if (code === "r") {
        const [cols, rows] = data.split("x").map(Number);
        term.resize(cols, rows);
      }
    }
    term.write("", () => {
      element.dataset.finished = "true";
      button.disabled = false;
    });
  }

  const terminal = document.getElementById("terminal");
  if (terminal) live(terminal);
  const player = document.getElementById("play-recording");
  if (player) player.addEventListener("click", () => play(player, document.getElementById("playback")));
})();
