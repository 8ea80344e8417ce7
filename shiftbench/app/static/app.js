/* shiftbench app: plain JavaScript, no libraries, talks only to this server.
   Inspect and Compare live here with what every view shares; the Draw view's canvas is
   draw.js and the Study view is study.js (loaded on those views only). */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const RUN = document.body.dataset.run;
const VIEW = document.body.dataset.view;
const params = new URLSearchParams(location.search);

/* the status line: an error (red), work in progress (with a spinner) or a plain note */
function setStatus(text, kind = "") {
  const el = $("#status");
  el.textContent = text || "";
  el.className = kind === true ? "error" : kind;
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

/* a duration: "85 ms", "2250 ms" up to 10 s, then "12.3 s" (never exponent notation) */
function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  return ms < 10000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
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
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/* ---- state shared by inspect / draw / compare -------------------------------------- */
const S = { models: [], image: null, mask: null, sampleId: null };

async function loadModels() {
  const body = await api(`/api/runs/${RUN}/models`);
  S.models = body.models;
  if (!S.models.length) {
    setStatus("this run has no saved models: re-run `shiftbench run ... --save-models`", true);
    return false;
  }
  const cat = $("#category");
  fill(cat, uniq(S.models.map((m) => m.category)), params.get("category") || undefined);
  cat.addEventListener("change", () => { refreshModelChoices(); loadSamples(); onChange(); });
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
    const names = uniq(rows.map((m) => m.model));
    names.forEach((name, i) => {
      const l = document.createElement("label");
      l.innerHTML = `<input type="checkbox" class="model-check" value="${esc(name)}" ${i < 4 ? "checked" : ""}> ${esc(name)}`;
      $("input", l).addEventListener("change", onChange);
      box.appendChild(l);
    });
    const note = $("#compare-note");
    note.hidden = names.length >= 2;
    note.textContent = names.length >= 2 ? "" :
      `Compare puts 2 to 4 models side by side, and this run saved only one for ${cat} (${names.join(", ") || "none"}): ` +
      "run the study with more models (e.g. --models patchcore,anomalib-padim --save-models) to compare them. " +
      "The one model is shown below.";
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
  setStatus(`opening ${sampleId} …`, "busy");
  const body = await api(`/api/runs/${RUN}/open`, { method: "POST", body: fd });
  S.image = body.token; S.mask = body.mask_token; S.sampleId = sampleId;
  $("#image-info").textContent = `${sampleId}${body.mask_token ? " (with its ground-truth mask)" : ""}`;
  if ($("#sample").value !== sampleId) $("#sample").value = sampleId;
  setStatus("");
  await onImage();
}

/* a new image replaces the old one: no result, picker or note of the old one stays */
function forgetImage() {
  S.image = null; S.mask = null; S.sampleId = null;
  R.want = null; // a response still on its way is of the old image: dropped
  D.baseToken = null; D.baseMask = null;
  const base = $("#base");
  if (base) { base.getContext("2d").clearRect(0, 0, 384, 384); clearStrokes(); }
  $("#sample").value = "";
  $("#image-info").textContent = "";
  clearResult();
}

async function uploadFile(file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  forgetImage();
  setStatus(`uploading ${file.name} …`, "busy");
  let body;
  try {
    body = await api("/api/upload", { method: "POST", body: fd });
  } catch (e) {
    throw new Error(`upload refused: ${e.message}`);
  }
  S.image = body.token;
  $("#image-info").textContent = `${body.name}: ${body.width}×${body.height} ${body.format} ${body.mode}`;
  setStatus("");
  await onImage();
}

function wireImageInputs() {
  const drop = $("#dropzone");
  const guard = (fn) => async (...a) => { try { await fn(...a); } catch (e) { setStatus(e.message, true); } };
  $("#file").addEventListener("change", guard(async (e) => {
    const f = e.target.files[0];
    e.target.value = ""; // choosing the same file again is a new upload
    if (f) await uploadFile(f);
  }));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", guard(async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) await uploadFile(e.dataTransfer.files[0]);
  }));
  $("#sample").addEventListener("change", guard(async (e) => {
    if (e.target.value) await openSample(e.target.value);
    else { forgetImage(); setStatus(""); }
  }));
}

async function wirePerturb() {
  const sel = $("#perturb");
  if (!sel) return;
  const sev = $("#severity");
  /* "input" moves the label while dragging; the request goes through the coalescing
     runner, so "input" and the "change" after it ask for one request, not two */
  sev.addEventListener("input", () => { $("#severity-out").textContent = sev.value; onChange(); });
  sev.addEventListener("change", () => onChange());
  sel.addEventListener("change", () => onChange());
  $("#shift-seed").addEventListener("change", () => onChange());
  const body = await api("/api/perturbations");
  const add = (label, items) => {
    const g = document.createElement("optgroup");
    g.label = label;
    for (const it of items) { const o = document.createElement("option"); o.value = o.textContent = it.name; g.appendChild(o); }
    sel.appendChild(g);
  };
  add("perturbations", body.perturbations);
  add("suites", body.suites);
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

function warningsHtml(r) {
  return (r.warnings || []).map((w) => `<div class="warning">⚠ ${esc(w)}</div>`).join("");
}

/* the caption of the predicted-region panel: what each outline colour is */
function regionLegend(r, truthName = "ground truth") {
  let s;
  if (r.pixel_threshold === null) s = "no pixel threshold (the run had no validation masks)";
  else {
    const pct = 100 * r.region_fraction;
    const area = pct === 0 ? "no pixel reaches it" : `${pct.toFixed(1)}% of pixels`;
    s = `<span class="swatch region"></span> outline: predicted region (map ≥ ${fmt(r.pixel_threshold, 3)}; ${area})`;
  }
  if (r.images.truth) s += `<br><span class="swatch truth"></span> outline: ${truthName}`;
  return s;
}

function clearResult() {
  const res = $("#result");
  if (res) res.hidden = true;
  const w = $("#warnings");
  if (w) w.innerHTML = "";
  const box = $("#compare-panels");
  if (box) box.innerHTML = "";
  R.shown = null;
}

function showResult(r) {
  $("#result").hidden = false;
  $("#verdict").innerHTML = verdictHtml(r);
  $("#warnings").innerHTML = warningsHtml(r);
  $("#img-input").src = r.images.input;
  $("#img-overlay").src = r.images.overlay;
  $("#img-overlay").dataset.stamp = String(Date.now());
  $("#img-region").src = r.images.region;
  $("#cbar-lo").textContent = fmt(r.map_range[0], 3);
  $("#cbar-hi").textContent = fmt(r.map_range[1], 3);
  $("#cap-region").innerHTML = regionLegend(r, VIEW === "draw" ? "drawn defect" : "ground truth");
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

/* ---- the request runner of Inspect and Compare ------------------------------------
   Every control change asks for the request(s) the page now shows; one runs at a time.
   While one runs, only the latest wish is kept and sent after it; a response to a wish
   that is no longer the latest is dropped, and a wish equal to the one on screen (the
   slider's "input" then "change" of one arrow key) sends nothing. */
const R = { busy: false, want: null, shown: null };

function wish() {
  if (!S.image) return null;
  if (VIEW === "compare") {
    const models = $$(".model-check").filter((c) => c.checked).map((c) => c.value);
    return { key: "compare " + models.join(",") + " " + query("").toString(), models };
  }
  const model = $("#model").value;
  return { key: query(model).toString(), models: [model] };
}

function isLoaded(model) {
  const cat = $("#category").value;
  return S.models.some((m) => m.category === cat && m.model === model && m.loaded);
}

function markLoaded(model) {
  const cat = $("#category").value;
  for (const m of S.models) if (m.category === cat && m.model === model) m.loaded = true;
}

async function onChange(force = false) {
  if (VIEW === "draw") return;
  const w = wish();
  if (w === null) return;
  if (force) R.shown = null;
  if (!R.want || R.want.key !== w.key) R.want = w;
  if (R.busy) return;
  R.busy = true;
  try {
    while (R.want && R.want.key !== (R.shown && R.shown.key)) {
      const now = R.want;
      const cold = now.models.filter((m) => !isLoaded(m));
      setStatus(cold.length ? `loading ${cold.join(", ")} (first use of a model: a few seconds) …`
        : `scoring with ${now.models.join(", ")} …`, "busy");
      $("#result, #compare-panels").classList.add("stale");
      const t0 = performance.now();
      let results = null, error = null;
      try {
        results = await fetchResults(now);
      } catch (e) { error = e; }
      if (!R.want || R.want.key !== now.key) continue; // stale: dropped, the newer wish goes next
      $("#result, #compare-panels").classList.remove("stale");
      if (error) { clearResult(); R.shown = now; setStatus(error.message, true); continue; }
      R.shown = now;
      now.models.forEach(markLoaded);
      const ms = performance.now() - t0;
      document.body.dataset.lastMs = String(Math.round(ms));
      if (VIEW === "compare") showCompare(results, ms);
      else {
        showResult(results[0]);
        setStatus(`${results[0].model}: ${fmtMs(ms)} (server ${fmtMs(results[0].timing_ms.request)})`);
      }
    }
  } finally {
    R.busy = false;
  }
}

async function fetchResults(w) {
  if (VIEW === "compare") {
    if (w.models.length < 1 || w.models.length > 4) throw new Error("pick 1 to 4 models");
    return Promise.all(w.models.map((m) => { const q = query(m); q.delete("seed"); return api(`/api/predict?${q}`); }));
  }
  return [await api(`/api/predict?${query(w.models[0])}`)];
}

async function onImage() {
  if (VIEW === "draw") return drawLoadBase();
  return onChange();
}

/* ---- compare ------------------------------------------------------------------------- */
function showCompare(results, ms) {
  const box = $("#compare-panels");
  box.innerHTML = "";
  const tpl = $("#compare-tpl");
  results.forEach((r) => {
    const node = tpl.content.cloneNode(true);
    $(".cname", node).textContent = `${r.model} (${r.fit}, seed ${r.seed})`;
    $(".verdict", node).innerHTML = verdictHtml(r) + warningsHtml(r);
    $(".c-overlay", node).src = r.images.overlay;
    $(".c-region", node).src = r.images.region;
    $(".c-legend", node).innerHTML = regionLegend(r);
    $(".lo", node).textContent = fmt(r.map_range[0], 3);
    $(".hi", node).textContent = fmt(r.map_range[1], 3);
    box.appendChild(node);
  });
  setStatus(`${results.length} model${results.length > 1 ? "s" : ""} compared in ${fmtMs(ms)}`);
}

/* ---- draw (its functions are draw.js) -------------------------------------------------- */
const D = { undo: [], drawing: false, last: null, before: null, baseToken: null, baseMask: null };

/* ---- start ----------------------------------------------------------------------------- */
async function init() {
  try {
    if (!RUN) return;
    if (VIEW === "study") { await initStudy(); document.body.dataset.ready = "1"; return; }
    wireImageInputs();
    if (VIEW === "draw") wireDraw();
    if (VIEW === "compare") $("#compare-btn").addEventListener("click", () => {
      if (!S.image) setStatus("choose an image first", true); else onChange(true);
    });
    // the perturbation list may wait for the server's first imports: not the rest
    const perturbations = wirePerturb();
    if (!(await loadModels())) return;
    await loadSamples();
    await perturbations;
    document.body.dataset.ready = "1";
    const sid = params.get("sample_id");
    if (sid) await openSample(sid);
  } catch (e) {
    setStatus(e.message, true);
  }
}

window.addEventListener("DOMContentLoaded", init);
