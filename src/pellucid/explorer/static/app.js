// pellucid explorer frontend: plain ES module, no build step, no third-party code.
// Everything shown comes from the JSON API (/openapi.json documents it); text is inserted with textContent only.

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid);
  return e;
};

const state = { info: null, dataset: null, offset: 0, limit: 48, total: 0, example: null, detail: null,
                methods: {}, panels: {} };

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error(body?.detail ?? `${r.status} ${r.statusText}`);
  return body;
}

function setStatus(msg) { $("#status").textContent = msg; }

function ds() { return state.info.datasets.find(d => d.name === state.dataset); }

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return q.toString();
}

// ----------------------------------------------------------------------------------------------- examples
function fillClassSelect(select, classes, blank = "any") {
  select.replaceChildren(el("option", { value: "", text: blank }),
    ...classes.map((c, i) => el("option", { value: String(i), text: `${i}: ${c}` })));
}

async function loadExamples() {
  const d = ds();
  const q = query({
    dataset: d.name, model: $("#filter-model").value, true_class: $("#filter-true").value,
    pred_class: $("#filter-pred").value, misclassified: $("#filter-mis").checked ? "true" : "",
    offset: state.offset, limit: state.limit });
  const data = await api("/api/examples?" + q);
  state.total = data.total;
  $("#count").textContent = data.total === 0 ? "no example matches" :
    `${data.offset + 1}-${data.offset + data.items.length} of ${data.total}`;
  const list = $("#examples");
  list.replaceChildren();
  for (const it of data.items) {
    const li = el("li", { class: d.modality, "data-index": String(it.index),
                          title: `#${it.index} true ${d.classes[it.label]}, predicted ${d.classes[it.pred]} (${it.confidence})` });
    if (it.pred !== it.label) li.classList.add("wrong");
    if (d.modality === "image") {
      li.append(el("img", { src: `/api/examples/${it.index}/image.png?` + query({ dataset: d.name }), alt: `#${it.index}`,
                            loading: "lazy" }), el("span", { text: `#${it.index}` }));
    } else {
      li.append(el("span", { text: `#${it.index} ${it.text}` }));
    }
    if (state.example === it.index) li.classList.add("selected");
    li.addEventListener("click", () => selectExample(it.index));
    list.append(li);
  }
  list.dataset.query = q;  // what the list shows (tests wait for it)
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = state.offset + state.limit >= state.total;
}

async function selectExample(index) {
  state.example = index;
  for (const li of document.querySelectorAll("#examples li"))
    li.classList.toggle("selected", li.dataset.index === String(index));
  const d = ds();
  state.detail = await api(`/api/examples/${index}?` + query({ dataset: d.name }));
  const preds = Object.entries(state.detail.predictions).map(([m, p]) => `${m}: ${d.classes[p]}`).join(", ");
  $("#example-head").textContent = `example #${index}: true class ${d.classes[state.detail.label]}; predicted ${preds}`;
  for (const p of Object.values(state.panels)) {
    p.showInput();
    p.fillTargets();
    if (p.ran && !p.root.hidden) p.run();
  }
}

// ----------------------------------------------------------------------------------------------- panels
class Panel {
  constructor(root) {
    this.root = root;
    this.name = root.dataset.panel;
    root.replaceChildren($("#panel-template").content.cloneNode(true));
    this.job = null;
    this.ran = false;
    this.poll = null;
    $(".model", root).addEventListener("change", () => this.loadMethods());
    $(".method", root).addEventListener("change", () => this.buildForm());
    $(".run", root).addEventListener("click", () => this.run());
    $(".cancel", root).addEventListener("click", () => this.cancel());
    for (const [cls, id] of [["model", "model"], ["method", "method"], ["target", "target"], ["run", "run"],
                             ["cancel", "cancel"], ["overlay", "overlay"], ["tokens", "tokens"],
                             ["metrics", "metrics"], ["scores", "scores"], ["progress", "progress"],
                             ["error", "error"], ["input", "input"]])
      $("." + cls, root).id = `${this.name}-${id}`;
  }

  async init(modelIndex) {
    const d = ds();
    const box = $(".metric-choice", this.root);
    box.replaceChildren(el("legend", { text: "metrics" }), ...Object.entries(state.info.metrics).map(([m, info]) => {
      const c = el("input", { type: "checkbox", id: `${this.name}-metric-${m}`, "data-metric": m });
      c.checked = true;
      return el("label", { title: `${info.paper}; ${info.setting}` }, c, ` ${m}`);
    }));
    const models = $(".model", this.root);
    models.replaceChildren(...d.models.map(m => el("option", { value: m, text: m })));
    models.value = d.models[Math.min(modelIndex, d.models.length - 1)];
    await this.loadMethods();
    this.clear();
  }

  async loadMethods() {
    const d = ds();
    const model = $(".model", this.root).value;
    const key = `${d.name}/${model}`;
    if (!state.methods[key])
      state.methods[key] = await api("/api/methods?" + query({ dataset: d.name, model }));
    this.specs = state.methods[key].methods;
    const why = Object.entries(state.methods[key].unavailable);
    $(".unavailable", this.root).replaceChildren(el("summary", { text: `${why.length} methods not offered here` }),
      ...why.map(([m, r]) => el("div", { text: `${m}: ${r}` })));
    const sel = $(".method", this.root);
    const prev = sel.value;
    sel.replaceChildren(...this.specs.map(s => el("option", { value: s.name, text: `${s.name} (${s.kind})` })));
    const preferred = this.name === "a" ? "IntegratedGradients" : "Saliency";
    sel.value = this.specs.some(s => s.name === prev) ? prev :
      (this.specs.some(s => s.name === preferred) ? preferred : this.specs[0].name);
    this.buildForm();
    this.fillTargets();
  }

  spec() { return this.specs.find(s => s.name === $(".method", this.root).value); }

  buildForm() {
    const spec = this.spec();
    $(".summary", this.root).textContent = spec.summary.replaceAll("``", "");
    const form = $(".form", this.root);
    form.replaceChildren();
    for (const f of spec.fields) {
      const id = `${this.name}-arg-${f.name}`;
      let input;
      if (f.kind === "bool") {
        input = el("input", { type: "checkbox", id });
        input.checked = !!f.default;
      } else if (f.kind === "choice") {
        input = el("select", { id }, ...f.choices.map(c => el("option", { value: c, text: c })));
        input.value = f.default ?? f.choices[0];
      } else if (f.kind === "int" || f.kind === "float") {
        input = el("input", { type: "number", id, step: f.kind === "int" ? "1" : "any" });
        if (f.minimum !== null) input.min = f.minimum;
        if (f.maximum !== null) input.max = f.maximum;
        if (f.default !== null) input.value = f.default;
        if (f.optional) input.placeholder = "default";
      } else {
        input = el("input", { type: "text", id, placeholder: "e.g. 0,3,4 (empty: most active)" });
      }
      input.dataset.field = f.name;
      input.dataset.kind = f.kind;
      form.append(el("label", { for: id, text: f.name, title: f.help || "" }), input);
    }
  }

  fillTargets() {
    const d = ds();
    const sel = $(".target", this.root);
    const prev = sel.value;
    fillClassSelect(sel, d.classes, "predicted class");
    sel.value = prev;
    sel.disabled = this.specs && !this.spec().uses_target;
  }

  args() {
    const out = {};
    for (const input of this.root.querySelectorAll(".form [data-field]")) {
      const k = input.dataset.field, kind = input.dataset.kind;
      if (kind === "bool") out[k] = input.checked;
      else if (kind === "choice") out[k] = input.value;
      else if (kind === "int_list") {
        const t = input.value.trim();
        if (t) out[k] = t.split(/[ ,]+/).map(Number);
      } else if (input.value !== "") out[k] = Number(input.value);
    }
    return out;
  }

  showInput() {
    const d = ds();
    const img = $(".input", this.root);
    if (d.modality === "image" && state.detail) {
      img.src = state.detail.image;
      img.hidden = false;
    } else img.hidden = true;
    $(".overlay", this.root).hidden = true;
    $(".tokens", this.root).hidden = true;
  }

  clear() {
    this.job = null;
    delete $(".overlay", this.root).dataset.loaded;
    delete $(".tokens", this.root).dataset.loaded;
    $(".overlay", this.root).hidden = true;
    $(".tokens", this.root).hidden = true;
    $(".metrics", this.root).replaceChildren();
    $(".scores", this.root).replaceChildren();
    $(".error", this.root).hidden = true;
    $(".bar", this.root).style.width = "0";
    $(".stage", this.root).textContent = "";
    updateExport();
  }

  async run() {
    if (state.example === null) { setStatus("select an example first"); return; }
    this.ran = true;
    const target = $(".target", this.root).value;
    const body = { dataset: state.dataset, model: $(".model", this.root).value, example: state.example,
                   method: $(".method", this.root).value, args: this.args(),
                   target: target === "" ? null : Number(target),
                   metrics: [...this.root.querySelectorAll("[data-metric]")].filter(c => c.checked)
                                                                           .map(c => c.dataset.metric) };
    this.clear();
    $(".cancel", this.root).disabled = false;
    try {
      const job = await api("/api/jobs", { method: "POST", headers: { "content-type": "application/json" },
                                           body: JSON.stringify(body) });
      this.follow(job.id);
    } catch (e) {
      this.fail(e.message);
    }
  }

  follow(id) {
    clearTimeout(this.poll);
    this.pending = id;
    const tick = async () => {
      if (this.pending !== id) return;
      let job;
      try { job = await api(`/api/jobs/${id}`); } catch (e) { this.fail(e.message); return; }
      $(".bar", this.root).style.width = `${Math.round(job.progress * 100)}%`;
      $(".stage", this.root).textContent = `${job.status}: ${job.stage} (${job.rows_evaluated} rows)`;
      if (job.status === "done") this.show(job);
      else if (job.status === "error") this.fail(job.error);
      else if (job.status === "cancelled") this.fail("cancelled");
      else { this.poll = setTimeout(tick, 150); return; }
      $(".cancel", this.root).disabled = true;
    };
    tick();
  }

  async cancel() {
    if (!this.pending) return;
    try { await api(`/api/jobs/${this.pending}/cancel`, { method: "POST" }); } catch (e) { this.fail(e.message); }
  }

  fail(msg) {
    const err = $(".error", this.root);
    err.textContent = msg;
    err.hidden = false;
    $(".cancel", this.root).disabled = true;
  }

  show(job) {
    const d = ds();
    const r = job.result;
    this.job = job;
    $(".stage", this.root).textContent = `done in ${job.seconds} s (${job.rows_evaluated} rows)` +
      (r.neuron ? `; neuron ${r.neuron.join(",")}` : "");
    if (d.modality === "image") {
      const ov = $(".overlay", this.root);
      ov.onload = () => { ov.dataset.loaded = job.id; };
      ov.src = r.overlay + "?" + query({ style: $("#style").value, sign: $("#sign").value });
      ov.hidden = false;
    } else {
      const box = $(".tokens", this.root);
      box.replaceChildren(...r.tokens.map(t => {
        const s = el("span", { text: t.token, title: t.score.toFixed(4) });
        s.style.backgroundColor = `rgb(${t.color.join(",")})`;
        return s;
      }));
      box.hidden = false;
      box.dataset.loaded = job.id;
    }
    const scores = $(".scores", this.root);
    scores.replaceChildren(el("tr", {}, el("th", { text: "class" }), el("th", { text: "p" }), el("th")));
    r.scores.forEach((p, i) => {
      const bar = el("div");
      bar.style.width = `${Math.round(p * 100)}%`;
      const tr = el("tr", {}, el("td", { text: d.classes[i] }), el("td", { class: "num", text: p.toFixed(3) }),
                    el("td", { class: "barcell" }, bar));
      if (i === r.target) tr.classList.add("target");
      scores.append(tr);
    });
    const metrics = $(".metrics", this.root);
    metrics.replaceChildren(el("tr", {}, el("th", { text: "metric" }), el("th", { text: "value" }),
                                  el("th", { text: "better" })));
    for (const [m, v] of Object.entries(r.metrics)) {
      const info = state.info.metrics[m];
      metrics.append(el("tr", { title: `${info.paper}; ${info.setting}` }, el("td", { text: m }),
        el("td", { class: "num", text: v === null ? "n/a" : Number(v).toPrecision(4) }),
        el("td", { text: info.higher_is_better ? "higher" : "lower" })));
    }
    updateExport();
  }

  redraw() {
    if (this.job && ds().modality === "image") this.show(this.job);
  }
}

function shownJobs() {
  return Object.values(state.panels).filter(p => !p.root.hidden && p.job).map(p => p.job.id);
}

function updateExport() {
  const jobs = shownJobs();
  $("#export-png").disabled = jobs.length === 0;
  $("#export-json").disabled = jobs.length === 0;
}

async function download(url, name) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) { setStatus(`export failed: ${r.status}`); return; }
  const blob = await r.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ----------------------------------------------------------------------------------------------- start
async function selectDataset(name) {
  state.dataset = name;
  state.offset = 0;
  state.example = null;
  state.detail = null;
  const d = ds();
  $("#filter-model").replaceChildren(...d.models.map(m => el("option", { value: m, text: m })));
  fillClassSelect($("#filter-true"), d.classes);
  fillClassSelect($("#filter-pred"), d.classes);
  $("#style").disabled = $("#sign").disabled = d.modality !== "image";
  $("#example-head").textContent = "select an example on the left";
  await state.panels.a.init(0);
  await state.panels.b.init(1);
  for (const p of Object.values(state.panels)) { p.ran = false; p.showInput(); }
  await loadExamples();
}

async function main() {
  state.info = await api("/api/info");
  while (state.info.datasets.length === 0) {  // the server started before its datasets finished loading
    setStatus("loading the datasets ...");
    await new Promise(r => setTimeout(r, 1000));
    state.info = await api("/api/info");
  }
  state.panels.a = new Panel($("#panel-a"));
  state.panels.b = new Panel($("#panel-b"));
  const dsel = $("#dataset");
  dsel.replaceChildren(...state.info.datasets.map(d => el("option", { value: d.name, text: `${d.name} (${d.modality})` })));
  dsel.addEventListener("change", () => selectDataset(dsel.value));
  for (const id of ["#filter-model", "#filter-true", "#filter-pred", "#filter-mis"])
    $(id).addEventListener("change", () => { state.offset = 0; loadExamples(); });
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadExamples(); });
  $("#next").addEventListener("click", () => { state.offset += state.limit; loadExamples(); });
  $("#compare").addEventListener("change", () => {
    state.panels.b.root.hidden = !$("#compare").checked;
    updateExport();
  });
  for (const id of ["#style", "#sign"])
    $(id).addEventListener("change", () => Object.values(state.panels).forEach(p => p.redraw()));
  $("#export-png").addEventListener("click", () => download("/api/export.png?" + query({
    jobs: shownJobs().join(","), style: $("#style").value, sign: $("#sign").value }), "pellucid-explorer.png"));
  $("#export-json").addEventListener("click", () => download("/api/export.json?" + query({ jobs: shownJobs().join(",") }),
                                                             "pellucid-explorer.json"));
  await selectDataset(state.info.datasets[0].name);
  setStatus("ready");
  document.body.dataset.ready = "1";
  setInterval(refreshDatasets, 5000);
}

// datasets that finish loading after the page opened (the demo's sentences) join the menu
async function refreshDatasets() {
  let info;
  try { info = await api("/api/info"); } catch { return; }
  if (info.datasets.length === state.info.datasets.length) return;
  state.info = info;
  const dsel = $("#dataset");
  dsel.replaceChildren(...info.datasets.map(d => el("option", { value: d.name, text: `${d.name} (${d.modality})` })));
  dsel.value = state.dataset;
  setStatus(`${info.datasets.length} datasets`);
}

main().catch(e => setStatus(`error: ${e.message}`));
