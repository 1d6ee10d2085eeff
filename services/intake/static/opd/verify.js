// The city verifier's screen (Biro Pemerintahan, signed in with `jaklapor verifier-key`): the completions of every
// OPD waiting for verification, each with the citizen's photos, the OPD's evidence and note, the automatic verdict
// on each evidence photo, and approve / refuse-with-a-reason. Everything people wrote goes in as text.
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { addStrings, formatTime, lang, t } from "./i18n.js";
import { areaText, categoryName } from "./shared-view.js";

addStrings({
  id: {
    verify_title: "Verifikasi penyelesaian",
    verify_help: "Periksa tindak lanjut dan foto bukti OPD sebelum laporan ditutup. Tolak dengan alasan bila belum sesuai: laporan kembali ke OPD.",
    verify_reload: "Muat ulang",
    verify_none: "Tidak ada penyelesaian yang menunggu verifikasi.",
    verify_count: "{n} menunggu verifikasi",
    verify_by: "Dilaporkan selesai oleh {opd} · {when}",
    verify_round: "Penyelesaian ke-{n}",
    verify_opd_note: "Catatan OPD",
    verify_checks: "Pemeriksaan otomatis foto bukti",
    verify_match: "Cocok",
    verify_check_needed: "Perlu diperiksa",
    verify_no_evidence: "Tidak ada foto bukti.",
    verify_approve: "Setujui, tutup laporan",
    verify_refuse: "Tolak",
    verify_reason: "Alasan penolakan (dibaca OPD dan warga)",
    verify_need_reason: "Tulis alasan penolakan.",
    verify_approved: "Laporan {id} disetujui dan ditutup (selesai).",
    verify_refused_done: "Laporan {id} dikembalikan ke {opd}.",
    verification: "Verifikasi",
    verification_pending: "Menunggu verifikasi",
    verification_refused: "Verifikasi ditolak: {reason}",
    rework_by: "Selesaikan ulang sebelum {when}",
    rework_overdue: "Lewat batas pengerjaan ulang ({when})",
  },
  en: {
    verify_title: "Verify completions",
    verify_help: "Check the agency's follow-up and evidence before a report closes. Refuse with a reason if it is not right: the report goes back to the agency.",
    verify_reload: "Reload",
    verify_none: "No completion is waiting for verification.",
    verify_count: "{n} awaiting verification",
    verify_by: "Reported done by {opd} · {when}",
    verify_round: "Completion no. {n}",
    verify_opd_note: "The agency's note",
    verify_checks: "Automatic check of the evidence",
    verify_match: "Matches",
    verify_check_needed: "Needs a look",
    verify_no_evidence: "No evidence photo.",
    verify_approve: "Approve, close the report",
    verify_refuse: "Refuse",
    verify_reason: "Reason for refusing (read by the agency and the citizen)",
    verify_need_reason: "Write the reason for refusing.",
    verify_approved: "Report {id} approved and closed (done).",
    verify_refused_done: "Report {id} sent back to {opd}.",
    verification: "Verification",
    verification_pending: "Awaiting verification",
    verification_refused: "Verification refused: {reason}",
    rework_by: "Finish again by {when}",
    rework_overdue: "Rework deadline passed ({when})",
  },
});

export class VerificationQueue {
  constructor(context) {
    this.reference = context.reference;
    this.reports = null;
    this.results = [];
  }

  async start() {
    byId("verify-reload").onclick = () => this.load();
    await this.load();
  }

  stop() {}

  redraw() {
    this.render();
  }

  async load() {
    try {
      const body = await api.verificationQueue();
      this.reports = body.reports || [];
    } catch {
      this.reports = null;
    }
    this.render();
  }

  render() {
    const list = clear(byId("verify-list"));
    const summary = byId("verify-summary");
    if (this.reports === null) {
      summary.textContent = "";
      list.append(el("li", { class: "error", role: "alert", text: t("load_failed") }));
      return;
    }
    summary.textContent = this.reports.length ? t("verify_count", { n: this.reports.length }) : t("verify_none");
    for (const report of this.reports) list.append(this.card(report));
  }

  photos(title, urls, id, reportId) {
    if (!urls || urls.length === 0) return null;
    return el(
      "div",
      {},
      el("h3", { text: title }),
      el(
        "ul",
        { class: "full-photos verify-photos", id },
        ...urls.map((url, index) =>
          el(
            "li",
            {},
            el(
              "a",
              { href: url, target: "_blank", rel: "noopener", "aria-label": t("open_full", { n: index + 1 }) },
              el("img", { src: url, alt: `${title} ${index + 1} — ${reportId}`, loading: "lazy" }),
            ),
          ),
        ),
      ),
    );
  }

  card(report) {
    const id = report.report_id;
    const completion = report.completion || {};
    const key = id.replace(/[^A-Za-z0-9-]/g, "");
    const checks = el("ul", { class: "checks", id: `checks-${key}` });
    for (const check of completion.checks || []) {
      const text = (check.text && (check.text[lang()] || check.text.id)) || "";
      checks.append(
        el(
          "li",
          { class: check.matched ? "check ok-check" : "check warn-check", "data-matched": check.matched ? "true" : "false" },
          el("strong", { text: check.matched ? t("verify_match") : t("verify_check_needed") }),
          `: ${text}`,
        ),
      );
    }
    if (!(completion.checks || []).length) checks.append(el("li", { class: "help", text: t("verify_no_evidence") }));

    const result = el("p", { class: "ok", role: "status", id: `result-${key}` });
    const error = el("p", { class: "error", id: `reason-error-${key}`, hidden: true });
    const reason = el("textarea", {
      id: `reason-${key}`,
      name: "reason",
      rows: 2,
      maxlength: 1000,
      "aria-describedby": `reason-error-${key}`,
    });
    const approve = el("button", { type: "button", class: "button primary", id: `approve-${key}`, text: t("verify_approve") });
    const refuse = el("button", { type: "submit", class: "button", id: `refuse-${key}`, text: t("verify_refuse") });
    const form = el(
      "form",
      { class: "refuse-form", novalidate: true, "aria-label": `${t("verify_refuse")} ${id}` },
      el("label", { for: `reason-${key}`, text: t("verify_reason") }),
      reason,
      error,
      refuse,
    );
    const opdName = completion.opd?.name || completion.opd?.code || "";
    const item = el(
      "li",
      { class: "card verify-card", "data-report-id": id },
      el("h2", { class: "card-title" }, el("span", { text: id }), ` · ${categoryName(this.reference, report.category)}`),
      el("p", { class: "help", text: [areaText(report.area), t("verify_by", { opd: opdName, when: formatTime(completion.submitted_at) })].filter(Boolean).join(" · ") }),
      completion.round > 1 ? el("p", { class: "badge", text: t("verify_round", { n: completion.round }) }) : null,
      el("p", { class: "quote", text: report.description || "" }),
      el("h3", { text: t("verify_opd_note") }),
      el("p", { class: "opd-note", text: completion.note || "" }),
      el("h3", { text: t("verify_checks") }),
      checks,
      // side by side on a desk: the citizen's photo of the problem next to the agency's proof of the fix
      el(
        "div",
        { class: "compare" },
        this.photos(t("citizen_photos"), report.photos, `citizen-photos-${key}`, id),
        this.photos(t("evidence_photos"), completion.evidence_photos, `evidence-photos-${key}`, id),
      ),
      el("div", { class: "act verify-actions" }, approve, form),
      result,
    );

    const busy = (on) => {
      approve.disabled = on;
      refuse.disabled = on;
    };
    const done = (text) => {
      this.reports = this.reports.filter((r) => r.report_id !== id);
      this.results.push(text);
      this.render();
      byId("verify-summary").textContent = `${text} ${byId("verify-summary").textContent}`;
      byId("verify-title").focus();
    };
    approve.addEventListener("click", async () => {
      busy(true);
      try {
        await api.approveCompletion(id);
        done(t("verify_approved", { id }));
      } catch (refused) {
        result.className = "error";
        result.textContent = refused.message || t("load_failed");
        busy(false);
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = reason.value.trim();
      show(error, false);
      reason.removeAttribute("aria-invalid");
      if (!text) {
        error.textContent = t("verify_need_reason");
        show(error, true);
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
      busy(true);
      try {
        await api.refuseCompletion(id, text);
        done(t("verify_refused_done", { id, opd: opdName }));
      } catch (refused) {
        error.textContent = refused.message || t("load_failed");
        show(error, true);
        busy(false);
      }
    });
    return item;
  }
}
