// Duplicates on the report screen: how many citizens support the report, the reports merged into it, routing's
// suggested duplicates and the open reports nearby, "Gabungkan ke laporan lain" (the primary chosen from those or
// typed as a number) and, on a merged report, unmerge. Every report text goes in as text (textContent).
import * as api from "./api.js";
import { el, show } from "/shared/dom.js";
import { formatTime, statusLabel, t } from "./i18n.js";

const REPORT_NUMBER = /^JK-\d{8}-\d{6}$/;

/** The duplicates section of `screen` (a ReportScreen): redrawn with the report after a merge or unmerge. */
export function duplicatesSection(screen) {
  const report = screen.report;
  const section = el(
    "section",
    { id: "duplicates", class: "act duplicates", "aria-labelledby": "duplicates-title" },
    el("h2", { id: "duplicates-title", tabindex: "-1", text: t("dup_title") }),
    el("p", { id: "report-supporters", text: t("dup_supporters", { n: report.supporters || 0 }) }),
  );
  const result = el("p", { id: "merge-result", class: "ok", role: "status", "aria-live": "polite" });
  const error = el("p", { id: "merge-error", class: "error", role: "alert", hidden: true });
  if (report.merged_into) {
    section.append(el("p", { id: "report-merged", class: "notice-inline", text: t("dup_merged_into", { id: report.merged_into }) }));
    if (report.may_unmerge) section.append(unmergeButton(screen, result, error));
    section.append(error, result);
    return section;
  }
  if ((report.merged_reports || []).length) {
    section.append(el("h3", { text: t("dup_merged_here") }), cards("merged-reports", report.merged_reports));
  }
  const suggested = report.possible_duplicates || [];
  section.append(el("h3", { text: t("dup_suggested") }));
  section.append(suggested.length ? cards("suggested-list", suggested) : el("p", { class: "help", text: t("dup_suggested_none") }));
  if (report.may_merge) section.append(mergeForm(screen, [...suggested, ...(report.nearby || [])], result, error));
  section.append(error, result);
  return section;
}

function cards(id, reports) {
  return el(
    "ul",
    { id, class: "cards" },
    ...reports.map((other) =>
      el(
        "li",
        { class: "card", "data-report-id": other.report_id },
        el("p", { class: "card-title" }, el("a", { href: `/opd/laporan/${encodeURIComponent(other.report_id)}`, text: other.report_id }), ` · ${statusLabel(other.status, other.status_label)}`),
        el("p", { class: "quote clamp", text: other.description || "" }),
        el("p", { class: "help", text: `${formatTime(other.submitted_at)} · ${t("dup_supporters", { n: other.supporters || 0 })}` }),
      ),
    ),
  );
}

function mergeForm(screen, candidates, result, error) {
  const seen = new Set();
  const options = candidates.filter((c) => c.report_id !== screen.reportId && !seen.has(c.report_id) && seen.add(c.report_id));
  const form = el(
    "form",
    { id: "merge-form", novalidate: true },
    el("h3", { text: t("dup_merge_title") }),
    el("p", { class: "help", text: t("dup_merge_help") }),
    el("label", { for: "merge-choice", text: t("dup_merge_choose") }),
    el(
      "select",
      { id: "merge-choice" },
      el("option", { value: "", text: t("dup_merge_choose_none") }),
      ...options.map((c) => el("option", { value: c.report_id, text: `${c.report_id} — ${(c.description || "").slice(0, 60)}` })),
    ),
    el("label", { for: "merge-primary", text: t("dup_merge_number") }),
    el("input", { id: "merge-primary", type: "text", inputmode: "text", autocomplete: "off", placeholder: "JK-20261128-000042", pattern: REPORT_NUMBER.source }),
    el("label", { for: "merge-note", text: t("dup_merge_note") }),
    el("textarea", { id: "merge-note", rows: 2, maxlength: 2000 }),
    el("button", { type: "submit", id: "merge-submit", class: "button primary wide", text: t("dup_merge_submit") }),
  );
  form.querySelector("#merge-choice").addEventListener("change", (event) => {
    form.querySelector("#merge-primary").value = event.target.value;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const primary = form.querySelector("#merge-primary").value.trim().toUpperCase();
    show(error, false);
    if (!REPORT_NUMBER.test(primary)) {
      error.textContent = t("dup_need_primary");
      show(error, true);
      form.querySelector("#merge-primary").focus();
      return;
    }
    await act(screen, () => api.merge(screen.reportId, { primary_id: primary, note: form.querySelector("#merge-note").value.trim() }), "dup_done_merged", error, { id: primary });
  });
  return form;
}

function unmergeButton(screen, result, error) {
  const button = el("button", { type: "button", id: "unmerge-submit", class: "button wide", text: t("dup_unmerge") });
  button.addEventListener("click", () => act(screen, () => api.unmerge(screen.reportId), "dup_done_unmerged", error, {}));
  return button;
}

async function act(screen, call, doneKey, error, values) {
  try {
    const updated = await call();
    screen.report = { ...screen.report, ...updated };
    screen.render();
    document.getElementById("merge-result").textContent = t(doneKey, values);
    document.getElementById("duplicates-title").focus();
  } catch (refused) {
    if (refused.status === 401) return;
    const key = `dup_refused_${refused.code}`;
    const text = t(key);
    error.textContent = text === key ? t("refused_other", { message: refused.message || refused.code || "" }) : text;
    show(error, true);
  }
}
