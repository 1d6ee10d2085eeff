// The workbench's start: language, the session (the cookie; or the sign-in screen), and the screen for the path:
// /opd/ (the work list), /opd/laporan/<id> (one report), /opd/kinerja (this OPD's figures). Moving between screens
// stays in the page (history.pushState), so the CSRF token held in memory survives it.
import * as api from "./api.js";
import { byId, show } from "/shared/dom.js";
import { applyStatic, onLanguageChange, t, toggleLanguage } from "./i18n.js";
import { WorkList } from "./list.js";
import { PerformanceScreen } from "./performance.js";
import { ReportScreen } from "./report.js";
import { VerificationQueue } from "./verify.js";
import { IncidentScreen } from "./incidents.js";

const REPORT_PATH = /^\/opd\/laporan\/([^/]+)$/;
const INCIDENT_PATH = /^\/opd\/insiden\/([^/]+)$/;
let session = null;
let reference = null;
let current = null; // the screen showing: its stop() ends its stream

function screenFor(path) {
  // the city's verifier has one screen: the completions waiting for it (it holds no reports of its own)
  if (isVerifier()) return { view: "view-verify", make: () => new VerificationQueue(context()) };
  const report = REPORT_PATH.exec(path);
  if (report) return { view: "view-report", make: () => new ReportScreen(decodeURIComponent(report[1]), context()) };
  const incident = INCIDENT_PATH.exec(path);
  if (incident) return { view: "view-incident", make: () => new IncidentScreen(decodeURIComponent(incident[1]), context()) };
  if (path === "/opd/kinerja") return { view: "view-performance", make: () => new PerformanceScreen(context()) };
  return { view: "view-list", make: () => new WorkList(context()) };
}

function context() {
  return { session, reference, navigate };
}

function showView(id) {
  for (const view of document.querySelectorAll(".view")) show(view, view.id === id);
  document.body.dataset.view = id.replace("view-", "");
  for (const [link, view] of [[byId("nav-list"), "view-list"], [byId("nav-performance"), "view-performance"]]) {
    if (view === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function isVerifier() {
  return session?.opd?.level === "verifier";
}

function showSignedIn(signedIn) {
  show(byId("nav"), signedIn && !isVerifier());
  show(byId("sign-out"), signedIn);
  show(byId("who"), signedIn);
  byId("who").textContent = signedIn ? t("signed_in_as", { name: session.opd.name }) : "";
}

async function open(path, focus = true) {
  if (current) current.stop();
  current = null;
  if (!session) {
    showSignIn();
    return;
  }
  const screen = screenFor(path);
  showView(screen.view);
  current = screen.make();
  await current.start();
  if (focus) document.querySelector(`#${screen.view} h1`)?.focus();
}

/** Go to a workbench path without leaving the page. */
export function navigate(path) {
  history.pushState({}, "", path);
  open(path);
}

function showSignIn(message = "") {
  if (current) current.stop();
  current = null;
  session = null;
  showSignedIn(false);
  showView("view-signin");
  const notice = byId("signin-message");
  notice.textContent = message;
  show(notice, Boolean(message));
  byId("opd-key").value = "";
  byId("opd-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("opd-key");
  const error = byId("signin-error");
  const button = byId("signin-submit");
  const key = input.value.trim();
  show(error, false);
  input.removeAttribute("aria-invalid");
  if (!key) {
    error.textContent = t("need_key");
    show(error, true);
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  button.disabled = true;
  button.textContent = t("signing_in");
  try {
    session = await api.signIn(key);
    input.value = ""; // the key is not kept, not even in the field
    show(byId("signin-message"), false);
    showSignedIn(true);
    await open(window.location.pathname);
  } catch (refused) {
    error.textContent =
      refused.status === 429 ? t("slow_down") : refused.status === 401 || refused.status === 403 ? t("wrong_key") : t("load_failed");
    show(error, true);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } finally {
    button.disabled = false;
    button.textContent = t("sign_in");
  }
}

async function signOut() {
  try {
    await api.signOut();
  } catch {
    // the session is gone either way on this side; the server's ends with its expiry
  }
  showSignIn(t("signed_out"));
}

function followLinks(event) {
  const link = event.target.closest("a[href^='/opd/']");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
}

async function main() {
  applyStatic();
  byId("lang-toggle").addEventListener("click", toggleLanguage);
  onLanguageChange(() => {
    if (session) showSignedIn(true);
    if (current?.redraw) current.redraw();
    else current?.render?.();
  });
  byId("signin-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", signOut);
  document.addEventListener("click", followLinks);
  window.addEventListener("popstate", () => open(window.location.pathname));
  api.onSessionEnded(() => showSignIn(t("session_ended")));

  const [found, documents] = await Promise.all([api.currentSession().catch(() => null), api.reference()]);
  reference = documents;
  session = found;
  if (session) {
    showSignedIn(true);
    await open(window.location.pathname, false);
  } else {
    showSignIn();
  }
  document.body.dataset.state = "ready";
}

main();
