/* shiftbench app, Draw view: a canvas over the image, strokes painted into a synthetic
   defect by the server (/api/defect), then scored. Uses app.js's helpers and its D. */
"use strict";

async function drawLoadBase() {
  const model = $("#model").value;
  setStatus(isLoaded(model) ? `scoring with ${model} …` : `loading ${model} (first use of a model: a few seconds) …`, "busy");
  const r = await api(`/api/predict?${query(model)}`);
  markLoaded(model);
  setStatus("");
  D.before = r;
  D.baseToken = S.image;
  D.baseMask = S.mask;
  $("#before").innerHTML = `before: ${verdictHtml(r)}${warningsHtml(r)}`;
  $("#result").hidden = false;
  $("#after").hidden = true;
  $("#verdict").textContent = "draw on the image, then paint the defect";
  const img = new Image();
  img.onload = () => {
    const c = $("#base").getContext("2d");
    c.imageSmoothingEnabled = false;
    c.drawImage(img, 0, 0, 384, 384);
  };
  img.src = r.images.input;
  clearStrokes();
}

function clearStrokes() {
  const c = $("#strokes").getContext("2d");
  c.clearRect(0, 0, 384, 384);
  D.undo = [];
}

function strokesEmpty() {
  const data = $("#strokes").getContext("2d").getImageData(0, 0, 384, 384).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return false;
  return true;
}

function wireDraw() {
  const cv = $("#strokes");
  const ctx = cv.getContext("2d");
  const pos = (e) => { const b = cv.getBoundingClientRect(); return [(e.clientX - b.left) * 384 / b.width, (e.clientY - b.top) * 384 / b.height]; };
  const line = (a, b) => {
    ctx.globalCompositeOperation = $("#erase").checked ? "destination-out" : "source-over";
    ctx.strokeStyle = "rgba(255,0,0,0.6)";
    ctx.lineWidth = Number($("#brush").value);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  };
  cv.addEventListener("pointerdown", (e) => {
    D.undo.push(ctx.getImageData(0, 0, 384, 384));
    if (D.undo.length > 30) D.undo.shift();
    D.drawing = true; D.last = pos(e); line(D.last, [D.last[0] + 0.01, D.last[1]]);
  });
  cv.addEventListener("pointermove", (e) => { if (!D.drawing) return; const p = pos(e); line(D.last, p); D.last = p; });
  const stop = () => { D.drawing = false; };
  cv.addEventListener("pointerup", stop);
  cv.addEventListener("pointerleave", stop);
  $("#undo").addEventListener("click", () => { const s = D.undo.pop(); if (s) ctx.putImageData(s, 0, 0); });
  $("#clear").addEventListener("click", clearStrokes);
  $("#apply").addEventListener("click", async () => {
    // the previous "after" verdict and panels go first: they are not of this stroke
    $("#after").hidden = true;
    $("#verdict").textContent = "draw on the image, then paint the defect";
    try {
      if (!D.baseToken) throw new Error("choose an image first");
      if (strokesEmpty()) throw new Error("nothing drawn: draw on the image where the defect goes, then paint it");
      setStatus(`painting a ${$("#kind").value} and scoring …`, "busy");
      const blob = await new Promise((res) => cv.toBlob(res, "image/png"));
      const fd = new FormData();
      const model = $("#model").value;
      for (const [k, v] of Object.entries({ run: RUN, category: $("#category").value, model, image: D.baseToken, seed: $("#seed").value, fit: $("#fit").value, kind: $("#kind").value, color: $("#color").value })) fd.append(k, v);
      fd.append("stroke", blob, "stroke.png");
      const d = await api("/api/defect", { method: "POST", body: fd });
      S.image = d.token; S.mask = d.mask_token;
      let r;
      try { r = await api(`/api/predict?${query(model)}`); } finally { S.image = D.baseToken; S.mask = D.baseMask; }
      showResult(r);
      $("#after").hidden = false;
      $("#verdict").innerHTML = `after: ${verdictHtml(r)}`;
      setStatus(`painted a ${$("#kind").value} covering ${(100 * d.mask_fraction).toFixed(1)}% of the image`);
    } catch (e) { setStatus(e.message, true); }
  });
}
