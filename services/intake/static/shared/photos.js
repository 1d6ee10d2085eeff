// Photos are made small in the browser before upload (the citizen's photos, an officer's evidence): scaled to a
// longest side of 2048 px and re-encoded as JPEG, so a 4 MB phone photo uploads as a few hundred KB. The server still
// cleans every photo (metadata removed, re-encoded).
export const MAX_SIDE = 2048;
export const JPEG_QUALITY = 0.8;

/** The photo scaled to at most MAX_SIDE and re-encoded as JPEG (a Blob); EXIF orientation applied. */
export async function shrink(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("encode failed"))), "image/jpeg", JPEG_QUALITY),
  );
}
