// One report: its photos (full size), description, location and area, category, history with every hop and note,
// deadline and escalation, nearby reports of the same category (possible duplicates), and the actions this OPD may
// take now (the API's allowed_transitions). Everything a citizen wrote goes in as text (textContent).
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { baseMap, showBoundaries } from "/shared/map.js";
import { shrink } from "/shared/photos.js";
import { formatTime, lang, reasonLabel, statusLabel, t } from "./i18n.js";
import { areaText, categoryName, deadlineBadge, verificationBadge } from "./shared-view.js";
import { duplicatesSection } from "./duplicates.js";

// the transitions in the order the form offers them; each with the fields it needs
const ACTIONS = ["dikerjakan", "selesai", "koordinasi", "disposisi", "ditolak"];
const FORWARDS = ["koordinasi", "disposisi"];

/** A refusal of the API in plain words (Indonesian or English), by its error code. */
export function refusalText(error) {
  if (error.status === 403 && /csrf/i.test(error.code)) return t("refused_csrf");
  if (error.code.startsWith("photo_")) return t("refused_photo");
  const key = `refused_${error.code}`;
  const text = t(key);
  return text === key ? t("refused_other", { message: error.message }) : text;
}

export class ReportScreen {
  constructor(reportId, { reference, session }) {
    this.reportId = reportId;
    this.reference = reference;
    this.session = session;
    this.report = null;
    this.evidence = null;
    this.handedOver = null;
    this.searchTimer = null;
  }

  async start() {
    byId("report-title").textContent = this.reportId;
    document.title = `${this.reportId} — JakLapor OPD`;
    show(byId("report-message"), false);
    clear(byId("report-body"));
    try {
      this.report = await api.report(this.reportId);
    } catch (error) {
      if (error.status === 401) return;
      const message = byId("report-message");
      message.textContent = error.status === 404 ? t("not_found") : t("load_failed");
      show(message, true);
      document.body.dataset.reportState = error.status === 404 ? "not-found" : "failed";
      return;
    }
    this.render();
    document.body.dataset.reportState = "shown";
  }

  stop() {
    clearTimeout(this.searchTimer);
    document.body.removeAttribute("data-report-state");
  }

  /** Drawn again (in the other language), keeping the action being written: its choice, note, reason, target and
   * the evidence photo already made smaller. */
  redraw() {
    const form = byId("action-form");
    const value = (selector) => form?.querySelector(selector)?.value || "";
    const target = form?.querySelector("#target-opd")?.selectedOptions[0];
    const draft = form && {
      action: form.querySelector("input[name=status]:checked")?.value,
      note: value("#action-note"),
      reason: value("#reject-reason"),
      search: value("#target-search"),
      target: target?.value ? { code: target.value, name: target.textContent } : null,
    };
    this.render();
    const again = byId("action-form");
    if (!draft || !again) return;
    const choice = draft.action && again.querySelector(`input[name=status][value="${CSS.escape(draft.action)}"]`);
    if (choice) choice.checked = true;
    again.querySelector("#action-note").value = draft.note;
    if (draft.reason) again.querySelector("#reject-reason").value = draft.reason;
    again.querySelector("#target-search").value = draft.search;
    if (draft.target) {
      again.querySelector("#target-opd").append(el("option", { value: draft.target.code, text: draft.target.name }));
      again.querySelector("#target-opd").value = draft.target.code;
    }
    if (this.evidence) {
      again.querySelector("#evidence-status").textContent = t("evidence_ready", { kb: Math.round(this.evidence.size / 1024) });
    }
    if (choice) this.chosen(again);
  }

  render() {
    if (!this.report) return;
    const report = this.report;
    document.body.dataset.reportStatus = report.status;
    const body = clear(byId("report-body"));
    const main = el("div", { class: "report-main" });
    const side = el("div", { class: "report-side" });
    body.append(main, side);

    // (through el: a section that is not there, null, is left out rather than written as text)
    main.append(
      ...[
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("status") }),
        el("dd", { id: "report-status", text: statusLabel(report.status, report.status_label) }),
        el("dt", { text: t("category") }),
        el("dd", { id: "report-category", text: categoryName(this.reference, report.category) }),
        el("dt", { text: t("area") }),
        el("dd", { id: "report-area", text: areaText(report.area) || t("no_value") }),
        el("dt", { text: t("submitted_at") }),
        el("dd", { text: formatTime(report.submitted_at) }),
        el("dt", { text: t("deadline") }),
        el("dd", { id: "report-deadline" }, deadlineBadge(report) || t("no_deadline")),
        ...(verificationBadge(report) ? [el("dt", { text: t("verification") }), el("dd", { id: "report-verification" }, verificationBadge(report))] : []),
        el("dt", { text: t("escalations") }),
        el("dd", { id: "report-escalations", text: report.escalations ? t("escalated_times", { n: report.escalations }) : "0" }),
        el("dt", { text: t("hop") }),
        el("dd", { text: String(report.hop ?? 0) }),
      ),
      el("h2", { text: t("description") }),
      el("p", { id: "report-description", class: "quote", text: report.description || "" }),
      this.photos("citizen_photos", "report-photos", report.photos || []),
      (report.evidence_photos || []).length ? this.photos("evidence_photos", "report-evidence", report.evidence_photos) : null,
      el("h2", { text: t("location") }),
      el("div", { id: "report-map", class: "map", role: "region", "aria-label": t("report_map_label") }),
      el("p", { class: "help", text: report.location ? `${report.location.lat.toFixed(5)}, ${report.location.lon.toFixed(5)}` : "" }),
      this.history(report.history || []),
      ].filter(Boolean),
    );
    side.append(this.actions(), duplicatesSection(this), this.nearby(report.nearby));
    this.drawMap();
  }

  photos(titleKey, id, urls) {
    return el(
      "section",
      { "aria-labelledby": `${id}-title` },
      el("h2", { id: `${id}-title`, text: t(titleKey) }),
      el(
        "ul",
        { id, class: "full-photos" },
        ...urls.map((url, index) =>
          el(
            "li",
            {},
            el(
              "a",
              { href: url, target: "_blank", rel: "noopener", "aria-label": t("open_full", { n: index + 1 }) },
              el("img", { src: url, alt: t("photo_alt", { n: index + 1, id: this.reportId }), loading: "lazy" }),
            ),
          ),
        ),
      ),
    );
  }

  drawMap() {
    const container = byId("report-map");
    if (!window.L || !this.report.location || !container) return;
    const { lat, lon } = this.report.location;
    const map = baseMap(container, this.reference.map);
    api.kelurahanBoundaries().then((geojson) => geojson && showBoundaries(map, geojson));
    window.L.marker([lat, lon], { title: this.reportId, alt: this.reportId, keyboard: false }).addTo(map);
    for (const other of this.report.nearby || []) {
      if (other.location) {
        window.L.circleMarker([other.location.lat, other.location.lon], { radius: 6, color: "#a4001d" }).addTo(map);
      }
    }
    map.setView([lat, lon], 16);
  }

  history(entries) {
    const item = (entry) => {
      const who = [
        entry.actor_opd ? t("by_opd", { opd: entry.actor_opd }) : "",
        entry.from_opd ? t("from_opd", { opd: entry.from_opd }) : "",
        entry.opd ? t("to_opd", { opd: entry.opd.name || entry.opd.code }) : "",
      ].filter(Boolean);
      const reason = entry.reason && this.reference.rejectionReasons.find((r) => r.code === entry.reason);
      return el(
        "li",
        { "data-status": entry.status, "data-kind": entry.kind },
        el("p", {}, el("strong", { text: statusLabel(entry.status, entry.status_label) }), ` · ${formatTime(entry.at)}`),
        who.length ? el("p", { class: "help", text: who.join(" · ") }) : null,
        entry.note ? el("p", { class: "quote", text: entry.note }) : null,
        entry.reason ? el("p", { text: t("reason_is", { reason: reason ? reasonLabel(reason, lang()) : entry.reason }) }) : null,
        entry.missed_deadline ? el("p", { class: "help", text: t("missed_deadline", { when: formatTime(entry.missed_deadline) }) }) : null,
        ...(entry.photos || []).map((url, index) =>
          el("a", { href: url, target: "_blank", rel: "noopener" }, el("img", { src: url, class: "thumb", alt: t("photo_alt", { n: index + 1, id: this.reportId }) })),
        ),
      );
    };
    return el(
      "section",
      { "aria-labelledby": "history-title" },
      el("h2", { id: "history-title", text: t("history") }),
      el("ol", { id: "report-history", class: "history" }, ...entries.map(item)),
    );
  }

  nearby(reports) {
    const section = el("section", { id: "nearby", class: "nearby", "aria-labelledby": "nearby-title" }, el("h2", { id: "nearby-title", text: t("nearby_title") }));
    if (!reports || reports.length === 0) {
      section.append(el("p", { class: "help", text: t("nearby_none") }));
      return section;
    }
    section.append(
      el(
        "ul",
        { id: "nearby-list", class: "cards" },
        ...reports.map((other) =>
          el(
            "li",
            { class: "card", "data-report-id": other.report_id },
            el(
              "p",
              { class: "card-title" },
              other.report_id,
              ` · ${statusLabel(other.status, other.status_label)}`,
              other.distance_m !== undefined ? ` · ${t("meters", { n: Math.round(other.distance_m) })}` : "",
            ),
            el("p", { class: "quote clamp", text: other.description || "" }),
            el("p", { class: "help", text: formatTime(other.submitted_at) }),
          ),
        ),
      ),
    );
    return section;
  }

  // ---- acting ------------------------------------------------------------------------------------------------

  allowed() {
    const allowed = this.report.allowed_transitions;
    return Array.isArray(allowed) ? ACTIONS.filter((a) => allowed.includes(a)) : ACTIONS;
  }

  actions() {
    const section = el("section", { id: "act", class: "act", "aria-labelledby": "act-title" }, el("h2", { id: "act-title", tabindex: "-1", text: t("act_title") }));
    if (this.handedOver) {
      section.append(el("p", { id: "action-result", class: "ok", role: "status", text: this.handedOver }));
      return section;
    }
    const allowed = this.allowed();
    if (allowed.length === 0) {
      section.append(el("p", { class: "help", text: t("act_none") }));
      return section;
    }
    const form = el("form", { id: "action-form", novalidate: true });
    const choices = el("fieldset", { class: "choices" }, el("legend", { text: t("act_choose") }));
    for (const action of allowed) {
      const id = `action-${action}`;
      choices.append(
        el(
          "div",
          { class: "choice" },
          el("input", { type: "radio", name: "status", id, value: action }),
          el("label", { for: id, text: t(`act_${action}`) }),
        ),
      );
    }
    const disposisi = this.report.disposisi_target;
    const reasons = this.reference.rejectionReasons;
    form.append(
      choices,
      el(
        "div",
        { id: "field-target", class: "field", hidden: true },
        el("label", { for: "target-search", text: t("target_search") }),
        el("input", { id: "target-search", type: "search", autocomplete: "off", "aria-controls": "target-opd" }),
        el("label", { for: "target-opd", text: t("target_opd") }),
        el("select", { id: "target-opd", name: "target_opd" }, el("option", { value: "", text: t("target_choose") })),
        el("p", { id: "target-status", class: "help", role: "status", "aria-live": "polite" }),
      ),
      el(
        "p",
        { id: "field-disposisi", class: "field", hidden: true },
        disposisi ? t("disposisi_to", { name: disposisi.name || disposisi.code }) : t("disposisi_unavailable"),
      ),
      el(
        "div",
        { id: "field-reason", class: "field", hidden: true },
        el("label", { for: "reject-reason", text: t("reason") }),
        el(
          "select",
          { id: "reject-reason", name: "reason" },
          el("option", { value: "", text: t("reason_choose") }),
          ...reasons.map((r) => el("option", { value: r.code, text: reasonLabel(r, lang()) })),
        ),
      ),
      el(
        "div",
        { id: "field-evidence", class: "field", hidden: true },
        el("label", { for: "evidence", text: t("evidence") }),
        el("input", { id: "evidence", type: "file", accept: "image/*", capture: "environment", "aria-describedby": "evidence-status" }),
        el("p", { id: "evidence-status", class: "help", role: "status", "aria-live": "polite", text: t("evidence_help") }),
      ),
      el(
        "div",
        { id: "field-note", class: "field" },
        el("label", { for: "action-note", id: "action-note-label", text: t("note") }),
        el("textarea", { id: "action-note", name: "note", rows: 3, maxlength: 2000, "aria-describedby": "note-help" }),
        el("p", { id: "note-help", class: "help", text: t("note_help") }),
      ),
      el("p", { id: "action-error", class: "error", role: "alert", hidden: true }),
      el("p", { id: "action-result", class: "ok", role: "status", "aria-live": "polite" }),
      el("button", { type: "submit", id: "action-submit", class: "button primary wide", text: t("submit_action") }),
    );
    choices.addEventListener("change", () => this.chosen(form));
    form.querySelector("#target-search").addEventListener("input", (event) => this.searchTargets(event.target.value));
    form.querySelector("#evidence").addEventListener("change", (event) => this.evidenceChosen(event.target.files[0]));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(form);
    });
    section.append(form);
    return section;
  }

  chosen(form) {
    const action = form.querySelector("input[name=status]:checked")?.value;
    show(form.querySelector("#field-target"), action === "koordinasi");
    show(form.querySelector("#field-disposisi"), action === "disposisi");
    show(form.querySelector("#field-reason"), action === "ditolak");
    show(form.querySelector("#field-evidence"), action === "selesai");
    form.querySelector("#action-note-label").textContent = action === "dikerjakan" ? t("note_optional") : t("note");
    if (action === "koordinasi" && form.querySelector("#target-opd").options.length <= 1) this.searchTargets("");
  }

  searchTargets(text) {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(async () => {
      const select = byId("target-opd");
      const status = byId("target-status");
      let found = [];
      try {
        found = (await api.directory(text.trim())).filter((opd) => opd.code !== this.session.opd.code);
      } catch (error) {
        status.textContent = error.status === 401 ? "" : t("load_failed");
        return;
      }
      const chosen = select.value;
      clear(select).append(el("option", { value: "", text: t("target_choose") }));
      for (const opd of found) select.append(el("option", { value: opd.code, text: opd.name, selected: opd.code === chosen }));
      if (found.length === 1) select.value = found[0].code;
      status.textContent = found.length ? "" : t("target_none");
      select.dataset.loaded = String(found.length);
    }, 200);
  }

  async evidenceChosen(file) {
    const status = byId("evidence-status");
    this.evidence = null;
    if (!file) return;
    try {
      this.evidence = await shrink(file);
      status.textContent = t("evidence_ready", { kb: Math.round(this.evidence.size / 1024) });
      byId("evidence").dataset.size = String(this.evidence.size);
    } catch {
      status.textContent = t("evidence_unreadable");
    }
  }

  async send(form) {
    const action = form.querySelector("input[name=status]:checked")?.value;
    const note = byId("action-note").value.trim();
    const error = byId("action-error");
    const fail = (text, focus) => {
      error.textContent = text;
      show(error, true);
      focus?.focus();
    };
    show(error, false);
    if (!action) return fail(t("act_choose"), form.querySelector("input[name=status]"));
    const fields = { status: action, note };
    if (action === "koordinasi") {
      fields.target_opd = byId("target-opd").value;
      if (!fields.target_opd) return fail(t("need_target"), byId("target-search"));
    }
    if (action === "disposisi" && this.report.disposisi_target) fields.target_opd = this.report.disposisi_target.code;
    if (action === "ditolak") {
      fields.reason = byId("reject-reason").value;
      if (!fields.reason) return fail(t("need_reason"), byId("reject-reason"));
    }
    if (action === "selesai" && !this.evidence) return fail(t("need_evidence"), byId("evidence"));
    if (action !== "dikerjakan" && !note) return fail(t("need_note"), byId("action-note"));

    const button = byId("action-submit");
    button.disabled = true;
    button.textContent = t("sending");
    try {
      const updated = await api.transition(this.reportId, fields, action === "selesai" ? this.evidence : null);
      this.evidence = null;
      if (FORWARDS.includes(action)) {
        const target = action === "koordinasi" ? byId("target-opd").selectedOptions[0]?.textContent : this.report.disposisi_target?.name;
        this.handedOver = t("done_forwarded", { opd: target || fields.target_opd || "" });
        this.report = { ...this.report, ...updated, allowed_transitions: [] };
      } else {
        this.report = await api.report(this.reportId).catch(() => ({ ...this.report, ...updated }));
      }
      this.render();
      const result = byId("action-result");
      if (!this.handedOver) result.textContent = t("done_status", { status: statusLabel(this.report.status, this.report.status_label) });
      byId("act-title").focus();
    } catch (refused) {
      if (refused.status === 401) return;
      button.disabled = false;
      button.textContent = t("submit_action");
      fail(refused instanceof api.Refused ? refusalText(refused) : t("load_failed"));
    }
  }
}
