// The report's map (/shared/map.js: tiles and kelurahan boundaries) with one draggable pin.
import { baseMap, showBoundaries as drawBoundaries } from "/shared/map.js";

export function createMap(container, config, onPinMoved) {
  const L = window.L;
  const map = baseMap(container, config);
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
      drawBoundaries(map, geojson);
    },
    invalidate() {
      map.invalidateSize();
    },
    pinPosition() {
      return pin ? pin.getLatLng() : null;
    },
  };
}
