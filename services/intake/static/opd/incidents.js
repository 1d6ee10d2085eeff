// Incidents (surges routing grouped: many reports of one category in one kecamatan): shown at the top of the work
// list with their member count, and a screen per incident (/opd/insiden/<id>) listing its members with one set of
// actions that moves every member (each report keeps its own history; refusals are listed per report).
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { shrink } from "/shared/photos.js";
import { addStrings, formatTime, statusLabel, t } from "./i18n.js";
import { refusalText } from "./report.js";
import { categoryName } from "./shared-view.js";

addStrings({
  id: {
    incidents_title: "Insiden",
    incidents_help: "Lonjakan laporan satu kategori di satu kecamatan, dikelompokkan otomatis.",
    incident: "Insiden",
    incident_title: "{category} di {kecamatan}",
    incident_members: "{n} laporan ({open} masih terbuka)",
    incident_since: "Dibuka {at}",
    incident_member_count: "Laporan anggota",
    incident_opened: "Dibuka",
    incident_member_list: "Laporan dalam insiden ini",
    incident_act: "Tindakan untuk semua laporan",
    incident_act_help: "Tindakan ini berlaku untuk setiap laporan insiden yang Anda pegang; warga melihatnya di laporan masing-masing.",
    incident_nothing: "Tidak ada tindakan yang dapat dilakukan untuk laporan-laporan ini sekarang.",
    incident_evidence_help: "Satu foto bukti untuk semua laporan yang diselesaikan.",
    incident_submit: "Kirim untuk {n} laporan",
    incident_done: "{moved} laporan diperbarui, {unchanged} sudah berstatus ini, {refused} ditolak.",
  },
  en: {
    incidents_title: "Incidents",
    incidents_help: "Surges of reports of one category in one kecamatan, grouped automatically.",
    incident: "Incident",
    incident_title: "{category} in {kecamatan}",
    incident_members: "{n} reports ({open} still open)",
    incident_since: "Opened {at}",
    incident_member_count: "Member reports",
    incident_opened: "Opened",
    incident_member_list: "Reports in this incident",
    incident_act: "Action for every report",
    incident_act_help: "This action applies to every report of the incident you hold; each citizen sees it on their own report.",
    incident_nothing: "Nothing can be done with these reports now.",
    incident_evidence_help: "One evidence photo for every report finished.",
    incident_submit: "Send for {n} reports",
    incident_done: "{moved} reports updated, {unchanged} already in this status, {refused} refused.",
  },
});

// what the incident screen offers (the API takes every transition of a report; a hand-over stays per report here)
const ACTIONS = ["dikerjakan", "selesai"];

function incidentTitle(reference, incident) {
  return t("incident_title", { category: categoryName(reference, incident.category), kecamatan: incident.kecamatan || "?" });
}

/** The incidents with open members, above the work list (nothing shown when there are none). */
export async function showIncidents(reference) {
  const box = byId("incident-list");
  let body;
  try {
    body = await api.incidents();
  } catch {
    show(box, false);
    return;
  }
  const open = (body.incidents || []).filter((incident) => incident.open_count > 0);
  const list = clear(byId("incident-items"));
  for (const incident of open) {
    list.append(
      el(
        "li",
        { class: "card incident-card", "data-incident-id": incident.incident_id },
        el("p", { class: "card-title" }, el("a", { href: `/opd/insiden/${encodeURIComponent(incident.incident_id)}`, text: incidentTitle(reference, incident) })),
        el("p", { class: "incident-count", text: t("incident_members", { n: incident.member_count, open: incident.open_count }) }),
        el("p", { class: "help", text: t("incident_since", { at: formatTime(incident.opened_at) }) }),
      ),
    );
  }
  show(box, open.length > 0);
}

export class IncidentScreen {
  constructor(incidentId, { reference }) {
    this.incidentId = incidentId;
    this.reference = reference;
    this.incident = null;
    this.evidence = null;
    this.outcome = null;
  }

  async start() {
    byId("incident-title").textContent = t("incident");
    show(byId("incident-message"), false);
    clear(byId("incident-body"));
    try {
      this.incident = await api.incident(this.incidentId);
    } catch (error) {
      if (error.status === 401) return;
      const message = byId("incident-message");
      message.textContent = error.status === 404 ? t("not_found") : t("load_failed");
      show(message, true);
      document.body.dataset.incidentState = "failed";
      return;
    }
    this.render();
    document.body.dataset.incidentState = "shown";
  }

  stop() {
    document.body.removeAttribute("data-incident-state");
  }

  render() {
    if (!this.incident) return;
    const incident = this.incident;
    byId("incident-title").textContent = incidentTitle(this.reference, incident);
    document.title = `${incidentTitle(this.reference, incident)} — JakLapor OPD`;
    const body = clear(byId("incident-body"));
    body.append(
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: t("category") }),
        el("dd", { text: categoryName(this.reference, incident.category) }),
        el("dt", { text: t("kecamatan") }),
        el("dd", { text: `${incident.kecamatan || "?"} (${incident.kota || "?"})` }),
        el("dt", { text: t("incident_member_count") }),
        el("dd", { id: "incident-count", text: t("incident_members", { n: incident.member_count, open: incident.open_count }) }),
        el("dt", { text: t("incident_opened") }),
        el("dd", { text: formatTime(incident.opened_at) }),
      ),
      this.actions(),
      el("h2", { id: "members-title", text: t("incident_member_list") }),
      el("ul", { id: "incident-members", class: "cards", "aria-labelledby": "members-title" }, ...incident.members.map((m) => this.member(m))),
    );
  }

  member(report) {
    const outcome = this.outcome?.get(report.report_id);
    return el(
      "li",
      { class: "card", "data-report-id": report.report_id, "data-status": report.status },
      el("p", { class: "card-title" }, el("a", { href: `/opd/laporan/${encodeURIComponent(report.report_id)}`, text: report.report_id })),
      el("p", { class: "status", text: statusLabel(report.status, report.status_label) }),
      el("p", { class: "clamp", text: report.description || "" }),
      el("p", { class: "help", text: `${report.area?.kelurahan || ""} · ${formatTime(report.submitted_at)}` }),
      outcome && outcome.outcome === "refused" ? el("p", { class: "error", text: refusalText({ status: 409, ...outcome.error }) }) : null,
    );
  }

  actions() {
    const allowed = ACTIONS.filter((action) => (this.incident.allowed_transitions || []).includes(action));
    const form = el("form", { id: "incident-form", class: "act", novalidate: true });
    form.append(el("h2", { id: "incident-act-title", tabindex: "-1", text: t("incident_act") }));
    form.append(el("p", { id: "incident-result", class: "ok", role: "status", "aria-live": "polite" }));
    if (!allowed.length) {
      form.append(el("p", { class: "help", text: t("incident_nothing") }));
      return form;
    }
    const choices = el("fieldset", { class: "choices" }, el("legend", { text: t("incident_act_help") }));
    for (const action of allowed) {
      const id = `incident-action-${action}`;
      const input = el("input", { type: "radio", name: "status", id, value: action });
      input.addEventListener("change", () => show(byId("incident-field-evidence"), action === "selesai"));
      choices.append(el("div", { class: "choice" }, input, el("label", { for: id, text: statusLabel(action) })));
    }
    const evidence = el("input", { id: "incident-evidence", type: "file", accept: "image/*", "aria-describedby": "incident-evidence-status" });
    evidence.addEventListener("change", () => this.evidenceChosen(evidence.files[0]));
    form.append(
      choices,
      el(
        "div",
        { id: "incident-field-evidence", class: "field", hidden: true },
        el("label", { for: "incident-evidence", text: t("evidence") }),
        evidence,
        el("p", { id: "incident-evidence-status", class: "help", role: "status", "aria-live": "polite", text: t("incident_evidence_help") }),
      ),
      el("label", { for: "incident-note", text: t("note") }),
      el("textarea", { id: "incident-note", name: "note", rows: "3", maxlength: "1000" }),
      el("p", { id: "incident-error", class: "error", role: "alert", hidden: true }),
      el("button", { type: "submit", id: "incident-submit", class: "button primary wide", text: t("incident_submit", { n: this.incident.open_count }) }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(form);
    });
    return form;
  }

  async evidenceChosen(file) {
    this.evidence = null;
    if (!file) return;
    try {
      this.evidence = await shrink(file);
      byId("incident-evidence-status").textContent = t("evidence_ready", { kb: Math.round(this.evidence.size / 1024) });
    } catch {
      byId("incident-evidence-status").textContent = t("evidence_unreadable");
    }
  }

  async send(form) {
    const action = form.querySelector("input[name=status]:checked")?.value;
    const note = byId("incident-note").value.trim();
    const error = byId("incident-error");
    const fail = (text, focus) => {
      error.textContent = text;
      show(error, true);
      focus?.focus();
    };
    show(error, false);
    if (!action) return fail(t("act_choose"), form.querySelector("input[name=status]"));
    if (action === "selesai" && !this.evidence) return fail(t("need_evidence"), byId("incident-evidence"));
    if (action !== "dikerjakan" && !note) return fail(t("need_note"), byId("incident-note"));
    const button = byId("incident-submit");
    button.disabled = true;
    button.textContent = t("sending");
    try {
      const result = await api.incidentTransition(this.incidentId, { status: action, note }, action === "selesai" ? this.evidence : null);
      this.evidence = null;
      this.outcome = new Map(result.members.map((m) => [m.report_id, m]));
      this.incident = await api.incident(this.incidentId).catch(() => this.incident);
      this.render();
      byId("incident-result").textContent = t("incident_done", { moved: result.moved, unchanged: result.unchanged, refused: result.refused });
      byId("incident-act-title").focus();
    } catch (refused) {
      if (refused.status === 401) return;
      button.disabled = false;
      button.textContent = t("incident_submit", { n: this.incident.open_count });
      fail(refused instanceof api.Refused ? refusalText(refused) : t("load_failed"));
    }
  }
}
