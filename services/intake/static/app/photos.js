// Photos are read on the phone: the GPS position from the original's EXIF (nothing else is read); they are made small
// before upload by /shared/photos.js.
//
// EXIF: exifr's "mini" build (MIT, vendor/exifr): JPEG + TIFF/EXIF only, 29 KB (8 KB gzipped), reads just the GPS
// block from the start of the file (no full read of a large photo).
import { gps } from "./vendor/exifr/mini.esm.js";

/** {lat, lon} from the photo's EXIF GPS, or null */
export async function gpsOf(file) {
  try {
    const position = await gps(file);
    if (position && Number.isFinite(position.latitude) && Number.isFinite(position.longitude)) {
      return { lat: position.latitude, lon: position.longitude };
    }
  } catch {
    // no EXIF, or not a JPEG: no position from this photo
  }
  return null;
}
