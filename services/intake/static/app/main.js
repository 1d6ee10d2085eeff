// The app's start: language, the screen for this path (/, /lacak, /laporan-saya), the outbox sending in the
// background, the service worker (the shell loads offline).
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { applyStatic, formatTime, statusLabel, t, toggleLanguage, onLanguageChange } from "./i18n.js";
import { forget, myReports, trackingHref } from "./mine.js";
import * as outbox from "./outbox.js";
import { recordFiled, ReportScreen } from "./report.js";
import { TrackScreen } from "./track.js";

const SCREENS = { "/": "view-report", "/lacak": "view-track", "/laporan-saya": "view-mine" };
// the submission whose "saved, will be sent" screen is showing: replaced by its confirmation once it is filed
let shownSubmissionKey = null;

function showScreen(id) {
  for (const view of document.querySelectorAll(".view")) show(view, view.id === id);
  for (const link of document.querySelectorAll("nav a")) {
    const current = SCREENS[new URL(link.href).pathname] === id;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function absoluteTrackingLink(receipt) {
  return new URL(`/lacak#${receipt.tracking_token}`, window.location.origin).href;
}

/** The screen after sending: "saved, will be sent" (kept in the outbox) or the confirmation (filed). */
function showSent(outcome, submission, receipt) {
  const title = byId("sent-title");
  const body = clear(byId("sent-body"));
  showScreen("view-sent");
  document.body.dataset.sent = outcome;
  if (outcome === "kept") {
    shownSubmissionKey = submission.key;
    title.textContent = t("saved_title");
    body.append(el("p", { id: "saved-message", text: t("saved_body") }));
  } else {
    shownSubmissionKey = null;
    const link = absoluteTrackingLink(receipt);
    title.textContent = t("sent_title");
    const copy = el("button", { type: "button", class: "button", id: "copy-link", text: t("copy") });
    const copied = el("p", { class: "help", role: "status", "aria-live": "polite" });
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(link);
      } catch {
        byId("tracking-link").select();
      }
      copied.textContent = t("copied");
    });
    const actions = el("div", { class: "row" }, copy);
    if (navigator.share) {
      const share = el("button", { type: "button", class: "button", text: t("share") });
      share.addEventListener("click", () => navigator.share({ title: receipt.report_id, url: link }).catch(() => {}));
      actions.append(share);
    }
    body.append(
      el("p", { class: "big" }, t("report_number"), ": ", el("strong", { id: "sent-number", text: receipt.report_id })),
      el("label", { for: "tracking-link", text: t("tracking_link") }),
      el("input", { id: "tracking-link", type: "text", readonly: true, value: link }),
      actions,
      copied,
      el("p", {}, el("a", { href: trackingHref({ token: receipt.tracking_token }), id: "open-tracking", text: t("open_tracking") })),
    );
  }
  title.focus();
}

function renderMine() {
  const list = clear(byId("mine-list"));
  const reports = myReports();
  if (reports.length === 0) list.append(el("li", { class: "help", text: t("mine_empty") }));
  for (const report of reports) {
    const remove = el("button", { type: "button", class: "link", text: t("remove") });
    remove.addEventListener("click", () => {
      forget(report.report_id);
      renderMine();
    });
    list.append(
      el(
        "li",
        { class: "card", "data-report-id": report.report_id },
        el("p", { class: "card-title" }, el("a", { href: trackingHref(report), text: report.report_id }), report.followed ? ` · ${t("followed")}` : "", report.status ? ` · ${statusLabel(report.status)}` : ""),
        el("p", { class: "quote", text: report.description || "" }),
        el("p", { class: "help", text: formatTime(report.submitted_at) }),
        remove,
      ),
    );
  }
  outbox.pending().then((waiting) => {
    for (const submission of waiting) {
      list.prepend(
        el("li", { class: "card pending" }, el("p", { class: "card-title", text: t("waiting_send") }), el("p", { class: "quote", text: submission.summary.description })),
      );
    }
  });
}

async function renderOutboxStatus(message) {
  const status = byId("outbox-status");
  const waiting = await outbox.pending().catch(() => []);
  const text = message || (waiting.length ? t("outbox_waiting", { n: waiting.length }) : "");
  status.textContent = text;
  show(status, Boolean(text));
}

async function main() {
  applyStatic();
  byId("lang-toggle").addEventListener("click", toggleLanguage);
  const path = window.location.pathname.replace(/\/$/, "") || "/";
  const screen = SCREENS[path] || "view-report";
  showScreen(screen);

  outbox.onFiled((submission, receipt) => {
    recordFiled(submission, receipt);
    if (shownSubmissionKey === submission.key) showSent("filed", submission, receipt);
    else renderOutboxStatus(t("outbox_sent", { id: receipt.report_id }));
    if (screen === "view-mine") renderMine();
  });
  outbox.onChange(() => renderOutboxStatus());
  renderOutboxStatus();

  if (screen === "view-report") {
    await new ReportScreen(api.appConfig(), showSent).start();
  } else if (screen === "view-track") {
    new TrackScreen().start();
  } else {
    renderMine();
    onLanguageChange(renderMine);
  }
  outbox.startRetrying();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  document.body.dataset.state = "ready";
}

main();
