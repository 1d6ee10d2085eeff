// The citizen's word on "selesai" (tracking page, token holder only): within the window after the report became
// selesai, "Sudah beres" (confirm, with optional 1-5 stars) or "Belum beres, buka lagi" (a reason and an optional
// photo: the report goes back to the agency). Shows what the citizen did and how long the window stays open. Citizen
// text is only ever set as text (el → textContent).
import * as api from "./api.js";
import { el } from "/shared/dom.js";
import { shrink } from "/shared/photos.js";
import { formatTime, t } from "./i18n.js";

const DAY_MS = 86400000;
const HOUR_MS = 3600000;

function remaining(endsAt) {
  const left = new Date(endsAt).getTime() - Date.now();
  if (left <= 0) return null;
  if (left < DAY_MS) return t("feedback_left_hours", { n: Math.max(1, Math.ceil(left / HOUR_MS)) });
  return t("feedback_left_days", { n: Math.ceil(left / DAY_MS) });
}

function refusal(response) {
  const code = response.body?.error?.code || "";
  const known = t(`feedback_error_${code}`);
  return known === `feedback_error_${code}` ? t("feedback_error", { message: response.body?.error?.message || response.status }) : known;
}

/**
 * The feedback section for a tracking view (null when there is nothing to show). `onView(view)` gets the new view after
 * a confirmation or a reopen.
 */
export function feedbackSection(view, token, onView) {
  const feedback = view.citizen_feedback;
  if (!feedback || !token) return null;
  const section = el("section", { id: "feedback", class: "feedback", "aria-labelledby": "feedback-title" });
  const status = el("p", { id: "feedback-status", role: "status", "aria-live": "polite" });
  const lastReopen = (feedback.reopens || []).at(-1);

  if (feedback.confirmed) {
    const confirmed = feedback.confirmed;
    section.append(
      el("h2", { id: "feedback-title", text: t("feedback_title") }),
      el("p", { id: "feedback-confirmed", class: "ok", text: t("feedback_confirmed", { at: formatTime(confirmed.at) }) }),
      confirmed.rating ? el("p", { id: "feedback-rating", text: t("feedback_your_rating", { n: confirmed.rating }) }) : null,
      confirmed.comment ? el("p", { class: "quote", id: "feedback-comment", text: confirmed.comment }) : null,
    );
    return section;
  }
  if (view.status === "dikerjakan" && lastReopen) {
    section.append(
      el("h2", { id: "feedback-title", text: t("feedback_title") }),
      el("p", { id: "feedback-reopened", text: t("feedback_reopened", { at: formatTime(lastReopen.at) }) }),
      el("p", { class: "quote", id: "feedback-reason", text: lastReopen.reason }),
      feedback.work_deadline
        ? el("p", { id: "feedback-work-deadline", text: t("feedback_work_deadline", { at: formatTime(feedback.work_deadline) }) })
        : null,
    );
    return section;
  }
  if (view.status !== "selesai" || !feedback.window_ends_at) return null;
  section.append(el("h2", { id: "feedback-title", text: t("feedback_question") }));
  const left = remaining(feedback.window_ends_at);
  if (!feedback.can_confirm && !feedback.can_reopen) {
    section.append(el("p", { id: "feedback-closed", class: "help", text: t("feedback_closed", { at: formatTime(feedback.window_ends_at) }) }));
    return section;
  }
  section.append(
    el("p", {
      id: "feedback-window",
      class: "help",
      text: t("feedback_window", { at: formatTime(feedback.window_ends_at), left: left || "" }),
    }),
  );

  const confirmForm = buildConfirmForm(token, status, onView);
  const reopenForm = feedback.can_reopen ? buildReopenForm(token, status, onView) : null;
  const row = el("div", { class: "row" });
  const toggle = (button, form, other, otherButton) => {
    button.addEventListener("click", () => {
      const open = form.hidden;
      form.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (other) {
        other.hidden = true;
        otherButton.setAttribute("aria-expanded", "false");
      }
      if (open) form.querySelector("input, textarea")?.focus();
    });
  };
  const confirmButton = el("button", {
    type: "button",
    id: "feedback-confirm-open",
    class: "button primary",
    "aria-expanded": "false",
    "aria-controls": "feedback-confirm-form",
    text: t("feedback_confirm_button"),
  });
  row.append(confirmButton);
  let reopenButton = null;
  if (reopenForm) {
    reopenButton = el("button", {
      type: "button",
      id: "feedback-reopen-open",
      class: "button",
      "aria-expanded": "false",
      "aria-controls": "feedback-reopen-form",
      text: t("feedback_reopen_button"),
    });
    row.append(reopenButton);
    toggle(reopenButton, reopenForm, confirmForm, confirmButton);
  }
  toggle(confirmButton, confirmForm, reopenForm, reopenButton);
  section.append(row, confirmForm, reopenForm, status);
  return section;
}

function buildConfirmForm(token, status, onView) {
  const form = el("form", { id: "feedback-confirm-form", class: "feedback-form", hidden: true, novalidate: true });
  const stars = el("fieldset", { class: "stars", id: "feedback-stars" }, el("legend", { text: t("feedback_rating_legend") }));
  for (let n = 1; n <= 5; n += 1) {
    const id = `feedback-star-${n}`;
    stars.append(
      el(
        "span",
        { class: "star" },
        el("input", { type: "radio", name: "rating", value: String(n), id }),
        el("label", { for: id, text: t("feedback_star", { n }) }),
      ),
    );
  }
  const commentId = "feedback-comment-input";
  const submit = el("button", { type: "submit", class: "button primary", id: "feedback-confirm-send", text: t("feedback_confirm_send") });
  form.append(
    stars,
    el("label", { for: commentId, text: t("feedback_comment") }),
    el("textarea", { id: commentId, name: "comment", rows: "2", maxlength: "500" }),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = form.querySelector('input[name="rating"]:checked');
    const body = {};
    if (chosen) body.rating = Number(chosen.value);
    const comment = form.querySelector("textarea").value.trim();
    if (comment) body.comment = comment;
    await send(submit, status, () => api.confirmReport(token, body), onView);
  });
  return form;
}

function buildReopenForm(token, status, onView) {
  const form = el("form", { id: "feedback-reopen-form", class: "feedback-form", hidden: true, novalidate: true });
  const reasonId = "feedback-reason-input";
  const photoId = "feedback-photo-input";
  const reason = el("textarea", { id: reasonId, name: "reason", rows: "3", required: true, maxlength: "1000", "aria-describedby": "feedback-reason-help" });
  const photo = el("input", { type: "file", id: photoId, name: "photo", accept: "image/jpeg,image/png,image/webp" });
  const submit = el("button", { type: "submit", class: "button primary", id: "feedback-reopen-send", text: t("feedback_reopen_send") });
  form.append(
    el("label", { for: reasonId, text: t("feedback_reason") }),
    reason,
    el("p", { class: "help", id: "feedback-reason-help", text: t("feedback_reason_help") }),
    el("label", { for: photoId, text: t("feedback_photo") }),
    photo,
    submit,
  );
  // one key for this reopen, kept across retries of it (a lost answer is asked again, nothing happens twice)
  const key = crypto.randomUUID();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    if (text.length < 5) {
      reason.setAttribute("aria-invalid", "true");
      status.className = "error";
      status.textContent = t("feedback_reason_missing");
      reason.focus();
      return;
    }
    reason.removeAttribute("aria-invalid");
    const data = new FormData();
    data.append("reason", text);
    const file = photo.files && photo.files[0];
    if (file) {
      let blob = file;
      try {
        blob = await shrink(file);
      } catch {
        blob = file; // not decodable here: the server checks and cleans it anyway
      }
      data.append("photo", blob, "foto-belum-beres.jpg");
    }
    await send(submit, status, () => api.reopenReport(token, data, key), onView);
  });
  return form;
}

async function send(button, status, call, onView) {
  button.disabled = true;
  status.className = "";
  status.textContent = t("feedback_sending");
  try {
    const response = await call();
    if (response.status === 200 && response.body) {
      onView(response.body);
      return;
    }
    status.className = "error";
    status.textContent = refusal(response);
  } catch {
    status.className = "error";
    status.textContent = t("track_offline");
  } finally {
    button.disabled = false;
  }
}
