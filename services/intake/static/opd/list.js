// The work list: this OPD's reports in the API's order (overdue first, then by deadline), the counts per status,
// filters, a map view, and the live stream: a new assignment appears, a handed-over report leaves, without reloading.
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { baseMap, showBoundaries } from "/shared/map.js";
import { formatTime, statusLabel, t } from "./i18n.js";
import { areaText, categoryName, deadlineBadge, STATUSES, verificationBadge } from "./shared-view.js";
import { showIncidents } from "./incidents.js";

const FILTERS = ["status", "category", "kecamatan", "kelurahan"];
// reports asked for at once (the API's largest page; `?limit=` in the list's address asks for fewer); an OPD holding
// more sees a button for the next page
const PAGE_SIZE = 200;

export class WorkList {
  constructor({ reference }) {
    this.reference = reference;
    this.body = null;
    this.map = null;
    this.markers = null;
    this.source = null;
    this.reloading = null;
    const query = new URLSearchParams(location.search);
    this.filters = Object.fromEntries(FILTERS.map((name) => [name, query.get(name) || ""]));
    this.pageSize = Math.min(Math.max(Number.parseInt(query.get("limit"), 10) || PAGE_SIZE, 1), PAGE_SIZE);
  }

  async start() {
    this.fillFilters();
    this.listen(byId("filters"), "change", (event) => this.filterChanged(event.target));
    this.listen(byId("show-list"), "click", () => this.showMap(false));
    this.listen(byId("show-map"), "click", () => this.showMap(true));
    this.source = api.stream({
      onReport: (change) => this.changed(change),
      onCounts: (counts) => {
        if (!this.body) return;
        this.body.counts = counts;
        this.renderCounts();
      },
      onState: (state) => this.liveState(state),
    });
    await this.load();
  }

  stop() {
    this.source?.close();
    this.source = null;
    for (const [node, type, handler] of this.handlers || []) node.removeEventListener(type, handler);
    this.handlers = [];
    document.body.removeAttribute("data-live");
  }

  listen(node, type, handler) {
    node.addEventListener(type, handler);
    (this.handlers ||= []).push([node, type, handler]);
  }

  fillFilters() {
    const options = (select, placeholder, entries, value) => {
      clear(select).append(el("option", { value: "", text: placeholder }));
      for (const [code, label] of entries) select.append(el("option", { value: code, text: label, selected: code === value }));
    };
    options(byId("filter-status"), t("all_statuses"), STATUSES.map((s) => [s, statusLabel(s)]), this.filters.status);
    options(
      byId("filter-category"),
      t("all"),
      this.reference.categories.map((c) => [c.code, categoryName(this.reference, c.code)]),
      this.filters.category,
    );
    const kecamatan = this.reference.areas.flatMap((kota) => kota.kecamatan.map((k) => ({ ...k, kota: kota.name })));
    options(
      byId("filter-kecamatan"),
      t("all"),
      kecamatan.map((k) => [k.name, `${k.name} (${k.kota})`]),
      this.filters.kecamatan,
    );
    const chosen = kecamatan.find((k) => k.name === this.filters.kecamatan);
    const kelurahan = byId("filter-kelurahan");
    options(kelurahan, t("all"), (chosen?.kelurahan || []).map((k) => [k.name, k.name]), this.filters.kelurahan);
    kelurahan.disabled = !chosen;
  }

  filterChanged(select) {
    this.filters[select.name] = select.value;
    if (select.name === "kecamatan") {
      this.filters.kelurahan = "";
      this.fillFilters();
    }
    const query = new URLSearchParams(Object.entries(this.filters).filter(([, value]) => value));
    history.replaceState({}, "", `/opd/${query.toString() ? `?${query}` : ""}`);
    this.load({ keepPages: false });
  }

  /** The list from the server; as many pages as were shown, so a live change does not fold the list back to one. */
  async load({ keepPages = true } = {}) {
    const wanted = keepPages ? (this.body?.reports || []).length : 0;
    try {
      let body = await api.workList({ ...this.filters, limit: this.pageSize });
      while (body.next_cursor && body.reports.length < wanted) {
        const next = await api.workList({ ...this.filters, limit: this.pageSize, cursor: body.next_cursor });
        body = { ...body, reports: [...body.reports, ...next.reports], next_cursor: next.next_cursor };
      }
      this.body = body;
    } catch (error) {
      if (error.status === 401) return; // the sign-in screen takes over
      this.body = null;
      clear(byId("report-list")).append(el("li", { class: "error", role: "alert", text: t("load_failed") }));
      return;
    }
    this.render();
    await showIncidents(this.reference); // surges grouped by routing, above the reports
    document.body.dataset.listLoaded = String(Date.now());
  }

  render() {
    if (!this.body) return;
    this.fillFilters();
    this.renderCounts();
    const list = clear(byId("report-list"));
    const reports = this.body.reports || [];
    if (reports.length === 0) list.append(el("li", { class: "help", text: t("no_reports") }));
    for (const report of reports) list.append(this.card(report));
    if (this.body.next_cursor) {
      const more = el("button", { type: "button", class: "button", id: "load-more", text: t("load_more") });
      more.addEventListener("click", () => this.loadMore(more));
      list.append(el("li", { class: "more" }, more));
    }
    if (this.map) this.drawMarkers();
  }

  /** The next page of the list, after the reports shown (the API's order goes on where the page ended). */
  async loadMore(button) {
    button.disabled = true;
    const shown = (this.body.reports || []).length;
    try {
      const next = await api.workList({ ...this.filters, limit: this.pageSize, cursor: this.body.next_cursor });
      this.body = { ...this.body, reports: [...(this.body.reports || []), ...(next.reports || [])], next_cursor: next.next_cursor };
    } catch (error) {
      button.disabled = false;
      if (error.status !== 401) this.announce(t("load_failed"));
      return;
    }
    this.render();
    byId("report-list").querySelectorAll("li.work-card a")[shown]?.focus(); // the first report of the new page
  }

  renderCounts() {
    const counts = this.body.counts || {};
    const byStatus = counts.by_status || {};
    const list = clear(byId("status-counts"));
    const item = (key, n, label) =>
      el("li", { "data-status": key, class: `count count-${key}` }, el("span", { class: "count-n", text: n }), " ", label);
    if (counts.overdue) list.append(item("overdue", counts.overdue, t("overdue")));
    for (const status of STATUSES) {
      if (byStatus[status] !== undefined) list.append(item(status, byStatus[status], statusLabel(status)));
    }
  }

  card(report) {
    return el(
      "li",
      { class: `card work-card${report.overdue ? " is-overdue" : ""}`, "data-report-id": report.report_id, "data-status": report.status },
      el(
        "p",
        { class: "card-title" },
        el("a", { href: `/opd/laporan/${encodeURIComponent(report.report_id)}`, text: report.report_id }),
        " · ",
        el("span", { class: `status status-${report.status}`, text: statusLabel(report.status, report.status_label) }),
      ),
      el("p", {}, el("strong", { text: categoryName(this.reference, report.category) }), report.area ? ` — ${areaText(report.area)}` : ""),
      el("p", { class: "quote clamp", text: report.description || "" }),
      el("p", { class: "help" }, formatTime(report.submitted_at), " ", deadlineBadge(report), " ", verificationBadge(report)),
      report.supporters ? el("p", { class: "help supporters", text: t("dup_supporters", { n: report.supporters }) }) : null,
    );
  }

  showMap(visible) {
    byId("show-map").setAttribute("aria-pressed", String(visible));
    byId("show-list").setAttribute("aria-pressed", String(!visible));
    show(byId("list-map"), visible);
    show(byId("report-list"), !visible);
    if (visible && !this.map && window.L) {
      this.map = baseMap(byId("list-map"), this.reference.map);
      api.kelurahanBoundaries().then((geojson) => geojson && this.map && showBoundaries(this.map, geojson));
      this.markers = window.L.layerGroup().addTo(this.map);
    }
    if (this.map) {
      this.map.invalidateSize();
      this.drawMarkers();
    }
  }

  drawMarkers() {
    const L = window.L;
    this.markers.clearLayers();
    const points = [];
    for (const report of this.body?.reports || []) {
      if (!report.location) continue;
      const at = [report.location.lat, report.location.lon];
      points.push(at);
      const popup = el(
        "div",
        {},
        el("a", { href: `/opd/laporan/${encodeURIComponent(report.report_id)}`, text: report.report_id }),
        el("p", { text: `${statusLabel(report.status, report.status_label)} · ${categoryName(this.reference, report.category)}` }),
      );
      L.marker(at, { title: report.report_id, alt: report.report_id, keyboard: true }).bindPopup(popup).addTo(this.markers);
    }
    if (points.length) this.map.fitBounds(points, { maxZoom: 15, padding: [24, 24] });
  }

  liveState(state) {
    if (state === "open") document.body.dataset.live = "stream";
    else document.body.removeAttribute("data-live");
    byId("live-status").textContent = state === "open" ? t("live_on") : t("live_retrying");
  }

  changed(change) {
    if (change.change === "removed") {
      byId("report-list").querySelector(`li[data-report-id="${CSS.escape(change.report_id)}"]`)?.remove();
      if (this.body) this.body.reports = (this.body.reports || []).filter((r) => r.report_id !== change.report_id);
      this.announce(t("live_gone", { id: change.report_id }));
    } else if (change.change === "added") {
      this.announce(t("live_new", { id: change.report_id }));
    }
    // the counts and the order are the server's: ask again (changes close together are asked for once)
    clearTimeout(this.reloading);
    this.reloading = setTimeout(() => this.load(), 150);
  }

  announce(text) {
    const notice = byId("notice");
    notice.textContent = text;
    show(notice, true);
  }
}
