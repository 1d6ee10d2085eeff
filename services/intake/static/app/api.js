// Every call the app makes to the API, in one place. Where a reference document cannot be had (an older server, no
// signal) the app falls back so that reporting still works.

export const DEFAULT_CONFIG = {
  description_max_chars: 2000,
  max_photos: 3,
  max_photo_bytes: 10 * 1024 * 1024,
  nearby_radius_m: 250, // the API's default radius (app-config), for when it cannot be asked
  map_tile_url: "",
  map_tile_attribution: "",
  map_center: { lat: -6.1754, lon: 106.8272 },
  map_zoom: 12,
};

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    const error = new Error(`${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/** The limits, the nearby radius and the map's settings (GET /api/v1/app-config); the defaults if unreachable. */
export async function appConfig() {
  try {
    const body = await getJson("/api/v1/app-config");
    const report = body.report || {};
    const map = body.map || {};
    return {
      description_max_chars: report.description_max_chars ?? DEFAULT_CONFIG.description_max_chars,
      max_photos: report.max_photos ?? DEFAULT_CONFIG.max_photos,
      max_photo_bytes: report.max_photo_bytes ?? DEFAULT_CONFIG.max_photo_bytes,
      nearby_radius_m: body.nearby?.default_radius_m ?? DEFAULT_CONFIG.nearby_radius_m,
      map_tile_url: map.tile_url || "",
      map_tile_attribution: map.tile_attribution || "",
      map_center: map.center || DEFAULT_CONFIG.map_center,
      map_zoom: map.zoom || DEFAULT_CONFIG.map_zoom,
    };
  } catch {
    return { ...DEFAULT_CONFIG };
  }
}

/** The categories in the order of their groups, each with `group` (Indonesian) and `group_en`. */
export async function categories() {
  const body = await getJson("/api/v1/categories");
  const groups = new Map((body.groups || []).map((group, index) => [group.name, { index, en: group.name_en }]));
  const order = (category) => groups.get(category.group)?.index ?? groups.size;
  return body.categories
    .map((c) => ({ ...c, group: c.group || "", group_en: groups.get(c.group)?.en || c.group || "" }))
    .sort((a, b) => order(a) - order(b));
}

/** kota → kecamatan → kelurahan, each kelurahan with code, name, lat, lon (a point inside it); null if unavailable */
export async function areas() {
  try {
    const body = await getJson("/api/v1/areas");
    return body.kota.map((kota) => ({
      name: kota.name,
      code: kota.code,
      kecamatan: (kota.kecamatan || []).map((kecamatan) => ({
        name: kecamatan.name,
        code: kecamatan.code,
        kelurahan: (kecamatan.kelurahan || []).map((k) => ({
          name: k.name,
          code: k.code,
          lat: k.point.lat,
          lon: k.point.lon,
        })),
      })),
    }));
  } catch {
    return null;
  }
}

/** the simplified kelurahan boundaries (GeoJSON), drawn over the tiles or alone; null when not available */
export async function kelurahanBoundaries() {
  try {
    return await getJson("/api/v1/areas/kelurahan.geojson");
  } catch {
    return null;
  }
}

/** open reports near a point (public fields), nearest first; [] when they cannot be had */
export async function nearby(lat, lon, category, radiusM = DEFAULT_CONFIG.nearby_radius_m) {
  const query = new URLSearchParams({ lat: String(lat), lon: String(lon), radius_m: String(radiusM) });
  if (category) query.set("category", category);
  try {
    const body = await getJson(`/api/v1/reports/nearby?${query}`);
    return body.reports || [];
  } catch {
    return [];
  }
}

/** a report by its tracking token (the citizen's own) */
export function reportByToken(token) {
  return getJson(`/api/v1/reports/${encodeURIComponent(token)}`);
}

/** the public view of a report by its number (a followed report) */
export function reportById(reportId) {
  return getJson(`/api/v1/reports/public/${encodeURIComponent(reportId)}`);
}

/**
 * Send a submission (fields, photo blobs, Idempotency-Key) with upload progress. Resolves with
 * {status, body}; rejects with {network: true} when the request did not get an answer.
 */
export function submitReport(submission, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(submission.fields)) {
      if (value !== "" && value !== null && value !== undefined) form.append(name, String(value));
    }
    submission.photos.forEach((blob, index) => form.append("photo", blob, `foto-${index + 1}.jpg`));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/reports");
    xhr.setRequestHeader("Idempotency-Key", submission.key);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.timeout = 120000;
    if (onProgress) {
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
    }
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      resolve({ status: xhr.status, body });
    };
    const failed = () => reject({ network: true });
    xhr.onerror = failed;
    xhr.ontimeout = failed;
    xhr.onabort = failed;
    xhr.send(form);
  });
}

async function postForAnswer(path, init) {
  const response = await fetch(path, { method: "POST", ...init, headers: { Accept: "application/json", ...(init.headers || {}) } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

/** the citizen confirms their selesai report is fixed ({rating?, comment?}); resolves with {status, body} */
export function confirmReport(token, fields) {
  return postForAnswer(`/api/v1/reports/${encodeURIComponent(token)}/confirm`, {
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
}

/** the citizen reopens their selesai report (FormData: reason, photo?), one Idempotency-Key per reopen */
export function reopenReport(token, form, key) {
  return postForAnswer(`/api/v1/reports/${encodeURIComponent(token)}/reopen`, { headers: { "Idempotency-Key": key }, body: form });
}

// ---- duplicates: support a report instead of filing it again ---------------------------------------------------------

const SUPPORTER_KEY = "jaklapor.supporter_key";

/** this device's own random key: the server counts a device once per report (it keeps only a hash of it) */
function supporterKey() {
  let key = localStorage.getItem(SUPPORTER_KEY);
  if (!key) {
    key = crypto.randomUUID();
    localStorage.setItem(SUPPORTER_KEY, key);
  }
  return key;
}

/** Support an open report ({report_id, supporters, counted}); rejects with {status, code} when refused. */
export async function supportReport(reportId, contact) {
  const response = await fetch(`/api/v1/reports/public/${encodeURIComponent(reportId)}/supporters`, {
    method: "POST",
    headers: { "Idempotency-Key": supporterKey(), "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(contact ? { contact } : {}),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw { status: response.status, code: body?.error?.code };
  return body;
}
