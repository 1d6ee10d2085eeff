// Indonesian first, English on request; the choice is remembered on the device (the language only: nothing else of
// an app's state is kept in browser storage). Each app registers its texts with addStrings.
const STORAGE_KEY = "jaklapor.lang";

// the English status labels (the API's status_label is Indonesian)
const STATUS_EN = {
  menunggu: "Waiting",
  koordinasi: "Coordination (handed to another agency)",
  disposisi: "Disposition (assigned to the agency's city office)",
  dikerjakan: "In progress",
  selesai: "Done",
  ditolak: "Rejected",
};

// labels the API gives beyond the six statuses' (the verification sub-state of dikerjakan), in English
const SERVER_LABELS_EN = {
  "Menunggu verifikasi": "Awaiting verification",
  "Verifikasi ditolak": "Verification refused",
};

const STRINGS = { id: {}, en: {} };

let current = localStorage.getItem(STORAGE_KEY) === "en" ? "en" : "id";
const listeners = [];

/** Add an app's texts: {id: {key: text}, en: {key: text}} */
export function addStrings(strings) {
  Object.assign(STRINGS.id, strings.id);
  Object.assign(STRINGS.en, strings.en);
}

export function lang() {
  return current;
}

export function t(key, values = {}) {
  const text = STRINGS[current][key] ?? STRINGS.id[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** A status's label: the API's (Indonesian), or the English one; the code capitalised where no label came along. */
export function statusLabel(code, serverLabel) {
  const fallback = code.charAt(0).toUpperCase() + code.slice(1);
  if (current === "en" && SERVER_LABELS_EN[serverLabel]) return SERVER_LABELS_EN[serverLabel];
  return current === "en" ? STATUS_EN[code] || serverLabel || fallback : serverLabel || fallback;
}

export function formatTime(iso) {
  if (!iso) return "";
  const locale = current === "en" ? "en-GB" : "id-ID";
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short", timeZone: "Asia/Jakarta" });
}

/** Texts of the static page: elements marked data-i18n (text) and data-i18n-aria (aria-label). */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = t("other_language");
  toggle.lang = current === "id" ? "en" : "id";
}

export function onLanguageChange(listener) {
  listeners.push(listener);
}

export function toggleLanguage() {
  current = current === "id" ? "en" : "id";
  localStorage.setItem(STORAGE_KEY, current);
  applyStatic();
  for (const listener of listeners) listener(current);
}
