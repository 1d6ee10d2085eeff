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
  if (report.response_deadline) {
    return el("span", { class: "badge", text: t("deadline_in", { when: formatTime(report.response_deadline) }) });
  }
  return null;
}
