/* shiftbench app, Study view: the manifest, the metrics table (filters, sorting), the
   report's figures with their captions, and the test images. Uses app.js's helpers. */
"use strict";

const T = { columns: [], rows: [], sortCol: null, sortDir: 1 };
const MEAN = "mean"; // the macro average over categories: always the last rows

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

function compareRows(a, b) {
  const cat = T.columns.indexOf("category");
  const ma = a[cat] === MEAN, mb = b[cat] === MEAN;
  if (ma !== mb) return ma ? 1 : -1; // "mean" last, whichever column and direction
  if (T.sortCol === null) return 0;
  const x = a[T.sortCol], y = b[T.sortCol];
  if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
  return (x < y ? -1 : 1) * T.sortDir;
}

function renderTable() {
  const t = $("#metrics");
  const cat = T.columns.indexOf("category");
  const rows = T.rows.slice().sort(compareRows);
  $("thead", t).innerHTML = "<tr>" + T.columns.map((c, i) => `<th data-col="${i}" class="${T.sortCol === i ? (T.sortDir > 0 ? "sorted-asc" : "sorted-desc") : ""}">${esc(c)}</th>`).join("") + "</tr>";
  $("tbody", t).innerHTML = rows.map((r) => `<tr class="${r[cat] === MEAN ? "mean" : ""}">` +
    r.map((v) => `<td>${typeof v === "number" ? fmt(v, 4) : esc(v ?? "")}</td>`).join("") + "</tr>").join("");
  $$("th", t).forEach((th) => th.addEventListener("click", () => {
    const i = Number(th.dataset.col);
    T.sortDir = T.sortCol === i ? -T.sortDir : 1; T.sortCol = i; renderTable();
  }));
}

function renderFigures(figs) {
  if (!figs.figures.length) return;
  const url = (f) => `/runs/${RUN}/files/${f.path.split("/").map(encodeURIComponent).join("/")}`;
  $("#figures").innerHTML = figs.figures.map((f) =>
    `<figure class="fig"><a href="${url(f)}" target="_blank" title="open full size"><img alt="${esc(f.title)}" src="${url(f)}" loading="lazy"></a>` +
    `<figcaption><b>${esc(f.title)}</b>${f.caption ? ". " + esc(f.caption.replace(/\.$/, "")) + "." : ""} <span class="muted small">${esc(f.path)}</span></figcaption></figure>`).join("");
  if (figs.report) $("#figures").insertAdjacentHTML("afterend",
    `<p><a href="/runs/${RUN}/files/report.html" target="_blank">the full report (report.html)</a></p>`);
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
    a.innerHTML = `<img loading="lazy" alt="${esc(r.sample_id)}" src="/api/runs/${RUN}/thumb?sample_id=${encodeURIComponent(r.sample_id)}"><div>${esc(r.defect_type)}</div><div>score ${fmt(r.score, 3)} ${r.decision ? "⚑" : ""}</div>`;
    box.appendChild(a);
  }
}

async function initStudy() {
  const man = await api(`/api/runs/${RUN}/manifest`);
  $("#manifest").textContent = JSON.stringify(man, null, 2);
  $$("[data-filter]").forEach((s) => s.addEventListener("change", () => loadMetrics().catch((e) => setStatus(e.message, true))));
  await loadMetrics();
  renderFigures(await api(`/api/runs/${RUN}/figures`));
  const scores = await api(`/api/runs/${RUN}/scores?protocol=clean&limit=5000`);
  fill($("#s-category"), uniq(scores.rows.map((r) => r.category)));
  fill($("#s-model"), uniq(scores.rows.map((r) => r.model)));
  $("#s-category").addEventListener("change", loadThumbs);
  $("#s-model").addEventListener("change", loadThumbs);
  await loadThumbs();
}
