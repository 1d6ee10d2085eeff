// No signal, no loss: every submission is first kept in IndexedDB (fields, the resized photo blobs, its
// Idempotency-Key), then sent; it leaves the outbox only once the server filed it (2xx) or the person deletes it.
// A network error or a 5xx keeps it, and it is sent again, with the same Idempotency-Key (so it is filed once), when
// the connection returns, when the app starts, and every RETRY_MS meanwhile. A refusal for good (4xx other than
// 408 / 429) keeps it too, marked `refused` with the server's error: it is not sent again by itself, and "my
// reports" shows it with what went wrong, to edit and send again or to delete.
import { submitReport } from "./api.js";

const DB_NAME = "jaklapor";
const STORE = "outbox";
const RETRY_MS = 30000;

let database = null;
const sending = new Set(); // keys being sent by this page, never twice at once
const filedListeners = [];
const refusedListeners = [];
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

/** Everything kept on the device: waiting to be sent, and refused (those carry `refused: {status, code, message}`). */
export function pending() {
  return transact("readonly", (store) => store.getAll());
}

/** One kept submission by its key, or undefined. */
export function get(key) {
  return transact("readonly", (store) => store.get(key));
}

/** The person deletes a kept submission (a refused one, after confirming). */
export function discard(key) {
  return drop(key);
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
    const error = (body && body.error) || {};
    submission.refused = { status, code: error.code || "", field: error.field || "", message: error.message || `HTTP ${status}` };
    await keep(submission);
    for (const listener of refusedListeners) listener(submission);
    return { outcome: "refused", error: submission.refused };
  } catch {
    return { outcome: "kept" };
  } finally {
    sending.delete(submission.key);
  }
}

/** Send everything waiting (oldest first); a refused submission waits for the person. */
export async function flush() {
  if (!navigator.onLine) return;
  const waiting = (await pending()).filter((s) => !s.refused).sort((a, b) => a.created_at.localeCompare(b.created_at));
  for (const submission of waiting) await attempt(submission);
}

export function onFiled(listener) {
  filedListeners.push(listener);
}

export function onRefused(listener) {
  refusedListeners.push(listener);
}

export function onChange(listener) {
  changeListeners.push(listener);
}

export function startRetrying() {
  window.addEventListener("online", () => flush());
  setInterval(() => flush(), RETRY_MS);
  flush();
}
