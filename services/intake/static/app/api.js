// Every call the app makes to the API, in one place. The endpoints marked "new" come with the citizen app (issue 15);
// where one is missing (an older server) the app falls back so that reporting still works.

export const DEFAULT_CONFIG = {
  description_max_chars: 2000,
  max_photos: 3,
  max_photo_bytes: 10 * 1024 * 1024,
  map_tile_url: "",
  map_tile_attribution: "",
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

/** new: the limits and the map tiles; the defaults when the server does not have the endpoint */
export async function appConfig() {
  try {
    const body = await getJson("/api/v1/app-config");
    const limits = body.limits || body;
    return {
      description_max_chars: limits.description_max_chars ?? limits.description_max ?? DEFAULT_CONFIG.description_max_chars,
      max_photos: limits.max_photos ?? DEFAULT_CONFIG.max_photos,
      max_photo_bytes: limits.max_photo_bytes ?? limits.photo_max_bytes ?? DEFAULT_CONFIG.max_photo_bytes,
      map_tile_url: body.map_tile_url ?? body.map?.tile_url ?? "",
      map_tile_attribution: body.map_tile_attribution ?? body.map?.tile_attribution ?? "",
    };
  } catch {
    return { ...DEFAULT_CONFIG };
  }
}

/** the categories, each with `group` (new; "" when the server does not give one) */
export async function categories() {
  const body = await getJson("/api/v1/categories");
  return body.categories.map((c) => ({ ...c, group: c.group || "" }));
}

/** new: kota → kecamatan → kelurahan, each kelurahan with code, name, lat, lon; null when not available */
export async function areas() {
  try {
    const body = await getJson("/api/v1/areas");
    const kotas = body.kota || body.kotas || body.areas || [];
    return kotas.map((kota) => ({
      name: kota.name,
      code: kota.code,
      kecamatan: (kota.kecamatan || []).map((kecamatan) => ({
        name: kecamatan.name,
        code: kecamatan.code,
        kelurahan: (kecamatan.kelurahan || []).map((k) => ({
          name: k.name,
          code: k.code,
          lat: k.lat ?? k.point?.lat,
          lon: k.lon ?? k.point?.lon,
        })),
      })),
    }));
  } catch {
    return null;
  }
}

/** new: the simplified kelurahan boundaries (GeoJSON), drawn when there are no tiles; null when not available */
export async function kelurahanBoundaries() {
  try {
    return await getJson("/api/v1/areas/kelurahan.geojson");
  } catch {
    return null;
  }
}

/** new: open reports near a point (public fields); [] when the server does not have the endpoint */
export async function nearby(lat, lon, category, radiusM = 500) {
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

/** new: the public view of a report by its number (a followed report) */
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
