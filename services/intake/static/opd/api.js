// Every call the workbench makes, in one place. The session lives in an HttpOnly, SameSite=Strict cookie set by the
// server; the agency's key is sent once (POST /api/v1/opd/session) and never kept; the CSRF token that every
// state-changing call carries is held in this module's memory only (never in browser storage).
let csrfToken = null;
let sessionEndedListener = () => {};

/** An answer other than 2xx: the HTTP status and the API's error (code, message, field). */
export class Refused extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "";
    this.field = error?.field || "";
    this.detail = error || {};
  }
}

/** Called once a call answers 401: the session expired or was ended elsewhere. */
export function onSessionEnded(listener) {
  sessionEndedListener = listener;
}

async function call(method, path, { json, form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin", cache: "no-store" });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const refused = new Refused(response.status, payload?.error);
    if (response.status === 401 && path !== SESSION) {
      csrfToken = null;
      sessionEndedListener(refused);
    }
    throw refused;
  }
  return payload;
}

const SESSION = "/api/v1/opd/session";

function remember(session) {
  csrfToken = session.csrf_token || csrfToken;
  return { opd: session.opd, expires_at: session.expires_at };
}

/** Exchange the agency's key for a session (the cookie); {opd, expires_at}. Refused(401) for a wrong key. */
export async function signIn(key) {
  return remember(await call("POST", SESSION, { json: { key } }));
}

/** The session the cookie holds ({opd, expires_at}), or null when there is none. */
export async function currentSession() {
  try {
    return remember(await call("GET", SESSION));
  } catch (error) {
    if (error instanceof Refused && error.status === 401) return null;
    throw error;
  }
}

export async function signOut() {
  try {
    await call("DELETE", SESSION);
  } finally {
    csrfToken = null;
  }
}

/** This OPD's reports (overdue first, then by deadline) and its counts: {reports, counts: {by_status, overdue}}. */
export function workList(filters = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  const suffix = query.toString() ? `?${query}` : "";
  return call("GET", `/api/v1/opd/reports${suffix}`);
}

/** One report of this OPD's, with allowed_transitions, disposisi_target and nearby (possible duplicates). */
export function report(reportId) {
  return call("GET", `/api/v1/opd/reports/${encodeURIComponent(reportId)}`);
}

/** A transition: {status, note, target_opd, reason} and, for selesai, the evidence photo (a Blob). */
export function transition(reportId, fields, photo) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) if (value) form.append(name, value);
  if (photo) form.append("photo", photo, "bukti.jpg");
  return call("POST", `/api/v1/opd/reports/${encodeURIComponent(reportId)}/transitions`, { form });
}

/** OPDs whose name or code matches `text` (koordinasi's target): [{code, name, level, kota}] */
export async function directory(text) {
  const body = await call("GET", `/api/v1/opd/directory?q=${encodeURIComponent(text)}`);
  return body.opds || [];
}

/**
 * The live stream of this OPD's list: onReport({report_id, change: added | updated | removed, status, report}),
 * onCounts(counts), onState("open" | "retrying"). A session that ended closes it and tells onSessionEnded's listener.
 */
export function stream({ onReport, onCounts, onState }) {
  const source = new EventSource("/api/v1/opd/stream");
  const data = (event) => {
    try {
      return JSON.parse(event.data);
    } catch {
      return null; // a frame that is not JSON: ignored, the next list refresh shows the truth
    }
  };
  source.addEventListener("open", () => onState("open"));
  source.addEventListener("error", () => {
    onState("retrying");
    // refused (a 401 after the session ended elsewhere): the browser gives up; ask whether the session lives
    if (source.readyState === EventSource.CLOSED) {
      currentSession().then((session) => session || sessionEndedListener(new Refused(401, { code: "session_ended" })));
    }
  });
  source.addEventListener("report", (event) => {
    const change = data(event);
    if (change) onReport(change);
  });
  source.addEventListener("counts", (event) => {
    const counts = data(event);
    if (counts) onCounts(counts);
  });
  source.addEventListener("signed_out", () => {
    source.close();
    csrfToken = null;
    sessionEndedListener(new Refused(401, { code: "session_ended" }));
  });
  return source;
}

/** Categories, areas, boundaries, the map's settings, the stats URL and the rejection reasons (public documents). */
export async function reference() {
  const get = (path) => fetch(path, { headers: { Accept: "application/json" } }).then((r) => (r.ok ? r.json() : null));
  const [config, categories, areas] = await Promise.all([
    get("/api/v1/app-config").catch(() => null),
    get("/api/v1/categories").catch(() => null),
    get("/api/v1/areas").catch(() => null),
  ]);
  const map = config?.map || {};
  return {
    map: {
      map_tile_url: map.tile_url || "",
      map_tile_attribution: map.tile_attribution || "",
      map_center: map.center || { lat: -6.1754, lon: 106.8272 },
      map_zoom: map.zoom || 12,
    },
    statsUrl: config?.stats?.url || "",
    rejectionReasons: config?.rejection_reasons || [],
    categories: categories?.categories || [],
    areas: areas?.kota || [],
  };
}

export function kelurahanBoundaries() {
  return fetch("/api/v1/areas/kelurahan.geojson").then((r) => (r.ok ? r.json() : null)).catch(() => null);
}

/** This OPD's row of the public agency table (the statistics service, across origins): null when it has none. */
export async function performance(statsUrl, opdCode) {
  const response = await fetch(`${statsUrl}/api/v1/stats/agencies?opd=${encodeURIComponent(opdCode)}`, {
    headers: { Accept: "application/json" },
    credentials: "omit",
  });
  if (!response.ok) throw new Refused(response.status, null);
  const body = await response.json();
  const rows = [...(body.ranked || []), ...(body.unranked || [])];
  return { row: rows.find((row) => row.opd === opdCode) || null, generatedAt: body.generated_at, targetHours: body.target_hours };
}

// ---- duplicates (duplicates.js) ---------------------------------------------------------------------------------------

/** Merge this report into another ({primary_id, note}): the merged report's view. */
export function merge(reportId, fields) {
  return call("POST", `/api/v1/opd/reports/${encodeURIComponent(reportId)}/merge`, { json: fields });
}

/** Undo a merge: the report on its own course again. */
export function unmerge(reportId) {
  return call("POST", `/api/v1/opd/reports/${encodeURIComponent(reportId)}/unmerge`, { json: {} });
}

// ---- the city's verifier (services/intake/verifier_api.py) ----------------------------------------------------------

/** The completions of every OPD waiting for verification: {reports: [view with completion], count}. */
export function verificationQueue() {
  return call("GET", "/api/v1/verifier/reports");
}

export function approveCompletion(reportId) {
  return call("POST", `/api/v1/verifier/reports/${encodeURIComponent(reportId)}/approve`, { json: {} });
}

export function refuseCompletion(reportId, reason) {
  return call("POST", `/api/v1/verifier/reports/${encodeURIComponent(reportId)}/refuse`, { json: { reason } });
}

/** The incidents this OPD holds reports of (surges grouped by routing): {incidents: [{incident_id, category,
 * kecamatan, kota, member_count, open_count, by_status, opened_at, last_member_at}]} */
export function incidents() {
  return call("GET", "/api/v1/opd/incidents");
}

/** One incident with its members (work items, each with allowed_transitions) and allowed_transitions for all. */
export function incident(incidentId) {
  return call("GET", `/api/v1/opd/incidents/${encodeURIComponent(incidentId)}`);
}

/** One transition for every member: the body of a report's; {moved, unchanged, refused, members: [outcome]}. */
export function incidentTransition(incidentId, fields, photo) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) if (value) form.append(name, value);
  if (photo) form.append("photo", photo, "bukti.jpg");
  return call("POST", `/api/v1/opd/incidents/${encodeURIComponent(incidentId)}/transitions`, { form });
}
