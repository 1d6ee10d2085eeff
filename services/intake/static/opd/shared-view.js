// Small pieces of a report's rendering used by the list and the report screen.
import { el } from "/shared/dom.js";
import { formatTime, lang, t } from "./i18n.js";

export const STATUSES = ["menunggu", "koordinasi", "disposisi", "dikerjakan", "selesai", "ditolak"];

export function categoryName(reference, code) {
  const category = reference.categories.find((c) => c.code === code);
  if (!category) return code;
  return lang() === "en" ? category.name_en || category.name : category.name;
}

export function areaText(area) {
  if (!area) return "";
  return [area.kelurahan, area.kecamatan, area.kota].filter(Boolean).join(", ");
}

/** The deadline line: overdue, due at, or none (answered). */
export function deadlineBadge(report) {
  if (report.overdue) return el("span", { class: "badge overdue", text: t("overdue") });
  if (report.work_deadline) {
    // sent back to this OPD (the verifier refused its completion): finish again by then
    const late = new Date(report.work_deadline) < new Date();
    return el("span", { class: `badge${late ? " overdue" : ""}`, text: t(late ? "rework_overdue" : "rework_by", { when: formatTime(report.work_deadline) }) });
  }
  if (report.response_deadline) {
    return el("span", { class: "badge", text: t("deadline_in", { when: formatTime(report.response_deadline) }) });
  }
  return null;
}

/** The verification sub-state: waiting for the city's verifier, or refused with its reason; null otherwise. */
export function verificationBadge(report) {
  if (report.pending_verification) return el("span", { class: "badge pending", text: t("verification_pending") });
  const verification = report.verification;
  if (report.status === "dikerjakan" && verification?.state === "refused") {
    return el("span", { class: "badge refused", text: t("verification_refused", { reason: verification.reason || "" }) });
  }
  return null;
}
