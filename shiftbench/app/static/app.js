/* shiftbench app: plain JavaScript, no libraries, talks only to this server. */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const RUN = document.body.dataset.run;
const VIEW = document.body.dataset.view;
const params = new URLSearchParams(location.search);

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function api(url, options = {}) {
  const res = await fetch(url, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : String(body);
    throw new Error(detail);
  }
  return body;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(digits);
  return String(v);
}

function fill(select, values, selected) {
  const keep = selected !== undefined ? String(selected) : select.value;
  select.innerHTML = "";
  for (const v of values) {
    const o = document.createElement("option");
    o.value = o.textContent = String(v);
    select.appendChild(o);
  }
  if (values.map(String).includes(keep)) select.value = keep;
}

const uniq = (xs) => Array.from(new Set(xs)).sort();

/* ---- state shared by inspect / draw / compare -------------------------------------- */
const S = { models: [], image: null, mask: null, sampleId: null, busy: false, pending: false };

async function loadModels() {
  const body = await api(`/api/runs/${RUN}/models`);
  S.models = body.models;
  if (!S.models.length) {
    setStatus("this run has no saved models: re-run `shiftbench run ... --save-models`", true);
    return false;
  }
  const cat = $("#category");
  fill(cat, uniq(S.models.map((m) => m.category)), params.get("category") || undefined);
  cat.addEventListener("change", () => { refreshModelChoices(); loadSamples(); });
  refreshModelChoices(params.get("model") || undefined);
  for (const id of ["#model", "#seed", "#fit"]) {
    const el = $(id);
    if (el) el.addEventListener("change", () => { if (id === "#model") refreshModelChoices(); onChange(); });
  }
  return true;
}

function refreshModelChoices(modelWanted) {
  const cat = $("#category").value;
  const rows = S.models.filter((m) => m.category === cat);
  const modelSel = $("#model");
  if (modelSel) {
    fill(modelSel, uniq(rows.map((m) => m.model)), modelWanted);
  } else {
    const box = $("#model-checks");
    box.innerHTML = "";
    uniq(rows.map((m) => m.model)).forEach((name, i) => {
      const l = document.createElement("label");
      l.innerHTML = `<input type="checkbox" class="model-check" value="${name}" ${i < 4 ? "checked" : ""}> ${name}`;
      box.appendChild(l);
    });
  }
  const chosen = modelSel ? rows.filter((m) => m.model === modelSel.value) : rows;
  fill($("#seed"), uniq(chosen.map((m) => m.seed)));
  fill($("#fit"), uniq(chosen.map((m) => m.fit)), "clean");
}

async function loadSamples() {
  const sel = $("#sample");
  if (!sel) return;
  const q = new URLSearchParams({ category: $("#category").value, limit: "500" });
  const body = await api(`/api/runs/${RUN}/scores?${q}`);
  const seen = new Set();
  sel.innerHTML = '<option value="">—</option>';
  for (const r of body.rows) {
    if (seen.has(r.sample_id)) continue;
    seen.add(r.sample_id);
    const o = document.createElement("option");
    o.value = r.sample_id;
    o.textContent = `${r.sample_id} (${r.label ? "anomalous" : "normal"})`;
    sel.appendChild(o);
  }
}

async function openSample(sampleId) {
  const fd = new FormData();
  fd.append("sample_id", sampleId);
  const body = await api(`/api/runs/${RUN}/open`, { method: "POST", body: fd });
  S.image = body.token; S.mask = body.mask_token; S.sampleId = sampleId;
  $("#image-info").textContent = `${sampleId}${body.mask_token ? " (with its ground-truth mask)" : ""}`;
  if ($("#sample").value !== sampleId) $("#sample").value = sampleId;
  await onImage();
}

async function uploadFile(file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  setStatus(`uploading ${file.name} …`);
  const body = await api("/api/upload", { method: "POST", body: fd });
  S.image = body.token; S.mask = null; S.sampleId = null;
  $("#image-info").textContent = `${body.name}: ${body.width}×${body.height} ${body.format} ${body.mode}`;
  setStatus("");
  await onImage();
}

function wireImageInputs() {
  const drop = $("#dropzone");
  const guard = (fn) => async (...a) => { try { await fn(...a); } catch (e) { setStatus(e.message, true); } };
  $("#file").addEventListener("change", guard(async (e) => { if (e.target.files[0]) await uploadFile(e.target.files[0]); }));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", guard(async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) await uploadFile(e.dataTransfer.files[0]);
  }));
  $("#sample").addEventListener("change", guard(async (e) => { if (e.target.value) await openSample(e.target.value); }));
}

async function wirePerturb() {
  const sel = $("#perturb");
  if (!sel) return;
  const body = await api("/api/perturbations");
  const add = (label, items) => {
    const g = document.createElement("optgroup");
    g.label = label;
    for (const it of items) { const o = document.createElement("option"); o.value = o.textContent = it.name; g.appendChild(o); }
    sel.appendChild(g);
  };
  add("perturbations", body.perturbations);
  add("suites", body.suites);
  const sev = $("#severity");
  sev.addEventListener("input", () => { $("#severity-out").textContent = sev.value; onChange(); });
  sev.addEventListener("change", () => onChange());
  sel.addEventListener("change", () => onChange());
  $("#shift-seed").addEventListener("change", () => onChange());
}

function query(model, extra = {}) {
  const q = {
    run: RUN, category: $("#category").value, model, image: S.image,
    seed: $("#seed").value, fit: $("#fit").value,
  };
  if (S.mask) q.mask = S.mask;
  const p = $("#perturb");
  if (p && p.value) {
    q.perturb = p.value; q.severity = $("#severity").value; q.shift_seed = $("#shift-seed").value || "0";
  }
  return new URLSearchParams({ ...q, ...extra });
}

function verdictHtml(r) {
  const cls = r.decision ? "bad" : "ok";
  const op = r.decision ? "≥" : "<";
  let s = `score <b class="score">${fmt(r.score)}</b> ${op} threshold ${fmt(r.threshold)} → <span class="${cls} decision">${r.decision ? "ANOMALOUS" : "normal"}</span>`;
  if (r.pixel_iou !== null && r.pixel_iou !== undefined) s += ` · pixel IoU <b class="iou">${fmt(r.pixel_iou, 3)}</b>, F1 ${fmt(r.pixel_f1, 3)}`;
  return s;
}

function showResult(r) {
  $("#result").hidden = false;
  $("#verdict").innerHTML = verdictHtml(r);
  $("#img-input").src = r.images.input;
  $("#img-overlay").src = r.images.overlay;
  $("#img-overlay").dataset.stamp = String(Date.now());
  $("#img-region").src = r.images.region;
  $("#cbar-lo").textContent = fmt(r.map_range[0], 3);
  $("#cbar-hi").textContent = fmt(r.map_range[1], 3);
  const pt = r.pixel_threshold === null ? "no pixel threshold" : `map ≥ ${fmt(r.pixel_threshold, 3)}, ${(100 * r.region_fraction).toFixed(1)}% px`;
  $("#cap-region").textContent = `predicted region (${pt})`;
  const truth = $("#fig-truth");
  if (truth) {
    truth.hidden = !r.images.truth;
    if (r.images.truth) $("#img-truth").src = r.images.truth;
  }
  const cap = $("#cap-input");
  if (cap) cap.textContent = r.perturbation ? `shifted: ${r.perturbation.name}, severity ${r.perturbation.severity}` : "image";
  const pr = $("#params");
  if (pr) pr.textContent = JSON.stringify({ perturbation: r.perturbation, timing_ms: r.timing_ms }, null, 2);
  const link = $("#composite-link");
  if (link) link.href = `/api/composite?${query($("#model").value)}`;
}

/* coalescing: while a request runs, only the latest change is sent after it */
async function onChange() {
  if (VIEW === "compare") { if (S.image) await compareRun(); return; }
  if (!S.image || VIEW === "draw") return;
  if (S.busy) { S.pending = true; return; }
  S.busy = true;
  try {
    do {
      S.pending = false;
      const t0 = performance.now();
      const r = await api(`/api/predict?${query($("#model").value)}`);
      showResult(r);
      document.body.dataset.lastMs = String(Math.round(performance.now() - t0));
      setStatus(`${r.model}: ${Math.round(performance.now() - t0)} ms (server ${fmt(r.timing_ms.request, 3)} ms)`);
    } while (S.pending);
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    S.busy = false;
  }
}

async function onImage() {
  if (VIEW === "draw") return drawLoadBase();
  if (VIEW === "compare") return compareRun();
  return onChange();
}

/* ---- draw ---------------------------------------------------------------------------- */
const D = { undo: [], drawing: false, last: null, before: null };

async function drawLoadBase() {
  const r = await api(`/api/predict?${query($("#model").value)}`);
  D.before = r;
  D.baseToken = S.image;
  D.baseMask = S.mask;
  $("#before").innerHTML = `before: ${verdictHtml(r)}`;
  $("#result").hidden = false;
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
    try {
      if (!D.baseToken) throw new Error("choose an image first");
      const blob = await new Promise((res) => cv.toBlob(res, "image/png"));
      const fd = new FormData();
      const model = $("#model").value;
      for (const [k, v] of Object.entries({ run: RUN, category: $("#category").value, model, image: D.baseToken, seed: $("#seed").value, fit: $("#fit").value, kind: $("#kind").value, color: $("#color").value })) fd.append(k, v);
      fd.append("stroke", blob, "stroke.png");
      const d = await api("/api/defect", { method: "POST", body: fd });
      S.image = d.token; S.mask = d.mask_token;
      const r = await api(`/api/predict?${query(model)}`);
      S.image = D.baseToken; S.mask = D.baseMask;
      showResult(r);
      $("#verdict").innerHTML = `after: ${verdictHtml(r)}`;
      setStatus(`painted a ${$("#kind").value} covering ${(100 * d.mask_fraction).toFixed(1)}% of the image`);
    } catch (e) { setStatus(e.message, true); }
  });
}

/* ---- compare ------------------------------------------------------------------------- */
async function compareRun() {
  if (!S.image) { setStatus("choose an image first", true); return; }
  const models = $$(".model-check").filter((c) => c.checked).map((c) => c.value);
  if (models.length < 1 || models.length > 4) { setStatus("pick 1 to 4 models", true); return; }
  const box = $("#compare-panels");
  box.innerHTML = "";
  const tpl = $("#compare-tpl");
  try {
    const qs = models.map((m) => { const q = query(m); q.delete("seed"); return q; });
    const results = await Promise.all(qs.map((q) => api(`/api/predict?${q}`)));
    results.forEach((r) => {
      const node = tpl.content.cloneNode(true);
      $(".cname", node).textContent = `${r.model} (${r.fit}, seed ${r.seed})`;
      $(".verdict", node).innerHTML = verdictHtml(r);
      $(".c-overlay", node).src = r.images.overlay;
      $(".c-region", node).src = r.images.region;
      $(".lo", node).textContent = fmt(r.map_range[0], 3);
      $(".hi", node).textContent = fmt(r.map_range[1], 3);
      box.appendChild(node);
    });
    setStatus(`${results.length} models compared`);
  } catch (e) { setStatus(e.message, true); }
}

/* ---- study --------------------------------------------------------------------------- */
const T = { columns: [], rows: [], sortCol: null, sortDir: 1 };

async function loadMetrics() {
  const q = new URLSearchParams();
  for (const s of $$("[data-filter]")) if (s.value) q.set(s.dataset.filter, s.value);
  const body = await api(`/api/runs/${RUN}/metrics?${q}`);
  for (const s of $$("[data-filter]")) {
    if (s.options.length <= 1) for (const v of body.filters[s.dataset.filter] || []) {
      const o = document.createElement("option"); o.value = o.textContent = v;
      s.appendChild(o);
    }
  }
  T.columns = body.columns; T.rows = body.rows;
  renderTable();
}

function renderTable() {
  const t = $("#metrics");
  const rows = T.rows.slice();
  if (T.sortCol !== null) rows.sort((a, b) => {
    const x = a[T.sortCol], y = b[T.sortCol];
    if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
    return (x < y ? -1 : 1) * T.sortDir;
  });
  $("thead", t).innerHTML = "<tr>" + T.columns.map((c, i) => `<th data-col="${i}" class="${T.sortCol === i ? (T.sortDir > 0 ? "sorted-asc" : "sorted-desc") : ""}">${c}</th>`).join("") + "</tr>";
  $("tbody", t).innerHTML = rows.map((r) => "<tr>" + r.map((v) => `<td>${typeof v === "number" ? fmt(v, 4) : (v ?? "")}</td>`).join("") + "</tr>").join("");
  $$("th", t).forEach((th) => th.addEventListener("click", () => {
    const i = Number(th.dataset.col);
    T.sortDir = T.sortCol === i ? -T.sortDir : 1; T.sortCol = i; renderTable();
  }));
}

async function loadThumbs() {
  const q = new URLSearchParams({ category: $("#s-category").value, model: $("#s-model").value, protocol: "clean" });
  const body = await api(`/api/runs/${RUN}/scores?${q}`);
  const box = $("#thumbs");
  box.innerHTML = "";
  const seen = new Set();
  for (const r of body.rows) {
    if (seen.has(r.sample_id)) continue;
    seen.add(r.sample_id);
    const a = document.createElement("a");
    a.className = "thumb" + (r.label ? " anom" : "");
    a.href = `/run/${RUN}/inspect?` + new URLSearchParams({ category: r.category, model: r.model, sample_id: r.sample_id });
    a.dataset.sample = r.sample_id;
    a.innerHTML = `<img loading="lazy" alt="${r.sample_id}" src="/api/runs/${RUN}/thumb?sample_id=${encodeURIComponent(r.sample_id)}"><div>${r.defect_type}</div><div>score ${fmt(r.score, 3)} ${r.decision ? "⚑" : ""}</div>`;
    box.appendChild(a);
  }
}

async function initStudy() {
  const man = await api(`/api/runs/${RUN}/manifest`);
  $("#manifest").textContent = JSON.stringify(man, null, 2);
  $$("[data-filter]").forEach((s) => s.addEventListener("change", () => loadMetrics().catch((e) => setStatus(e.message, true))));
  await loadMetrics();
  const figs = await api(`/api/runs/${RUN}/figures`);
  if (figs.figures.length) {
    $("#figures").innerHTML = figs.figures.map((f) => `<img alt="${f}" src="/runs/${RUN}/files/${f}">`).join("") +
      (figs.report ? `<p><a href="/runs/${RUN}/files/report.html" target="_blank">report.html</a></p>` : "");
  }
  const scores = await api(`/api/runs/${RUN}/scores?protocol=clean&limit=5000`);
  fill($("#s-category"), uniq(scores.rows.map((r) => r.category)));
  fill($("#s-model"), uniq(scores.rows.map((r) => r.model)));
  $("#s-category").addEventListener("change", loadThumbs);
  $("#s-model").addEventListener("change", loadThumbs);
  await loadThumbs();
}

/* ---- start ----------------------------------------------------------------------------- */
async function init() {
  try {
    if (!RUN) return;
    if (VIEW === "study") { await initStudy(); document.body.dataset.ready = "1"; return; }
    wireImageInputs();
    await wirePerturb();
    if (VIEW === "draw") wireDraw();
    if (VIEW === "compare") $("#compare-btn").addEventListener("click", compareRun);
    if (!(await loadModels())) return;
    await loadSamples();
    document.body.dataset.ready = "1";
    const sid = params.get("sample_id");
    if (sid) await openSample(sid);
  } catch (e) {
    setStatus(e.message, true);
  }
}

init();
