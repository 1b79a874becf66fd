// The conformance driver for the browser classes in seed-clients.js: it carries out the
// kit's commands with their own API and reports what they tell the application
// (the control protocol is in conformance/clientkit/control.py).
"use strict";

// The one fill-in: the constructor calls a method the classes never define.
WebSocketManager.prototype.setupEventHandlers = function () {};

const params = new URLSearchParams(location.search);
const base = Number(params.get("base"));
const attempts = Number(params.get("max"));
const token = params.get("token");
const control = new WebSocket(params.get("control"));
let manager = null;
let sse = null;

function report(event, fields = {}) {
  if (control.readyState === WebSocket.OPEN) {
    control.send(JSON.stringify({ event, ...fields }));
  }
}

function connect() {
  manager = new WebSocketManager({
    url: params.get("ws"),
    token,
    reconnectDelay: base,
    maxReconnectAttempts: attempts,
  });
  manager.on("connected", () => report("connected"));
  manager.on("disconnected", (e) => report("disconnected", { code: e.code }));
  manager.on("reconnecting", (n) => report("reconnecting", { attempt: n }));
  manager.on("reconnection_failed", () => report("gave_up"));
  manager.on("message", (message) => report("delivered", { message }));
  manager.on("error", () => {});
  manager.connect().catch(() => {});
}

function send(type, payload) {
  try {
    manager.send(type, payload);
  } catch (error) {
    report("failed", { ref: "send", reason: "closed", detail: String(error) });
  }
}

function openSse(channels) {
  const url = `${params.get("sse")}?channels=${channels.join(",")}&token=${token}`;
  sse = new SSEClient(url, { reconnectDelay: base, maxReconnectAttempts: attempts });
  for (const name of ["stream_event", "connection", "error"]) {
    sse.on(name, (event) => report("sse", { type: name, id: event.id, data: event.data }));
  }
  sse.connect().catch(() => {});
}

control.onopen = () => report("ready", { client: "browser WebSocketManager and SSEClient" });
control.onmessage = (frame) => {
  const command = JSON.parse(frame.data);
  switch (command.do) {
    case "connect":
      connect();
      break;
    case "send":
      send(command.type, command.payload);
      break;
    // Rooms and streams are messages the application sends with send(); the classes
    // keep no record of them.
    case "join":
      send("room_join", { roomId: command.room });
      break;
    case "subscribe":
      send("stream_subscribe", { streamId: command.stream });
      break;
    case "sse":
      openSse(command.channels);
      break;
    case "disconnect":
      manager.disconnect();
      break;
    default:
      // request: the classes send messages but have no request that waits for an answer.
      report("unsupported", { do: command.do });
  }
};
