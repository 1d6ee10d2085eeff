// The app's start: language, the screen for this path (/, /lacak, /laporan-saya), the outbox sending in the
// background, the service worker (the shell loads offline).
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { applyStatic, formatTime, refusalDetail, refusalReason, statusLabel, t, toggleLanguage, onLanguageChange } from "./i18n.js";
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

/** The report form reopened on a kept submission (the key in the fragment: it never reaches a server's logs). */
function editHref(submission) {
  return `/#ubah=${encodeURIComponent(submission.key)}`;
}

function absoluteTrackingLink(receipt) {
  return new URL(`/lacak#${receipt.tracking_token}`, window.location.origin).href;
}

/**
 * The screen after sending: "saved, will be sent" (kept in the outbox), the confirmation (filed), or, when a kept
 * report is refused on its automatic resend while this screen shows it, what went wrong.
 */
function showSent(outcome, submission, receipt) {
  const title = byId("sent-title");
  const body = clear(byId("sent-body"));
  showScreen("view-sent");
  document.body.dataset.sent = outcome;
  if (outcome === "kept") {
    shownSubmissionKey = submission.key;
    title.textContent = t("saved_title");
    body.append(el("p", { id: "saved-message", text: t("saved_body") }));
  } else if (outcome === "refused") {
    shownSubmissionKey = null;
    title.textContent = t("refused_screen_title");
    body.append(
      el("p", { id: "refused-reason", class: "error", text: refusalReason(submission.refused) }),
      el("p", { class: "help", text: refusalDetail(submission.refused) }),
      el("p", { class: "help", text: t("refused_help") }),
      el("div", { class: "row" }, el("a", { href: editHref(submission), class: "button", text: t("edit_resend") }), el("a", { href: "/laporan-saya", class: "button", text: t("nav_mine") })),
    );
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

let mineRenders = 0; // a newer rendering of "my reports" wins over one still reading the outbox

async function renderMine() {
  const rendering = ++mineRenders;
  const kept = await outbox.pending().catch(() => []);
  if (rendering !== mineRenders) return;
  const list = clear(byId("mine-list"));
  kept.sort((a, b) => b.created_at.localeCompare(a.created_at));
  for (const submission of kept) list.append(submission.refused ? refusedCard(submission) : waitingCard(submission));
  const reports = myReports();
  if (reports.length === 0 && kept.length === 0) list.append(el("li", { class: "help", text: t("mine_empty") }));
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
}

function waitingCard(submission) {
  return el(
    "li",
    { class: "card pending", "data-outbox-key": submission.key },
    el("p", { class: "card-title", text: t("waiting_send") }),
    el("p", { class: "quote", text: submission.summary.description }),
  );
}

/** A report the server refused: what went wrong, edit and send again, or delete (after confirming). */
function refusedCard(submission) {
  const card = el(
    "li",
    { class: "card refused", "data-outbox-key": submission.key, "data-refused-code": submission.refused.code },
    el("p", { class: "card-title", text: t("refused_title") }),
    el("p", { class: "quote", text: submission.summary.description }),
    el("p", { class: "error refusal-reason", text: refusalReason(submission.refused) }),
    el("p", { class: "help", text: refusalDetail(submission.refused) }),
    el("p", { class: "help", text: formatTime(submission.created_at) }),
  );
  const remove = el("button", { type: "button", class: "button delete", text: t("delete") });
  const actions = el("div", { class: "row" }, el("a", { href: editHref(submission), class: "button edit", text: t("edit_resend") }), remove);
  const yes = el("button", { type: "button", class: "button confirm-delete", text: t("delete_confirm") });
  const no = el("button", { type: "button", class: "button", text: t("cancel") });
  const question = el("p", { class: "error", text: t("delete_question") });
  const confirmation = el("div", { class: "confirm", role: "group", "aria-label": t("delete") }, question, el("div", { class: "row" }, yes, no));
  show(confirmation, false);
  remove.addEventListener("click", () => {
    show(actions, false);
    show(confirmation, true);
    no.focus();
  });
  no.addEventListener("click", () => {
    show(confirmation, false);
    show(actions, true);
    remove.focus();
  });
  yes.addEventListener("click", async () => {
    await outbox.discard(submission.key);
    await renderMine();
    renderOutboxStatus(t("deleted"));
    byId("mine-title").focus();
  });
  card.append(actions, confirmation);
  return card;
}

async function renderOutboxStatus(message) {
  const kept = await outbox.pending().catch(() => []);
  const waiting = kept.filter((submission) => !submission.refused).length;
  const refused = kept.length - waiting;
  const status = clear(byId("outbox-status"));
  const text = [message || (waiting ? t("outbox_waiting", { n: waiting }) : ""), refused ? t("outbox_refused", { n: refused }) : ""].filter(Boolean).join(" ");
  status.append(text);
  if (refused && window.location.pathname !== "/laporan-saya") status.append(" ", el("a", { href: "/laporan-saya", text: t("see_mine") }));
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
  outbox.onRefused((submission) => {
    if (shownSubmissionKey === submission.key) showSent("refused", submission);
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
  performance.mark("interactive"); // the screen usable (on /: the form, its categories listed); read by bench/
  document.body.dataset.state = "ready";
}

main();
