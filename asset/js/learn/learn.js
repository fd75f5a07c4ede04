// The /learn page: a WebSocket to an echo endpoint (/learn/ws, inspected) and one to
// /learn/control (reports from the server, requests to it). Everything the server reports
// is put on the page as text (dom.js h()), never parsed as HTML.

import { h } from "../dom.js";
import { currentLanguage } from "../i18n.js";
import { STRINGS, pickLanguage } from "./strings.js";

// The language the rest of the client chose (the remembered switch, else the browser's);
// the page's own text stays in strings.js, beside the protocol words it explains.
const lang = pickLanguage([currentLanguage()]);
const S = STRINGS[lang];
document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";

function t(key, vars = {}) {
  const text = S[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
document.title = `${t("title")} · fastim`;
document.getElementById("text").value = t("text_default");

const $ = (id) => document.getElementById(id);
const log = $("frames");
const statusLine = $("status");
let control = null;
let wire = null;
let session = null;
let wantDeflate = true;

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

function setStatus(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

function announce(text) {
  $("announce").textContent = text;
}

function showError(key) {
  const box = $("form-error");
  box.textContent = t(key);
  box.hidden = false;
}

function clearError() {
  $("form-error").hidden = true;
}

// -- the two sockets ------------------------------------------------------------------------

function openControl() {
  // The server explains frames in the page's language (fastim.ws.explain / explain_zh).
  control = new WebSocket(wsUrl(`/learn/control?lang=${lang}`));
  control.onmessage = (event) => report(JSON.parse(event.data));
  control.onclose = (event) => {
    setStatus(t("status_control_closed", { reason: event.reason || event.code }), "ended");
    session = null;
  };
}

function openWire() {
  if (!session) return;
  const path = wantDeflate ? "/learn/ws" : "/learn/ws/plain";
  setStatus(t("status_connecting"), "connecting");
  wire = new WebSocket(wsUrl(`${path}?session=${encodeURIComponent(session)}`));
  wire.binaryType = "arraybuffer";
  const socket = wire;
  socket.onopen = () => {
    const deflate = socket.extensions ? t("deflate_on") : t("deflate_off");
    setStatus(t("status_open", { path, deflate }), "open");
  };
  socket.onclose = () => {
    if (wire === socket) {
      wire = null;
      setStatus(t("status_closed"), "closed");
    }
  };
}

function reconnect(deflate) {
  wantDeflate = deflate;
  if (wire && wire.readyState <= WebSocket.OPEN) {
    const old = wire;
    old.addEventListener("close", () => openWire(), { once: true });
    old.close(1000, "reconnect");
  } else {
    openWire();
  }
}

function command(request) {
  if (!control || control.readyState !== WebSocket.OPEN) return showError("error_not_connected");
  control.send(JSON.stringify(request));
}

// -- what the server reports -----------------------------------------------------------------

function report(message) {
  switch (message.type) {
    case "hello":
      session = message.session;
      openWire();
      break;
    case "handshake":
      showHandshake(message);
      break;
    case "frame":
      addEntry(frameView(message));
      announce(t("announce_frame", { dir: t(`dir_${message.dir}`), name: message.name }));
      break;
    case "simulated":
      addEntry(simulatedView(message));
      announce(t("simulated_result", { code: message.code, reason: message.reason }));
      break;
    case "closed":
      addEntry(h("li", { class: "learn-event", dataset: { kind: "closed", code: String(message.code) } },
        t("closed", { code: message.code, reason: message.reason || "" })));
      break;
    case "pong":
      addEntry(h("li", { class: "learn-event" }, t("pong", { rtt: message.rtt_ms })));
      break;
    case "idle":
      addEntry(h("li", { class: "learn-event" }, t("idle")));
      break;
    case "error":
      showError(`error_${message.error}`);
      break;
    default:
      break;
  }
}

function addEntry(node) {
  log.append(node);
  while (log.children.length > 200) log.firstElementChild.remove();
}

function showHandshake(message) {
  const steps = $("steps");
  steps.replaceChildren(...message.steps.map((step) => h("li", { dataset: { step: step.step } },
    h("strong", null, t(`step_${step.step}`)),
    h("code", { class: "learn-value" }, step.value),
    h("span", { class: "learn-meaning" }, step.meaning))));
  const accept = message.steps[message.steps.length - 1].value;
  const check = $("accept-check");
  const ok = accept === message.accept_sent;
  check.textContent = t(ok ? "accept_ok" : "accept_bad", { sent: message.accept_sent });
  check.dataset.ok = String(ok);
  $("request-head").textContent = message.request_head;
  $("response-head").textContent = message.response_head;
}

// -- one frame ---------------------------------------------------------------------------------

function hexBytes(hex) {
  const bytes = [];
  for (let i = 0; i < hex.length; i += 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  return bytes;
}

const hex2 = (n) => n.toString(16).padStart(2, "0");

function byteBox(byte, field, label, bits) {
  const shown = bits || hex2(byte);
  return h("span", { class: `learn-byte f-${field}`, title: label },
    h("span", { class: "learn-byte-value" }, shown),
    h("span", { class: "learn-byte-label" }, label));
}

function bitsBox(byte, parts) {
  // parts: [[field, label, bitCount], ...] covering the 8 bits of `byte`, high bit first.
  let shift = 8;
  return h("span", { class: "learn-byte learn-bits", title: hex2(byte) },
    parts.map(([field, label, count]) => {
      shift -= count;
      const value = ((byte >> shift) & ((1 << count) - 1)).toString(2).padStart(count, "0");
      return h("span", { class: `learn-bitgroup f-${field}` },
        h("span", { class: "learn-byte-value" }, value),
        h("span", { class: "learn-byte-label" }, label));
    }));
}

function wireBytes(frame) {
  const bytes = hexBytes(frame.hex);
  const boxes = [
    bitsBox(bytes[0], [["fin", "FIN", 1], ["rsv", "RSV", 3], ["opcode", "opcode", 4]]),
    bitsBox(bytes[1], [["mask", "MASK", 1], ["len", "len", 7]]),
  ];
  let at = 2;
  for (let i = 0; i < frame.ext; i++, at++) boxes.push(byteBox(bytes[at], "ext", i ? "" : `len${frame.ext * 8}`));
  if (frame.masked) for (let i = 0; i < 4; i++, at++) boxes.push(byteBox(bytes[at], "key", i ? "" : "key"));
  const shownPayload = Math.min(bytes.length - at, 64);
  for (let i = 0; i < shownPayload; i++) boxes.push(byteBox(bytes[at + i], "payload", i ? "" : "payload"));
  const rest = frame.size - at - shownPayload;
  if (rest > 0) boxes.push(h("span", { class: "learn-more" }, t("more_bytes", { n: rest })));
  return h("div", { class: "learn-bytes", role: "group", "aria-label": t("bytes_label") }, boxes);
}

function fieldsTable(rows) {
  return h("table", { class: "learn-fields" },
    h("caption", null, t("fields")),
    h("tbody", null, rows.map(([where, text]) => h("tr", null,
      h("th", { scope: "row" }, where), h("td", null, text)))));
}

function unmaskTable(rows) {
  const char = (n) => (n >= 0x20 && n < 0x7f ? String.fromCharCode(n) : "·");
  return h("details", { class: "learn-unmask" },
    h("summary", null, t("unmasking")),
    h("table", null,
      h("thead", null, h("tr", null, ["col_i", "col_masked", "col_key", "col_plain", "col_char"]
        .map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", null, rows.map(([masked, key, plain], i) => h("tr", null,
        h("td", null, String(i)), h("td", null, hex2(masked)), h("td", null, `^ ${hex2(key)}`),
        h("td", null, `= ${hex2(plain)}`), h("td", null, char(plain)))))));
}

function payloadView(frame) {
  const parts = [h("h4", null, t("payload"))];
  if (frame.inflated_hex !== undefined) {
    parts.push(h("div", { class: "learn-columns" },
      h("div", null, h("p", null, t("compressed")),
        h("code", { class: "learn-hex" }, spaced(frame.payload_hex))),
      h("div", null, h("p", null, t("inflated")),
        frame.inflated_text != null ? h("code", { class: "learn-text" }, frame.inflated_text) : null,
        h("code", { class: "learn-hex" }, spaced(frame.inflated_hex)))));
  } else if (frame.payload_hex) {
    if (frame.payload_text != null && frame.opcode !== 8) {
      parts.push(h("p", null, `${t("payload_text")}: `, h("code", { class: "learn-text" }, frame.payload_text)));
    }
    parts.push(h("p", null, `${t("payload_hex")}: `, h("code", { class: "learn-hex" }, spaced(frame.payload_hex))));
  }
  return parts;
}

const spaced = (hex) => hex.replace(/(..)(?!$)/g, "$1 ");

function frameView(frame, extraClass = "") {
  const heading = t("frame_heading", {
    dir: t(`dir_${frame.dir}`), name: frame.name, fin: frame.fin ? 1 : 0,
    length: frame.length, size: frame.size,
  });
  return h("li", {
    class: `learn-frame dir-${frame.dir} ${extraClass}`,
    dataset: { dir: frame.dir, opcode: frame.name, fin: frame.fin ? "1" : "0" },
  },
  h("h3", null, heading),
  wireBytes(frame),
  fieldsTable(frame.rows),
  frame.unmask ? unmaskTable(frame.unmask) : null,
  payloadView(frame),
  h("p", { class: "learn-verdict" }, frame.verdict.join(" ")));
}

function simulatedView(message) {
  return h("li", { class: "learn-simulated", dataset: { kind: message.kind, code: String(message.code) } },
    h("h3", null, t("simulated", { kind: t(`broken_${message.kind}`) })),
    h("ol", { class: "learn-log" }, frameView(message.frame, "is-simulated")),
    h("p", { class: "learn-close-code" }, t("simulated_result", { code: message.code, reason: message.reason })),
    h("h4", null, t("simulated_close")),
    h("ol", { class: "learn-log" }, frameView(message.close, "is-simulated")));
}

// -- the controls --------------------------------------------------------------------------------

function onSubmit(id, handler) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    clearError();
    handler(new FormData(event.target));
  });
}

function needWire() {
  if (wire && wire.readyState === WebSocket.OPEN) return true;
  showError("error_not_connected");
  return false;
}

onSubmit("form-text", (form) => { if (needWire()) wire.send(String(form.get("text"))); });
onSubmit("form-binary", (form) => {
  const digits = String(form.get("hex")).replace(/0x|[\s:,]/gi, "");
  if (!/^([0-9a-f]{2})*$/i.test(digits)) return showError("error_hex");
  if (needWire()) wire.send(new Uint8Array(hexBytes(digits)));
});
onSubmit("form-fragments", (form) => command({ do: "fragments", text: String(form.get("text")), n: Number(form.get("n")) }));
onSubmit("form-ping", (form) => command({ do: "ping", payload: String(form.get("payload")) }));
onSubmit("form-close", (form) => {
  if (!needWire()) return;
  try {
    wire.close(Number(form.get("code")), String(form.get("reason")));
  } catch {
    showError("error_close");
  }
});
onSubmit("form-broken", (form) => command({ do: "broken", kind: String(form.get("kind")) }));
$("reconnect-deflate").addEventListener("click", () => reconnect(true));
$("reconnect-plain").addEventListener("click", () => reconnect(false));
$("clear").addEventListener("click", () => log.replaceChildren());

openControl();
