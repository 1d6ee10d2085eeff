// The map (vendored Leaflet, a classic script: window.L): the configured tiles when there are any, and the kelurahan
// boundaries drawn from the API, so the map is usable with no tile server at all. One draggable pin.
export function createMap(container, config, onPinMoved) {
  const L = window.L;
  const { lat, lon } = config.map_center;
  const map = L.map(container, { zoomControl: true, attributionControl: true }).setView([lat, lon], config.map_zoom);
  if (config.map_tile_url) {
    L.tileLayer(config.map_tile_url, { maxZoom: 19, attribution: config.map_tile_attribution }).addTo(map);
  }
  let pin = null;

  function place(lat, lon, zoom) {
    if (!pin) {
      pin = L.marker([lat, lon], { draggable: true, keyboard: true, title: "Penanda lokasi laporan", alt: "Penanda" });
      pin.addTo(map);
      pin.on("dragend", () => {
        const at = pin.getLatLng();
        onPinMoved(at.lat, at.lng, "map");
      });
    } else {
      pin.setLatLng([lat, lon]);
    }
    map.setView([lat, lon], zoom || 15);
  }

  map.on("click", (event) => {
    place(event.latlng.lat, event.latlng.lng, map.getZoom());
    onPinMoved(event.latlng.lat, event.latlng.lng, "map");
  });

  return {
    place,
    showBoundaries(geojson) {
      L.geoJSON(geojson, {
        style: { color: "#56718a", weight: 1, fillColor: "#e3ebf2", fillOpacity: 0.6 },
        interactive: false,
      }).addTo(map);
    },
    invalidate() {
      map.invalidateSize();
    },
    pinPosition() {
      return pin ? pin.getLatLng() : null;
    },
  };
}
