// No signal, no loss: every submission is first kept in IndexedDB (fields, the resized photo blobs, its
// Idempotency-Key), then sent; it leaves the outbox only once the server filed it (2xx) or refused it for good (4xx
// other than 408 / 429). A network error or a 5xx keeps it, and it is sent again, with the same Idempotency-Key (so
// it is filed once), when the connection returns, when the app starts, and every RETRY_MS meanwhile.
import { submitReport } from "./api.js";

const DB_NAME = "jaklapor";
const STORE = "outbox";
const RETRY_MS = 30000;

let database = null;
const sending = new Set(); // keys being sent by this page, never twice at once
const filedListeners = [];
const changeListeners = [];

function open() {
  if (database) return database;
  database = new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return database;
}

async function transact(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result.result);
    tx.onerror = () => reject(tx.error);
  });
}

export function pending() {
  return transact("readonly", (store) => store.getAll());
}

function keep(submission) {
  return transact("readwrite", (store) => store.put(submission)).then(notifyChange);
}

function drop(key) {
  return transact("readwrite", (store) => store.delete(key)).then(notifyChange);
}

function notifyChange() {
  for (const listener of changeListeners) listener();
}

/** A new submission: {key (Idempotency-Key), fields, photos: [Blob], created_at, summary}. */
export function newSubmission(fields, photos, summary) {
  return { key: crypto.randomUUID(), fields, photos, created_at: new Date().toISOString(), summary };
}

const RETRYABLE = (status) => status >= 500 || status === 408 || status === 429;

/**
 * Keep the submission, then try to send it. Resolves with
 * {outcome: "filed", receipt} | {outcome: "kept"} | {outcome: "refused", error}.
 */
export async function send(submission, onProgress) {
  await keep(submission);
  return attempt(submission, onProgress);
}

async function attempt(submission, onProgress) {
  if (sending.has(submission.key)) return { outcome: "kept" };
  sending.add(submission.key);
  try {
    if (!navigator.onLine) return { outcome: "kept" };
    const { status, body } = await submitReport(submission, onProgress);
    if (status >= 200 && status < 300) {
      await drop(submission.key);
      for (const listener of filedListeners) listener(submission, body);
      return { outcome: "filed", receipt: body };
    }
    if (RETRYABLE(status)) return { outcome: "kept" };
    await drop(submission.key);
    return { outcome: "refused", error: (body && body.error) || { message: `HTTP ${status}` } };
  } catch {
    return { outcome: "kept" };
  } finally {
    sending.delete(submission.key);
  }
}

/** Send everything still kept (oldest first). */
export async function flush() {
  if (!navigator.onLine) return;
  const waiting = (await pending()).sort((a, b) => a.created_at.localeCompare(b.created_at));
  for (const submission of waiting) await attempt(submission);
}

export function onFiled(listener) {
  filedListeners.push(listener);
}

export function onChange(listener) {
  changeListeners.push(listener);
}

export function startRetrying() {
  window.addEventListener("online", () => flush());
  setInterval(() => flush(), RETRY_MS);
  flush();
}
