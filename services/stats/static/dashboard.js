/* JakLapor public dashboard: reads the statistics API of this server and draws everything itself (SVG), so it works
   offline: no CDN, no tile server. The page's query string (kota, category, from, to, min_reports) is passed on to
   every API call; a filter the API refuses is named in the error line and left out, so the rest still shows. When
   everything is drawn, <body data-state="ready">; on failure, data-state="error". */
"use strict";

(function () {
  const STATUSES = ["selesai", "dikerjakan", "disposisi", "koordinasi", "menunggu", "ditolak"];
  const STATUS_LABELS = {
    menunggu: "Menunggu", koordinasi: "Koordinasi", disposisi: "Disposisi",
    dikerjakan: "Dikerjakan", selesai: "Selesai", ditolak: "Ditolak",
  };
  const STATUS_COLORS = {
    menunggu: "#f0b429", koordinasi: "#8b6fd6", disposisi: "#48a9d8",
    dikerjakan: "#2f6fd0", selesai: "#1f9d57", ditolak: "#d64545",
  };
  const MAP_EMPTY = "#dde4eb";
  const MAP_SCALE = ["#fde0c5", "#facba6", "#f59e72", "#e4572e", "#a63218"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const FILTER_KEYS = ["kota", "category", "from", "to"];
  const FILTER_LABELS = { kota: "Kota", category: "Kategori", from: "Dari", to: "Sampai", min_reports: "Minimal laporan" };
  const number = new Intl.NumberFormat("id-ID");
  const decimal = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 1 });

  // ---- small helpers ------------------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function percent(share) {
    return share === null || share === undefined ? "–" : decimal.format(100 * share) + "%";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return decimal.format(seconds) + " dtk";
    if (seconds < 3600) return decimal.format(seconds / 60) + " mnt";
    if (seconds < 48 * 3600) return decimal.format(seconds / 3600) + " jam";
    return decimal.format(seconds / 86400) + " hari";
  }

  function pageQuery() {
    const params = new URLSearchParams(window.location.search);
    const query = new URLSearchParams();
    for (const key of [...FILTER_KEYS, "min_reports"]) {
      if (params.get(key)) query.set(key, params.get(key));
    }
    return query;
  }

  async function getJson(path, query, keys) {
    const params = new URLSearchParams();
    for (const [key, value] of query) if (!keys || keys.includes(key)) params.set(key, value);
    const url = path + (params.toString() ? "?" + params : "");
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) {
      const error = new Error((body.error && body.error.message) || url + ": HTTP " + response.status);
      error.field = body.error && body.error.code === "invalid_query" ? body.error.field : undefined;
      throw error;
    }
    return body;
  }

  function clear(id) {
    const node = document.getElementById(id);
    node.replaceChildren();
    return node;
  }

  // ---- headline and key figures -------------------------------------------------------------------------------

  function drawHeadline(summary, durations) {
    const headline = document.getElementById("headline");
    headline.textContent = summary.headline;
    const bar = clear("status-bar");
    const legend = clear("status-legend");
    for (const status of STATUSES) {
      const row = summary.by_status[status];
      if (row.count > 0) {
        const part = el("span", { class: "s-" + status, title: `${row.label}: ${row.count} (${row.percent}%)` });
        part.style.width = 100 * row.share + "%";
        bar.append(part);
      }
      legend.append(
        el("li", { "data-status": status }, el("span", { class: "swatch s-" + status }),
          row.label + " ", el("b", { text: number.format(row.count) }), ` (${decimal.format(row.percent)}%)`)
      );
    }
    document.getElementById("generated-at").textContent = new Date(summary.generated_at).toLocaleString("id-ID", {
      dateStyle: "medium", timeStyle: "short", timeZone: "Asia/Jakarta",
    }) + " WIB";

    const overall = durations.overall;
    const selesai = summary.by_status.selesai;
    setKpi("total", number.format(summary.total), `${summary.by_category.length} kategori · ${summary.by_kota.length} wilayah`);
    setKpi("selesai", decimal.format(selesai.percent) + "%", number.format(selesai.count) + " laporan selesai");
    setKpi("response", duration(overall.first_response.median_seconds),
      `median · p90 ${duration(overall.first_response.p90_seconds)} · n=${overall.first_response.count}`);
    setKpi("resolve", duration(overall.selesai.median_seconds),
      `median · p90 ${duration(overall.selesai.p90_seconds)} · n=${overall.selesai.count}`);
    const deadline = overall.within_deadline;
    setKpi("deadline", percent(deadline.share), `${deadline.within} dari ${deadline.decided} penugasan`);
  }

  // verified completion: of the closures whose evidence photo was checked, the share taken near the report, after
  // it, and not the citizen's own photo (services/intake/evidence.py)
  function drawEvidence(evidence) {
    if (!evidence.closures_checked) {
      setKpi("evidence", "–", "belum ada penyelesaian yang diperiksa");
      return;
    }
    setKpi("evidence", percent(evidence.share), `${evidence.evidence_matched} dari ${evidence.closures_checked} penyelesaian`);
  }

  function setKpi(name, value, sub) {
    document.getElementById("kpi-" + name).textContent = value;
    document.getElementById("kpi-" + name + "-sub").textContent = sub;
  }

  // ---- trend --------------------------------------------------------------------------------------------------

  function drawTrend(daily) {
    const box = clear("trend");
    const days = daily.days;
    const width = 620, height = 300, left = 36, right = 10, top = 12, bottom = 28;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Laporan per hari" });
    const max = Math.max(1, ...days.map((d) => Math.max(d.submitted, d.selesai_that_day)));
    const step = niceStep(max);
    const top_ = Math.ceil(max / step) * step;
    const y = (v) => top + (height - top - bottom) * (1 - v / top_);
    for (let v = 0; v <= top_; v += step) {
      chart.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      chart.append(svg("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, number.format(v)));
    }
    const slot = (width - left - right) / Math.max(days.length, 1);
    const points = [];
    days.forEach((day, i) => {
      const x = left + i * slot;
      const barHeight = y(0) - y(day.submitted);
      const bar = svg("rect", {
        class: "bar", x: x + slot * 0.15, y: y(day.submitted), width: Math.max(slot * 0.7, 1), height: Math.max(barHeight, 0),
        "data-day": day.day, "data-count": day.submitted,
      });
      bar.append(svg("title", {}, `${formatDay(day.day)}: ${day.submitted} laporan, ${day.selesai_that_day} selesai`));
      chart.append(bar);
      if (day.submitted > 0 && days.length <= 31) {
        chart.append(svg("text", { class: "axis value", x: x + slot / 2, y: y(day.submitted) - 4, "text-anchor": "middle" }, number.format(day.submitted)));
      }
      points.push(`${x + slot / 2},${y(day.selesai_that_day)}`);
      if (i % Math.ceil(days.length / 6) === 0 || i === days.length - 1) {
        chart.append(svg("text", { class: "axis", x: x + slot / 2, y: height - 8, "text-anchor": "middle" }, formatDay(day.day)));
      }
    });
    chart.append(svg("polyline", { class: "done", points: points.join(" ") }));
    if (!days.some((d) => d.submitted > 0)) {
      chart.append(svg("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" }, "Belum ada laporan pada periode ini"));
    }
    box.append(chart);
  }

  function niceStep(max) {
    const rough = max / 4;
    const power = Math.pow(10, Math.floor(Math.log10(Math.max(rough, 1))));
    for (const m of [1, 2, 5, 10]) if (m * power >= rough) return Math.max(1, m * power);
    return power * 10;
  }

  function formatDay(day) {
    const [y, m, d] = day.split("-");
    return `${Number(d)}/${Number(m)}`;
  }

  // ---- categories ---------------------------------------------------------------------------------------------

  function drawCategories(byCategory) {
    const body = document.querySelector("#categories tbody");
    body.replaceChildren();
    const rows = byCategory.rows.slice(0, 12);
    for (const row of rows) {
      const share = el("div", { class: "sharebar", title: `${row.percent_of_all}% dari semua laporan` });
      for (const status of STATUSES) {
        const count = row.by_status[status];
        if (!count) continue;
        const part = el("span", { class: "s-" + status, title: `${STATUS_LABELS[status]}: ${count}` });
        part.style.width = (100 * count) / Math.max(byCategory.rows[0].total, 1) + "%";
        share.append(part);
      }
      body.append(
        el("tr", { "data-category": row.category },
          el("td", { class: "name" }, row.name || row.category, row.name_en ? el("small", { text: row.name_en }) : null),
          el("td", { class: "num", text: number.format(row.total) }),
          el("td", {}, share),
          el("td", { class: "num", text: decimal.format(row.selesai_percent) + "%" }))
      );
    }
    if (byCategory.rows.length > rows.length) {
      const rest = byCategory.rows.slice(rows.length).reduce((n, r) => n + r.total, 0);
      body.append(el("tr", {}, el("td", { class: "name", text: `${byCategory.rows.length - rows.length} kategori lain` }),
        el("td", { class: "num", text: number.format(rest) }), el("td"), el("td")));
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { colSpan: 4, class: "reason", text: "Belum ada laporan" })));
  }

  // ---- map ----------------------------------------------------------------------------------------------------

  function ringsOf(geometry) {
    return geometry.type === "Polygon" ? geometry.coordinates : geometry.coordinates.flat();
  }

  function boundsOf(features) {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    for (const f of features) for (const ring of ringsOf(f.geometry)) for (const [lon, lat] of ring) {
      b[0] = Math.min(b[0], lon); b[1] = Math.min(b[1], lat); b[2] = Math.max(b[2], lon); b[3] = Math.max(b[3], lat);
    }
    return b;
  }

  // equirectangular with the longitude scaled by cos(latitude): good enough for a city 40 km across
  function projector(bounds, x0, y0, width, height) {
    const k = Math.cos(((bounds[1] + bounds[3]) / 2) * Math.PI / 180);
    const scale = Math.min(width / ((bounds[2] - bounds[0]) * k), height / (bounds[3] - bounds[1]));
    const dx = x0 + (width - (bounds[2] - bounds[0]) * k * scale) / 2;
    const dy = y0 + (height - (bounds[3] - bounds[1]) * scale) / 2;
    return ([lon, lat]) => [dx + (lon - bounds[0]) * k * scale, dy + (bounds[3] - lat) * scale];
  }

  function pathOf(geometry, project) {
    let d = "";
    for (const ring of ringsOf(geometry)) {
      ring.forEach((point, i) => {
        const [x, y] = project(point);
        d += (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      });
      d += "Z";
    }
    return d;
  }

  function colorScale(max) {
    // five classes up to the busiest kelurahan; with few reports every count still gets its own shade
    const classes = MAP_SCALE.length;
    const breaks = [];
    for (let i = 1; i <= classes; i++) breaks.push(Math.max(i, Math.ceil((max * i) / classes)));
    const color = (count) => {
      if (!count) return MAP_EMPTY;
      const index = breaks.findIndex((b) => count <= b);
      return MAP_SCALE[index === -1 ? classes - 1 : index];
    };
    return { color, breaks };
  }

  function drawMap(geojson, byKelurahan) {
    const box = clear("map");
    const counts = new Map(byKelurahan.rows.filter((r) => r.code).map((r) => [r.code, r]));
    const max = Math.max(0, ...[...counts.values()].map((r) => r.total));
    const scale = colorScale(max);
    const width = 900, height = 640;
    const map = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Peta laporan per kelurahan" });
    const mainland = geojson.features.filter((f) => f.properties.kota !== "Kepulauan Seribu");
    const islands = geojson.features.filter((f) => f.properties.kota === "Kepulauan Seribu");
    const main = projector(boundsOf(mainland), 20, 20, width - 40, height - 40);
    const layer = svg("g", { class: "kelurahan" });
    const islandLayer = svg("g", { class: "kelurahan islands" });
    const addFeature = (feature, project, into) => {
      const p = feature.properties;
      const row = counts.get(p.code);
      const count = row ? row.total : 0;
      const path = svg("path", {
        d: pathOf(feature.geometry, project), fill: scale.color(count),
        "data-code": p.code, "data-kelurahan": p.kelurahan, "data-count": count,
      });
      const selesai = row ? ` · ${row.by_status.selesai} selesai` : "";
      path.append(svg("title", {}, `${p.kelurahan}, ${p.kecamatan}, ${p.kota}: ${count} laporan${selesai}`));
      if (into === islandLayer) path.style.stroke = scale.color(count); // islets are tiny: outline them in their colour
      into.append(path);
    };
    mainland.forEach((f) => addFeature(f, main, layer));
    if (islands.length) {
      const inset = { x: 20, y: 20, w: 190, h: 230 };
      map.append(svg("rect", { class: "inset-frame", x: inset.x, y: inset.y, width: inset.w, height: inset.h, rx: 6 }));
      map.append(svg("text", { class: "inset-label", x: inset.x + 8, y: inset.y + inset.h - 8 }, "Kepulauan Seribu"));
      const project = projector(boundsOf(islands), inset.x + 8, inset.y + 8, inset.w - 16, inset.h - 30);
      islands.forEach((f) => addFeature(f, project, islandLayer));
    }
    map.append(layer, islandLayer);
    map.append(svg("text", { class: "compass", x: width - 30, y: 30, "text-anchor": "middle" }, "U ↑"));
    box.append(map);

    const legend = clear("map-legend");
    legend.append(el("li", {}, swatch(MAP_EMPTY), "0 laporan"));
    let low = 1;
    for (let i = 0; i < scale.breaks.length; i++) {
      const high = scale.breaks[i];
      if (high < low || max === 0) continue;
      legend.append(el("li", {}, swatch(MAP_SCALE[i]), low === high ? `${high}` : `${low}–${high}`, " laporan"));
      low = high + 1;
      if (high >= max) break;
    }
    const top = clear("top-kelurahan");
    for (const row of byKelurahan.rows.filter((r) => r.code).slice(0, 8)) {
      top.append(el("li", {}, `${row.kelurahan} `, el("small", { text: `${row.kecamatan} · ${row.total} laporan` })));
    }
    top.hidden = !top.children.length;
    document.getElementById("top-kelurahan-empty").hidden = !top.hidden;
  }

  function swatch(color) {
    const node = el("span", { class: "swatch" });
    node.style.background = color;
    return node;
  }

  // ---- agencies -----------------------------------------------------------------------------------------------

  function scorePill(score) {
    if (score === null || score === undefined) return el("span", { class: "reason", text: "–" });
    const kind = score >= 70 ? "good" : score >= 40 ? "mid" : "bad";
    return el("span", { class: "pill " + kind, text: decimal.format(score) });
  }

  function shortName(name) {
    return name.replace(/ (Kota|Kabupaten) Administrasi /, " ").replace(/^Suku Dinas /, "Sudin ");
  }

  function opdCell(row) {
    return el("td", { class: "name", title: row.name || row.opd }, shortName(row.name || row.opd), el("small", { text: row.opd }));
  }

  function timeCell(stats) {
    return el("td", { class: "num" }, duration(stats.median_seconds),
      stats.count > 1 ? el("small", { text: "p90 " + duration(stats.p90_seconds) }) : null);
  }

  // the citizens' mean 1-5 rating of the agency's closures, and how many rated ("–" with none)
  function ratingCell(row) {
    if (row.rating_average === null || row.rating_average === undefined) return el("td", { class: "num rating", text: "–" });
    return el("td", { class: "num rating" }, decimal.format(row.rating_average) + " / 5",
      el("small", { text: `${number.format(row.ratings)} penilaian` }));
  }

  function drawAgencies(agencies) {
    const note = clear("score-note");
    note.append(
      `Diperingkat bila menerima minimal ${agencies.min_reports} laporan (ranked from ${agencies.min_reports} reports). Skor 0–100: `,
      el("code", { text: agencies.formula }),
      ". Mengoper (koordinasi) dan menolak laporan mengurangi skor; disposisi ke Suku Dinas tidak. Laporan yang dibuka lagi oleh pelapor dan nilai warga (1–5) juga dihitung."
    );
    const body = document.querySelector("#agencies tbody");
    body.replaceChildren();
    for (const row of agencies.ranked) {
      body.append(
        el("tr", { "data-opd": row.opd },
          el("td", { class: "num rank", text: row.rank }),
          opdCell(row),
          el("td", { class: "num", text: number.format(row.received) }),
          el("td", { class: "num", text: percent(row.completion_rate) }),
          timeCell(row.response),
          timeCell(row.resolution),
          el("td", { class: "num", text: percent(row.within_deadline.share) }),
          el("td", { class: "num", text: percent(row.bounce_rate) }),
          el("td", { class: "num", text: percent(row.rejection_rate) }),
          el("td", { class: "num", text: percent(row.reopened_rate) }),
          ratingCell(row),
          el("td", { class: "num", text: number.format(row.escalations) }),
          el("td", { class: "num score" }, scorePill(row.score)))
      );
    }
    if (!agencies.ranked.length) {
      body.append(el("tr", {}, el("td", { colSpan: 13, class: "reason",
        text: `Belum ada OPD dengan ${agencies.min_reports} laporan atau lebih (no agency has enough reports yet)` })));
    }
    const unranked = document.querySelector("#agencies-unranked tbody");
    unranked.replaceChildren();
    for (const row of agencies.unranked.slice(0, 25)) {
      unranked.append(
        el("tr", { "data-opd": row.opd },
          opdCell(row),
          el("td", { class: "num", text: number.format(row.received) }),
          el("td", { class: "num", text: percent(row.completion_rate) }),
          el("td", { class: "num", text: duration(row.response.median_seconds) }),
          el("td", { class: "num", text: percent(row.within_deadline.share) }),
          el("td", { class: "num", text: percent(row.bounce_rate) }),
          el("td", { class: "num", text: percent(row.rejection_rate) }),
          el("td", { class: "num", text: percent(row.reopened_rate) }),
          ratingCell(row),
          el("td", { class: "num", text: row.score === null ? "–" : decimal.format(row.score) }),
          el("td", { class: "reason", text: reasonText(row.unranked_reason, agencies.min_reports) }))
      );
    }
    if (agencies.unranked.length > 25) {
      unranked.append(el("tr", {}, el("td", { colSpan: 11, class: "reason", text: `… dan ${agencies.unranked.length - 25} OPD lain` })));
    }
    if (!agencies.unranked.length) {
      const text = agencies.ranked.length
        ? "Semua OPD yang menerima laporan sudah diperingkat (every agency with reports is ranked)"
        : "Belum ada OPD yang menerima laporan (no agency has received a report yet)";
      unranked.append(el("tr", {}, el("td", { colSpan: 9, class: "reason", text })));
    }
  }

  function reasonText(reason, min) {
    if (reason && reason.startsWith("triage")) return "Meja triase: meneruskan laporan (triage desk)";
    return `Kurang dari ${min} laporan (fewer than ${min})`;
  }

  // ---- filters ------------------------------------------------------------------------------------------------

  function fillFilters(geojson, categories, query) {
    const kota = document.getElementById("f-kota");
    const kotas = [...new Set(geojson.features.map((f) => f.properties.kota))].sort();
    kota.replaceChildren(el("option", { value: "", text: "Semua kota" }), ...kotas.map((k) => el("option", { value: k, text: k })));
    kota.value = query.get("kota") || "";
    const category = document.getElementById("f-category");
    const options = categories.categories.map((c) => [c.code, c.name]);
    options.sort((a, b) => a[1].localeCompare(b[1], "id"));
    category.replaceChildren(el("option", { value: "", text: "Semua kategori" }),
      ...options.map(([code, name]) => el("option", { value: code, text: name })));
    category.value = query.get("category") || "";
    document.getElementById("f-from").value = query.get("from") || "";
    document.getElementById("f-to").value = query.get("to") || "";
    const parts = [];
    if (query.get("kota")) parts.push(query.get("kota"));
    if (query.get("category")) parts.push(category.selectedOptions[0] ? category.selectedOptions[0].text : query.get("category"));
    if (query.get("from") || query.get("to")) parts.push(`${query.get("from") || "…"} s.d. ${query.get("to") || "hari ini"}`);
    document.getElementById("filter-summary").textContent = parts.length ? parts.join(" · ") : "semua laporan";
  }

  function wireFilters() {
    const form = document.getElementById("filters");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams(window.location.search);
      for (const key of FILTER_KEYS) {
        const value = form.elements[key].value;
        if (value) params.set(key, value); else params.delete(key);
      }
      history.replaceState(null, "", "?" + params.toString());
      load();
    });
    document.getElementById("f-reset").addEventListener("click", () => {
      history.replaceState(null, "", window.location.pathname);
      load();
    });
  }

  // ---- load ---------------------------------------------------------------------------------------------------

  // the boundaries and the categories do not depend on the filters: fetched once
  let choicesPromise = null;
  let drawnOnce = false;

  function loadChoices() {
    choicesPromise = choicesPromise || Promise.all([
      getJson("/api/v1/stats/map/kelurahan.geojson", new URLSearchParams()),
      getJson("/api/v1/stats/categories", new URLSearchParams()),
    ]);
    return choicesPromise.catch((exc) => {
      choicesPromise = null; // try again on the next load
      throw exc;
    });
  }

  function loadStats(query) {
    const filters = FILTER_KEYS;
    return Promise.all([
      getJson("/api/v1/stats/summary", query, filters),
      getJson("/api/v1/stats/durations", query, filters),
      getJson("/api/v1/stats/daily", query, filters),
      getJson("/api/v1/stats/by/category", query, filters),
      getJson("/api/v1/stats/by/kelurahan", query, filters),
      getJson("/api/v1/stats/agencies", query, [...filters, "min_reports"]),
      getJson("/api/v1/stats/evidence", query, filters),
    ]);
  }

  // the statistics with the page's filters; a filter the API refuses is left out (and remembered) until it answers
  async function loadStatsSkippingBadFilters(query, skipped) {
    for (;;) {
      try {
        return await loadStats(query);
      } catch (exc) {
        if (!exc.field || !query.has(exc.field)) throw exc;
        skipped.push({ label: FILTER_LABELS[exc.field] || exc.field, value: query.get(exc.field), detail: exc.message });
        query.delete(exc.field);
      }
    }
  }

  function showSkipped(error, skipped) {
    error.replaceChildren();
    for (const { label, value, detail } of skipped) {
      error.append(
        el("span", { text: `Filter ${label} "${value}" tidak valid dan diabaikan; data di bawah ditampilkan tanpa filter ini. ` }),
        el("span", { class: "en", lang: "en", text: `(${detail}) ` })
      );
    }
    error.hidden = !skipped.length;
  }

  async function load() {
    document.body.dataset.state = "loading";
    const error = document.getElementById("error");
    const query = pageQuery();
    const skipped = [];
    try {
      const [[geojson, categories], [summary, durations, daily, byCategory, byKelurahan, agencies, evidence]] = await Promise.all([
        loadChoices(),
        loadStatsSkippingBadFilters(query, skipped),
      ]);
      drawHeadline(summary, durations);
      drawTrend(daily);
      drawCategories(byCategory);
      drawMap(geojson, byKelurahan);
      drawAgencies(agencies);
      drawEvidence(evidence);
      fillFilters(geojson, categories, query);
      showSkipped(error, skipped);
      drawnOnce = true;
      document.body.dataset.state = "ready";
    } catch (exc) {
      // what an earlier load drew stays (the error line says it is not fresh); a first load says it failed
      if (!drawnOnce) document.getElementById("headline").textContent = "Data tidak dapat dimuat";
      error.textContent = "Data tidak dapat dimuat (could not load the statistics): " + exc.message;
      error.hidden = false;
      document.body.dataset.state = "error";
    }
  }

  // ---- active incidents (surges grouped by routing): their own call, so they show whatever the filters say ---------

  let categoryNames = null;

  async function loadIncidents() {
    const table = document.getElementById("incidents");
    try {
      if (!categoryNames) {
        const body = await getJson("/api/v1/stats/categories", new URLSearchParams());
        categoryNames = Object.fromEntries(body.categories.map((c) => [c.code, c.name]));
      }
      const body = await getJson("/api/v1/stats/incidents", new URLSearchParams());
      const rows = table.querySelector("tbody");
      rows.replaceChildren();
      for (const incident of body.incidents) {
        const opened = new Date(incident.opened_at).toLocaleString("id-ID", {
          dateStyle: "medium", timeStyle: "short", timeZone: "Asia/Jakarta",
        }) + " WIB";
        rows.append(
          el("tr", { "data-incident-id": incident.incident_id },
            el("td", { text: categoryNames[incident.category] || incident.category }),
            el("td", { text: `${incident.kecamatan || "?"}, ${incident.kota || "?"}` }),
            el("td", { class: "num", text: number.format(incident.member_count) }),
            el("td", { class: "num", text: number.format(incident.open_count) }),
            el("td", { text: opened }))
        );
      }
      table.hidden = body.incidents.length === 0;
      document.getElementById("incidents-empty").hidden = body.incidents.length > 0;
      document.body.dataset.incidents = String(body.incidents.length);
    } catch {
      document.body.dataset.incidents = "error"; // the rest of the page does not depend on it
    }
  }

  wireFilters();
  load();
  loadIncidents();
  setInterval(load, 60000);
  setInterval(loadIncidents, 60000);
})();
