// The drawing page: the image goes to the encoder service, only the code goes to the decoder service,
// over HTTP as any client does. The service URLs come from config.json (one pair per model).
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad"), ctx = pad.getContext("2d");
const PEN = 26;  // pen width on the 280 px pad: about MNIST's stroke once the digit is fitted to 20 px
let models = [], picked = null, drawn = false;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
  picked = null;
  $("source").textContent = "source: drawing";
}

// Pointer events cover mouse, pen and touch alike; the pad captures the pointer while a stroke lasts.
let last = null;
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", (e) => {
  if (picked) clearPad();
  pad.setPointerCapture(e.pointerId);
  last = point(e);
  stroke(last, last);
});
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  const p = point(e);
  stroke(last, p);
  last = p;
});
for (const ev of ["pointerup", "pointercancel"]) pad.addEventListener(ev, () => { last = null; });

function stroke(a, b) {
  ctx.strokeStyle = "#111";
  ctx.lineWidth = PEN;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
  drawn = true;
}

// A dropped or picked file is sent as it is; the pad only shows it.
async function useFile(file) {
  if (!file) return;
  picked = file;
  try {
    const bmp = await createImageBitmap(file);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    const s = Math.min(pad.width / bmp.width, pad.height / bmp.height);
    ctx.drawImage(bmp, (pad.width - bmp.width * s) / 2, (pad.height - bmp.height * s) / 2, bmp.width * s, bmp.height * s);
  } catch (err) {
    // the browser cannot show it; the encoder will say what is wrong with it
  }
  $("source").textContent = `source: ${file.name} (${file.size.toLocaleString()} bytes, sent as it is)`;
}
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("drop"); });
pad.addEventListener("dragleave", () => pad.classList.remove("drop"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("drop");
  useFile(e.dataTransfer.files[0]);
});
$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
$("clear").addEventListener("click", clearPad);

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function problem(r, who) {
  let why = `${r.status}`;
  try {
    const p = await r.json();
    why = `${r.status} ${p.title}: ${p.detail}`;
  } catch (err) { /* not problem details */ }
  return new Error(`${who}: ${why}`);
}

const b64bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function show(canvas, pixels) {  // pixels: 28 rows of 28 values 0..255
  const c = canvas.getContext("2d"), img = c.createImageData(28, 28);
  pixels.flat().forEach((v, i) => { img.data.set([v, v, v, 255], i * 4); });
  c.putImageData(img, 0, 0);
}

async function pngPixels(bytes) {  // the 28x28 grayscale PNG the encoder returned -> 28 rows of 0..255
  const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }), { colorSpaceConversion: "none" });
  const c = new OffscreenCanvas(28, 28).getContext("2d");
  c.drawImage(bmp, 0, 0);
  const d = c.getImageData(0, 0, 28, 28).data, rows = [];
  for (let y = 0; y < 28; y++) rows.push(Array.from({ length: 28 }, (_, x) => d[(y * 28 + x) * 4]));
  return rows;
}

function psnr(a, b) {
  let se = 0;
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) se += ((a[y][x] - b[y][x]) / 255) ** 2;
  const mse = se / 784;
  return mse === 0 ? 100 : Math.min(100, 10 * Math.log10(1 / mse));
}

async function send() {
  const m = models[$("model").selectedIndex];
  if (!picked && !drawn) { status("draw a digit first", true); return; }
  $("send").disabled = true;
  status(`sending to ${m.name} ...`);
  try {
    const blob = picked || await new Promise((ok) => pad.toBlob(ok, "image/png"));
    const form = new FormData();
    form.append("file", blob, picked ? picked.name : "drawing.png");
    // The sender: the image in, the code out (and the 28x28 it encoded, to show and to score against).
    let r = await fetch(`${m.encoder}/v1/encode?return_inputs=true`, { method: "POST", body: form });
    if (!r.ok) throw await problem(r, "encoder");
    const enc = await r.json();
    const code = b64bytes(enc.codes[0]), input = b64bytes(enc.inputs[0]);
    const sent = await pngPixels(input);
    show($("sent"), sent);
    $("fitted").textContent = enc.fitted[0] ? "fitted to MNIST form by the sender" : "already 28x28: sent unchanged";
    $("code-bytes").textContent = code.length;
    $("code-format").textContent = `${enc.model}, format ${enc.format}`;
    $("png-bytes").textContent = input.length;
    $("ratio").textContent = `(${(input.length / code.length).toFixed(1)}x smaller)`;
    $("code-hex").textContent = hex(code);
    // The receiver gets the code and nothing else: the wire fields of the encoder's answer.
    const wire = { version: enc.version, fingerprint: enc.fingerprint, format: enc.format, shape: enc.shape,
                   codes: enc.codes };
    r = await fetch(`${m.decoder}/v1/decode?pixels=true`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(wire) });
    if (!r.ok) throw await problem(r, "decoder");
    const dec = await r.json();
    show($("recon"), dec.pixels[0]);
    $("psnr").textContent = psnr(sent, dec.pixels[0]).toFixed(2);
    status(`done: ${m.name}, ${code.length} bytes of code`);
    document.body.dataset.sent = String(Number(document.body.dataset.sent || 0) + 1);
  } catch (err) {
    status(String(err.message || err), true);
  } finally {
    $("send").disabled = false;
  }
}
$("send").addEventListener("click", send);

async function start() {
  clearPad();
  try {
    const r = await fetch("config.json");
    models = (await r.json()).models;
  } catch (err) {
    status(`cannot read config.json: ${err}`, true);
    return;
  }
  for (const m of models) $("model").add(new Option(m.name, m.name));
  $("links").textContent = models.map((m) => `${m.name}: encoder ${m.encoder}, decoder ${m.decoder}`).join(" | ");
  $("send").disabled = models.length === 0;
  status(models.length ? "draw a digit, then send" : "no models configured", models.length === 0);
}
start();
