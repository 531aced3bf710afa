// The page of `cnnkit serve`: send an image to /predict, show the top-5 as bars and the Grad-CAM from /explain.
// Plain JavaScript, no libraries and no CDN: the page works offline, from the server alone.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let model = null;

  function headers() {
    const key = $("api-key").value.trim();
    return key ? { "X-API-Key": key } : {};
  }

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", !!isError);
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return body.error + (body.hint ? " (" + body.hint + ")" : "");
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  async function loadModel() {
    const health = await (await fetch("/health")).json();
    $("key-row").hidden = !health.auth;
    const resp = await fetch("/model", { headers: headers() });
    if (!resp.ok) {
      $("model-info").textContent = "Enter the API key to use this model.";
      return;
    }
    model = await resp.json();
    const [c, h, w] = model.input_size;
    $("run-name").textContent = "\u00b7 " + model.run;
    $("model-info").textContent = model.model + " \u00b7 " + model.classes.length + " classes \u00b7 input " +
      c + "\u00d7" + h + "\u00d7" + w + " \u00b7 " + model.backend + " backend";
    $("draw").hidden = !model.drawable;
  }

  function showBars(top) {
    const list = $("bars");
    list.textContent = "";
    for (const t of top) {
      const li = document.createElement("li");
      const pct = (100 * t.prob).toFixed(1) + "%";
      li.setAttribute("aria-label", t.class + ": " + pct);
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = t.class;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = Math.max(0.5, 100 * t.prob) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "pct";
      value.textContent = pct;
      li.append(label, track, value);
      list.appendChild(li);
    }
  }

  async function send(blob, name) {
    if (!model) await loadModel();
    $("preview").src = URL.createObjectURL(blob);
    $("preview-name").textContent = name;
    $("preview-box").hidden = false;
    $("top1-line").hidden = true;
    $("cam-box").hidden = true;
    setStatus("Asking the model\u2026");
    const form = new FormData();
    form.append("file", blob, name);
    const resp = await fetch("/predict?topk=5", { method: "POST", body: form, headers: headers() });
    if (!resp.ok) {
      setStatus(await errorText(resp), true);
      $("bars").textContent = "";
      return;
    }
    const top = (await resp.json()).predictions[0].top;
    showBars(top);
    $("top1").textContent = top[0].class;
    $("top1-prob").textContent = (100 * top[0].prob).toFixed(1) + "%";
    $("top1-line").hidden = false;
    setStatus("Top class " + top[0].class + " with " + (100 * top[0].prob).toFixed(1) + "%.");
    const form2 = new FormData();
    form2.append("file", blob, name);
    const cam = await fetch("/explain", { method: "POST", body: form2, headers: headers() });
    if (cam.ok) {
      const body = await cam.json();
      $("cam").src = body.overlay;
      $("cam-class").textContent = body.class;
      $("cam-box").hidden = false;
    }
  }

  function sendFile(file) {
    if (file) send(file, file.name || "pasted image").catch((e) => setStatus(String(e), true));
  }

  // choose
  $("file").addEventListener("change", (e) => sendFile(e.target.files[0]));
  // drop, or Enter/Space on the drop zone opens the file chooser
  const drop = $("drop");
  drop.addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    sendFile(e.dataTransfer.files[0]);
  });
  // paste
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
    if (item) sendFile(item.getAsFile());
  });
  // draw: white ink on black, as the digits the model was trained on
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  function clear() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
  clear();
  let drawing = false;
  function point(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...point(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#fff";
    ctx.lineTo(...point(e));
    ctx.stroke();
  });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  $("clear").addEventListener("click", clear);
  $("classify-drawing").addEventListener("click", () => {
    canvas.toBlob((blob) => send(blob, "drawing.png").catch((e) => setStatus(String(e), true)), "image/png");
  });
  $("api-key").addEventListener("change", () => loadModel().catch((e) => setStatus(String(e), true)));

  loadModel().catch((e) => setStatus(String(e), true));
})();
