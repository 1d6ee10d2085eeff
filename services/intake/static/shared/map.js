// Maps (vendored Leaflet, a classic script: window.L): the configured tiles when there are any, and the kelurahan
// boundaries drawn from the API, so a map is usable with no tile server at all.

/** A Leaflet map at the configured centre and zoom, with the configured tiles (if any). */
export function baseMap(container, config) {
  const L = window.L;
  const { lat, lon } = config.map_center;
  const map = L.map(container, { zoomControl: true, attributionControl: true }).setView([lat, lon], config.map_zoom);
  if (config.map_tile_url) {
    L.tileLayer(config.map_tile_url, { maxZoom: 19, attribution: config.map_tile_attribution }).addTo(map);
  }
  return map;
}

/** The kelurahan boundaries (GeoJSON) under everything else on the map. */
export function showBoundaries(map, geojson) {
  window.L.geoJSON(geojson, {
    style: { color: "#56718a", weight: 1, fillColor: "#e3ebf2", fillOpacity: 0.6 },
    interactive: false,
  }).addTo(map);
}
