// Indonesian first, English on request; the choice is remembered on the device.
const STORAGE_KEY = "jaklapor.lang";

const STRINGS = {
  id: {
    skip: "Langsung ke isi",
    menu: "Menu",
    nav_report: "Lapor",
    nav_mine: "Laporan saya",
    other_language: "English",
    report_title: "Lapor masalah di sekitar Anda",
    step_photo: "1. Foto (maksimal 3)",
    add_photo: "Ambil atau pilih foto",
    photos_help: "Foto diperkecil di ponsel Anda sebelum dikirim. Lokasi dibaca dari foto bila ada.",
    photos_chosen: "Foto terpilih",
    remove_photo: "Hapus foto {n}",
    photo_alt: "Foto {n}",
    too_many_photos: "Maksimal {n} foto; foto selebihnya tidak dipakai.",
    photo_unreadable: "Foto ini tidak bisa dibaca. Coba foto lain.",
    step_place: "2. Lokasi",
    location_none: "Belum ada lokasi. Ketuk peta, gunakan lokasi ponsel, atau pilih kelurahan.",
    location_photo: "Lokasi diambil dari foto: {where}. Geser penanda bila perlu.",
    location_device: "Lokasi dari ponsel Anda: {where}. Geser penanda bila perlu.",
    location_map: "Lokasi dipilih di peta: {where}.",
    location_area: "Lokasi: Kelurahan {where} (titik tengahnya).",
    location_denied: "Lokasi ponsel tidak tersedia. Ketuk peta atau pilih kelurahan.",
    locating: "Mencari lokasi…",
    map_label: "Peta: ketuk untuk menaruh penanda, atau pilih kelurahan di bawah",
    use_location: "Gunakan lokasi saya",
    picker_summary: "Tanpa peta: pilih kelurahan",
    kota: "Kota / Kabupaten",
    kecamatan: "Kecamatan",
    kelurahan: "Kelurahan",
    choose: "— Pilih —",
    areas_unavailable: "Daftar kelurahan belum tersedia.",
    step_what: "3. Masalahnya",
    category_search: "Cari kategori",
    category: "Kategori",
    choose_category: "— Pilih kategori —",
    other_group: "Lainnya",
    description: "Ceritakan masalahnya",
    chars: "{n} / {max} karakter",
    nearby_title: "Sudah dilaporkan di dekat sini?",
    nearby_help: "Laporan terbuka dengan kategori yang sama di sekitar penanda. Anda bisa mengikuti salah satunya daripada melapor lagi.",
    nearby_none: "Belum ada laporan terbuka serupa di dekat sini.",
    follow: "Ikuti laporan ini",
    meters: "{n} m dari penanda",
    step_contact: "4. Kontak (tidak wajib)",
    contact: "E-mail atau nomor HP",
    contact_help: "Hanya untuk memberi tahu Anda perkembangan laporan ini. Tidak pernah dipublikasikan dan tidak diberikan kepada dinas. Kosongkan untuk melapor tanpa identitas.",
    uploading: "Mengirim…",
    submit: "Kirim laporan",
    need_location: "Tentukan lokasinya: ketuk peta, gunakan lokasi Anda, atau pilih kelurahan.",
    need_category: "Pilih kategori.",
    need_description: "Tuliskan masalahnya.",
    send_refused: "Laporan ditolak: {message}",
    refused_title: "Ditolak server, belum terkirim",
    refused_screen_title: "Laporan ditolak",
    refused_help: "Laporan ini tetap tersimpan di perangkat Anda. Perbaiki lalu kirim lagi, atau hapus.",
    refused_category: "Kategori ini sudah tidak ada. Pilih kategori lain.",
    refused_photo_type: "Salah satu foto berformat yang tidak diterima (hanya JPEG, PNG atau WebP). Ganti foto itu.",
    refused_photo_size: "Fotonya terlalu besar. Hapus atau ganti salah satu foto.",
    refused_photo: "Salah satu foto tidak bisa dibaca server. Ganti foto itu.",
    refused_contact: "Kontak tidak valid: tulis alamat e-mail atau nomor HP, atau kosongkan.",
    refused_description: "Isi laporan tidak diterima. Periksa teksnya.",
    refused_location: "Lokasi tidak valid. Tentukan lokasinya lagi.",
    refused_other: "Server tidak menerima laporan ini.",
    server_said: "Pesan server (HTTP {status}{code}): {message}",
    edit_resend: "Ubah dan kirim lagi",
    delete: "Hapus",
    delete_question: "Hapus laporan ini dari perangkat? Laporan ini belum terkirim dan akan hilang.",
    delete_confirm: "Ya, hapus",
    cancel: "Batal",
    deleted: "Laporan dihapus dari perangkat ini.",
    editing_notice: "Anda mengubah laporan yang ditolak: {reason}",
    location_saved: "Lokasi laporan yang tersimpan: {where}. Geser penanda bila perlu.",
    outbox_refused: "{n} laporan ditolak server dan menunggu Anda.",
    see_mine: "Lihat Laporan saya",
    saved_title: "Tersimpan, akan dikirim",
    saved_body: "Tidak ada sinyal atau server sedang sibuk. Laporan Anda (dengan fotonya) tersimpan di perangkat ini dan dikirim otomatis saat koneksi kembali. Anda boleh menutup halaman ini.",
    outbox_waiting: "{n} laporan tersimpan, akan dikirim saat ada koneksi.",
    outbox_sent: "Laporan {id} sudah terkirim.",
    sent_title: "Laporan terkirim",
    report_number: "Nomor laporan",
    tracking_link: "Tautan pelacakan (simpan, hanya Anda yang memilikinya)",
    copy: "Salin tautan",
    copied: "Tautan disalin.",
    share: "Bagikan",
    open_tracking: "Buka halaman pelacakan",
    new_report: "Buat laporan baru",
    track_title: "Lacak laporan",
    track_missing: "Laporan tidak ditemukan. Periksa tautannya.",
    track_offline: "Tidak bisa memuat laporan. Periksa koneksi Anda.",
    live_on: "Diperbarui langsung.",
    live_polling: "Diperbarui berkala.",
    status: "Status",
    responsible: "Ditangani oleh",
    area: "Wilayah",
    deadline: "Batas waktu tanggapan",
    overdue: "Melewati batas waktu",
    submitted_at: "Dilaporkan",
    citizen_photos: "Foto dari warga",
    evidence_photos: "Foto bukti dari dinas",
    history: "Riwayat",
    not_routed: "Belum ditentukan",
    mine_title: "Laporan saya",
    mine_help: "Disimpan hanya di perangkat ini.",
    mine_empty: "Belum ada laporan di perangkat ini.",
    followed: "Diikuti",
    waiting_send: "Menunggu dikirim",
    remove: "Hapus dari daftar",
    footer: "JakLapor — laporan warga untuk Jakarta.",
    error_generic: "Terjadi kesalahan. Coba lagi.",
  },
  en: {
    skip: "Skip to content",
    menu: "Menu",
    nav_report: "Report",
    nav_mine: "My reports",
    other_language: "Bahasa Indonesia",
    report_title: "Report a problem near you",
    step_photo: "1. Photos (up to 3)",
    add_photo: "Take or choose photos",
    photos_help: "Photos are made smaller on your phone before sending. The location is read from a photo when it has one.",
    photos_chosen: "Chosen photos",
    remove_photo: "Remove photo {n}",
    photo_alt: "Photo {n}",
    too_many_photos: "At most {n} photos; the others are not used.",
    photo_unreadable: "This photo cannot be read. Try another one.",
    step_place: "2. Location",
    location_none: "No location yet. Tap the map, use your phone's location, or choose a kelurahan.",
    location_photo: "Location taken from the photo: {where}. Drag the pin if needed.",
    location_device: "Your phone's location: {where}. Drag the pin if needed.",
    location_map: "Location chosen on the map: {where}.",
    location_area: "Location: Kelurahan {where} (its centre).",
    location_denied: "Your phone's location is not available. Tap the map or choose a kelurahan.",
    locating: "Finding your location…",
    map_label: "Map: tap to place the pin, or choose a kelurahan below",
    use_location: "Use my location",
    picker_summary: "Without the map: choose a kelurahan",
    kota: "City / Regency",
    kecamatan: "District (kecamatan)",
    kelurahan: "Sub-district (kelurahan)",
    choose: "— Choose —",
    areas_unavailable: "The list of kelurahan is not available yet.",
    step_what: "3. The problem",
    category_search: "Search categories",
    category: "Category",
    choose_category: "— Choose a category —",
    other_group: "Other",
    description: "Describe the problem",
    chars: "{n} / {max} characters",
    nearby_title: "Already reported nearby?",
    nearby_help: "Open reports of the same category near the pin. You can follow one instead of reporting it again.",
    nearby_none: "No similar open reports nearby yet.",
    follow: "Follow this report",
    meters: "{n} m from the pin",
    step_contact: "4. Contact (optional)",
    contact: "E-mail or phone number",
    contact_help: "Used only to tell you how this report progresses. Never published and never given to the agencies. Leave it empty to report anonymously.",
    uploading: "Sending…",
    submit: "Send report",
    need_location: "Set the location: tap the map, use your location, or choose a kelurahan.",
    need_category: "Choose a category.",
    need_description: "Describe the problem.",
    send_refused: "The report was refused: {message}",
    refused_title: "Refused by the server, not sent",
    refused_screen_title: "Report refused",
    refused_help: "This report is still kept on your device. Fix it and send it again, or delete it.",
    refused_category: "This category no longer exists. Choose another one.",
    refused_photo_type: "One of the photos is in a format that is not accepted (only JPEG, PNG or WebP). Replace that photo.",
    refused_photo_size: "The photos are too large. Remove or replace one of them.",
    refused_photo: "One of the photos cannot be read by the server. Replace that photo.",
    refused_contact: "The contact is not valid: write an e-mail address or a phone number, or leave it empty.",
    refused_description: "The description was not accepted. Check the text.",
    refused_location: "The location is not valid. Set the location again.",
    refused_other: "The server did not accept this report.",
    server_said: "Server's message (HTTP {status}{code}): {message}",
    edit_resend: "Edit and send again",
    delete: "Delete",
    delete_question: "Delete this report from the device? It has not been sent and will be lost.",
    delete_confirm: "Yes, delete",
    cancel: "Cancel",
    deleted: "The report was deleted from this device.",
    editing_notice: "You are editing a refused report: {reason}",
    location_saved: "The saved report's location: {where}. Drag the pin if needed.",
    outbox_refused: "{n} report(s) refused by the server, waiting for you.",
    see_mine: "See My reports",
    saved_title: "Saved, will be sent",
    saved_body: "No signal or the server is busy. Your report (with its photos) is kept on this device and sent automatically when the connection returns. You may close this page.",
    outbox_waiting: "{n} saved report(s), sent when there is a connection.",
    outbox_sent: "Report {id} has been sent.",
    sent_title: "Report sent",
    report_number: "Report number",
    tracking_link: "Tracking link (keep it: only you have it)",
    copy: "Copy link",
    copied: "Link copied.",
    share: "Share",
    open_tracking: "Open the tracking page",
    new_report: "New report",
    track_title: "Track a report",
    track_missing: "Report not found. Check the link.",
    track_offline: "The report cannot be loaded. Check your connection.",
    live_on: "Updated live.",
    live_polling: "Updated periodically.",
    status: "Status",
    responsible: "Handled by",
    area: "Area",
    deadline: "Response deadline",
    overdue: "Past the deadline",
    submitted_at: "Reported",
    citizen_photos: "Citizen's photos",
    evidence_photos: "Agency's evidence",
    history: "History",
    not_routed: "Not decided yet",
    mine_title: "My reports",
    mine_help: "Kept on this device only.",
    mine_empty: "No reports on this device yet.",
    followed: "Followed",
    waiting_send: "Waiting to be sent",
    remove: "Remove from the list",
    footer: "JakLapor — citizen reports for Jakarta.",
    error_generic: "Something went wrong. Try again.",
  },
};

// the English status labels (the API's status_label is Indonesian)
const STATUS_EN = {
  menunggu: "Waiting",
  koordinasi: "Coordination (handed to another agency)",
  disposisi: "Disposition (assigned to the agency's city office)",
  dikerjakan: "In progress",
  selesai: "Done",
  ditolak: "Rejected",
};

let current = localStorage.getItem(STORAGE_KEY) === "en" ? "en" : "id";
const listeners = [];

export function lang() {
  return current;
}

export function t(key, values = {}) {
  const text = STRINGS[current][key] ?? STRINGS.id[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function statusLabel(code, serverLabel) {
  return current === "en" ? STATUS_EN[code] || serverLabel || code : serverLabel || code;
}

// what the server's refusal of a report means for the person, by its error code (and field): the cause in plain words
const REFUSAL_REASONS = {
  unknown_category: "refused_category",
  photo_unsupported_type: "refused_photo_type",
  photo_too_large: "refused_photo_size",
  request_too_large: "refused_photo_size",
  photo_empty: "refused_photo",
  photo_corrupt: "refused_photo",
  photo_too_many_pixels: "refused_photo",
};
const REFUSED_FIELDS = { contact: "refused_contact", description: "refused_description", lat: "refused_location", lon: "refused_location" };

/** A refusal ({status, code, field, message}) in plain words: what is wrong and what to do. */
export function refusalReason(refused) {
  const key = REFUSAL_REASONS[refused.code] || (refused.code === "invalid_field" && REFUSED_FIELDS[refused.field]) || "refused_other";
  return t(key);
}

/** The server's own words about a refusal (status, code, message), for whoever helps the person. */
export function refusalDetail(refused) {
  return t("server_said", { status: refused.status, code: refused.code ? `, ${refused.code}` : "", message: refused.message });
}

export function formatTime(iso) {
  if (!iso) return "";
  const locale = current === "en" ? "en-GB" : "id-ID";
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short", timeZone: "Asia/Jakarta" });
}

/** Texts of the static page: elements marked data-i18n (text) and data-i18n-aria (aria-label). */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = t("other_language");
  toggle.lang = current === "id" ? "en" : "id";
}

export function onLanguageChange(listener) {
  listeners.push(listener);
}

export function toggleLanguage() {
  current = current === "id" ? "en" : "id";
  localStorage.setItem(STORAGE_KEY, current);
  applyStatic();
  for (const listener of listeners) listener(current);
}
