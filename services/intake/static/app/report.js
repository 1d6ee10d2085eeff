// The report screen: photos first (their GPS places the pin), else the phone's location, else the person places the
// pin on the map or picks a kelurahan; category, description, optional contact; open reports nearby; then send.
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { lang, onLanguageChange, refusalReason, statusLabel, t } from "./i18n.js";
import { remember } from "./mine.js";
import { createMap } from "./map.js";
import * as outbox from "./outbox.js";
import { gpsOf } from "./photos.js";
import { shrink } from "/shared/photos.js";

export class ReportScreen {
  constructor(configLoading, showSent) {
    this.configLoading = configLoading; // the limits and tiles, still on their way (loaded with everything else)
    this.config = { ...api.DEFAULT_CONFIG };
    this.showSent = showSent; // (kind, submission, receipt) → the confirmation screen
    this.photos = []; // {blob, url, gps}
    this.location = null; // {lat, lon, source, label}
    this.categories = [];
    this.areas = null;
    this.map = null;
    this.nearbyTimer = null;
    this.editing = null; // the refused submission the form was reopened on (or that was just refused here)
  }

  async start() {
    // everything the screen needs is asked for at once: on a slow signal each request costs a round trip
    const loading = Promise.all([this.configLoading, api.categories().catch(() => []), api.areas()]);
    const form = byId("report-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    byId("photos").addEventListener("change", (event) => this.addPhotos(event.target.files));
    byId("use-location").addEventListener("click", () => this.locateDevice(true));
    byId("category-search").addEventListener("input", () => this.renderCategories());
    byId("category").addEventListener("change", () => this.scheduleNearby());
    const description = byId("description");
    description.addEventListener("input", () => this.renderCounter());
    onLanguageChange(() => this.relabel());

    const [config, categories, areas] = await loading;
    this.config = config;
    description.maxLength = config.description_max_chars;
    this.renderCounter();
    this.startMap();
    this.categories = categories;
    this.areas = areas;
    this.renderCategories();
    this.startPicker();
    await this.reopenFromFragment();
  }

  relabel() {
    this.renderCategories();
    this.renderCounter();
    this.renderPhotos();
    this.renderLocation();
    this.renderEditing();
    this.fillPicker(byId("pick-kota"), this.areas || [], byId("pick-kota").value);
    if (!byId("nearby").hidden) this.loadNearby();
  }

  // ---- photos ------------------------------------------------------------------------------------------------

  async addPhotos(fileList) {
    const room = this.config.max_photos - this.photos.length;
    const files = Array.from(fileList);
    const error = byId("form-error");
    show(error, false);
    if (files.length > room) {
      error.textContent = t("too_many_photos", { n: this.config.max_photos });
      show(error, true);
    }
    for (const file of files.slice(0, Math.max(0, room))) {
      try {
        // the position is read from the original: the resized copy has no EXIF
        const gps = await gpsOf(file);
        const blob = await shrink(file);
        this.photos.push({ blob, url: URL.createObjectURL(blob), gps });
        if (gps && (!this.location || this.location.source !== "map")) this.setLocation(gps.lat, gps.lon, "photo");
      } catch {
        error.textContent = t("photo_unreadable");
        show(error, true);
      }
    }
    byId("photos").value = "";
    this.renderPhotos();
    if (!this.location) this.locateDevice(false);
  }

  renderPhotos() {
    const list = clear(byId("photo-list"));
    this.photos.forEach((photo, index) => {
      const remove = el("button", { type: "button", class: "link", text: t("remove_photo", { n: index + 1 }) });
      remove.addEventListener("click", () => {
        URL.revokeObjectURL(photo.url);
        this.photos.splice(index, 1);
        this.renderPhotos();
        byId("photos").focus();
      });
      const size = `${Math.round(photo.blob.size / 1024)} KB`;
      list.append(
        el(
          "li",
          { "data-size": photo.blob.size },
          el("img", { src: photo.url, alt: t("photo_alt", { n: index + 1 }) }),
          el("span", { class: "help", text: size }),
          remove,
        ),
      );
    });
  }

  // ---- location ----------------------------------------------------------------------------------------------

  startMap() {
    if (!window.L) return; // the map script did not load: the kelurahan picker still works
    this.map = createMap(byId("map"), this.config, (lat, lon, source) => this.setLocation(lat, lon, source, null, false));
    api.kelurahanBoundaries().then((geojson) => geojson && this.map.showBoundaries(geojson));
  }

  setLocation(lat, lon, source, label = null, moveMap = true) {
    this.location = { lat, lon, source, label };
    if (moveMap && this.map) this.map.place(lat, lon, 15);
    byId("map").dataset.pin = `${lat.toFixed(6)},${lon.toFixed(6)}`;
    byId("map").dataset.pinSource = source;
    this.renderLocation();
    this.scheduleNearby();
  }

  renderLocation() {
    const status = byId("location-status");
    if (!this.location) {
      status.textContent = t("location_none");
      return;
    }
    const { lat, lon, source, label } = this.location;
    const where = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    const key = { photo: "location_photo", device: "location_device", map: "location_map", area: "location_area", saved: "location_saved" }[source];
    status.textContent = t(key, { where: source === "area" ? label : where });
  }

  locateDevice(asked) {
    if (!("geolocation" in navigator)) {
      if (asked) byId("location-status").textContent = t("location_denied");
      return;
    }
    if (asked) byId("location-status").textContent = t("locating");
    navigator.geolocation.getCurrentPosition(
      (position) => {
        // a photo's position or the person's own choice wins over the phone's, unless they asked for it
        if (asked || !this.location) this.setLocation(position.coords.latitude, position.coords.longitude, "device");
      },
      () => {
        if (asked || !this.location) byId("location-status").textContent = t("location_denied");
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  }

  // ---- the kelurahan picker: the way to place the report without the map (and by keyboard) --------------------

  startPicker() {
    const kota = byId("pick-kota");
    const kecamatan = byId("pick-kecamatan");
    const kelurahan = byId("pick-kelurahan");
    if (!this.areas || this.areas.length === 0) {
      byId("area-picker").append(el("p", { class: "help", text: t("areas_unavailable") }));
      kota.disabled = true;
      return;
    }
    this.fillPicker(kota, this.areas, "");
    kota.addEventListener("change", () => {
      const chosen = this.areas.find((k) => k.code === kota.value || k.name === kota.value);
      this.fillPicker(kecamatan, chosen ? chosen.kecamatan : [], "");
      this.fillPicker(kelurahan, [], "");
    });
    kecamatan.addEventListener("change", () => {
      const chosen = this.currentKecamatan();
      this.fillPicker(kelurahan, chosen ? chosen.kelurahan : [], "");
    });
    kelurahan.addEventListener("change", () => {
      const chosen = (this.currentKecamatan()?.kelurahan || []).find((k) => k.code === kelurahan.value);
      if (chosen && Number.isFinite(chosen.lat)) this.setLocation(chosen.lat, chosen.lon, "area", chosen.name);
    });
  }

  currentKecamatan() {
    const kota = this.areas.find((k) => k.code === byId("pick-kota").value);
    return kota ? kota.kecamatan.find((k) => k.code === byId("pick-kecamatan").value) : null;
  }

  fillPicker(select, items, selected) {
    clear(select).append(el("option", { value: "", text: t("choose") }));
    for (const item of items) select.append(el("option", { value: item.code, text: item.name }));
    select.value = selected;
    select.disabled = items.length === 0;
  }

  // ---- category, description ---------------------------------------------------------------------------------

  categoryName(category) {
    return lang() === "en" && category.name_en ? `${category.name_en} (${category.name})` : category.name;
  }

  groupName(category) {
    return (lang() === "en" ? category.group_en : category.group) || t("other_group");
  }

  renderCategories() {
    const select = byId("category");
    const chosen = select.value;
    const query = byId("category-search").value.trim().toLowerCase();
    const matches = this.categories.filter((c) =>
      [c.name, c.name_en, c.code, c.description, c.group, c.group_en].some((text) => (text || "").toLowerCase().includes(query)),
    );
    const groups = new Map();
    for (const category of matches) {
      const group = this.groupName(category);
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(category);
    }
    clear(select).append(el("option", { value: "", text: t("choose_category") }));
    for (const [group, members] of groups) {
      const optgroup = el("optgroup", { label: group });
      for (const category of members) optgroup.append(el("option", { value: category.code, text: this.categoryName(category) }));
      select.append(optgroup);
    }
    // one match: chosen for the person (typing the name is enough)
    if (matches.some((c) => c.code === chosen)) select.value = chosen;
    else if (query && matches.length === 1) select.value = matches[0].code;
    if (select.value !== chosen) this.scheduleNearby();
  }

  renderCounter() {
    const length = byId("description").value.length;
    byId("description-count").textContent = t("chars", { n: length, max: this.config.description_max_chars });
  }

  // ---- nearby reports ----------------------------------------------------------------------------------------

  scheduleNearby() {
    clearTimeout(this.nearbyTimer);
    this.nearbyTimer = setTimeout(() => this.loadNearby(), 300);
  }

  async loadNearby() {
    const category = byId("category").value;
    const section = byId("nearby");
    if (!this.location || !category) {
      show(section, false);
      return;
    }
    const { lat, lon } = this.location;
    const reports = await api.nearby(lat, lon, category, this.config.nearby_radius_m);
    const list = clear(byId("nearby-list"));
    if (reports.length === 0) list.append(el("li", { class: "help", text: t("nearby_none") }));
    for (const report of reports) list.append(this.nearbyCard(report));
    show(section, true);
  }

  nearbyCard(report) {
    const follow = el("button", { type: "button", class: "button", text: t("follow") });
    follow.addEventListener("click", () => {
      remember({
        report_id: report.report_id,
        category: report.category,
        description: report.description,
        submitted_at: report.submitted_at,
        followed: true,
      });
      window.location.assign(`/lacak#${report.report_id}`);
    });
    const photo = (report.photos || [])[0];
    const supporters = el("p", { class: "help supporters", text: report.supporters ? t("supporters", { n: report.supporters }) : "" });
    const said = el("p", { class: "help", role: "status", "aria-live": "polite" });
    return el(
      "li",
      { class: "card", "data-report-id": report.report_id },
      photo ? el("img", { src: photo, alt: "", class: "thumb" }) : null,
      el("p", { class: "card-title" }, el("strong", { text: report.report_id }), " · ", statusLabel(report.status, report.status_label)),
      el("p", { class: "quote", text: report.description || "" }),
      el("p", { class: "help", text: t("meters", { n: Math.round(report.distance_m ?? 0) }) }),
      supporters,
      this.supportButton(report, supporters, said),
      said,
      follow,
    );
  }

  /** "I have this problem too": counted once per device, followed from "my reports"; the contact typed in the form
   * (if any) gets this report's notifications instead of a new report's. */
  supportButton(report, supporters, said) {
    const button = el("button", { type: "button", class: "button primary support", text: t("support") });
    button.addEventListener("click", async () => {
      button.disabled = true;
      said.textContent = t("support_sending");
      try {
        const answer = await api.supportReport(report.report_id, byId("contact")?.value.trim() || "");
        said.textContent = t(answer.counted ? "supported" : "supported_before", { n: answer.supporters });
        supporters.textContent = t("supporters", { n: answer.supporters });
        remember({
          report_id: answer.report_id,
          category: report.category,
          description: report.description,
          submitted_at: report.submitted_at,
          followed: true,
        });
      } catch {
        said.textContent = t("support_failed");
        button.disabled = false;
      }
    });
    return button;
  }

  // ---- a refused report, edited and sent again ---------------------------------------------------------------

  /** "Edit and send again" in "my reports" opens /#ubah=<key>: the form filled with that kept report. */
  async reopenFromFragment() {
    const match = /^#ubah=(.+)$/.exec(window.location.hash);
    if (!match) return;
    const submission = await outbox.get(decodeURIComponent(match[1])).catch(() => undefined);
    if (submission) this.reopen(submission);
    else window.history.replaceState(null, "", "/"); // sent or deleted meanwhile: a new report
  }

  reopen(submission) {
    const { fields } = submission;
    this.editing = submission;
    for (const photo of this.photos) URL.revokeObjectURL(photo.url);
    this.photos = submission.photos.map((blob) => ({ blob, url: URL.createObjectURL(blob), gps: null }));
    this.renderPhotos();
    this.setLocation(Number(fields.lat), Number(fields.lon), "saved");
    byId("category-search").value = "";
    this.renderCategories();
    byId("category").value = fields.category; // a category that no longer exists leaves none chosen
    byId("description").value = fields.description;
    byId("contact").value = fields.contact || "";
    this.renderCounter();
    this.renderEditing();
    byId("editing").focus();
  }

  renderEditing() {
    const notice = byId("editing");
    const refused = this.editing && this.editing.refused;
    notice.textContent = refused ? t("editing_notice", { reason: refusalReason(refused) }) : "";
    notice.tabIndex = -1;
    show(notice, Boolean(refused));
  }

  /**
   * The submission to send: the reopened one with its Idempotency-Key when nothing was changed (the server may
   * have filed it meanwhile: the same key is answered with the same report), else a new one with a new key.
   */
  submissionOf(fields, photos) {
    const previous = this.editing;
    const sameFields = previous && Object.keys(fields).every((name) => (previous.fields[name] || "") === (fields[name] || ""));
    const samePhotos = previous && previous.photos.length === photos.length && previous.photos.every((blob, i) => blob === photos[i]);
    if (sameFields && samePhotos) return { ...previous, refused: null };
    return outbox.newSubmission(fields, photos, { category: fields.category, description: fields.description });
  }

  // ---- sending -----------------------------------------------------------------------------------------------

  validate() {
    const problems = [];
    const category = byId("category");
    const description = byId("description");
    const categoryError = byId("category-error");
    const descriptionError = byId("description-error");
    categoryError.textContent = category.value ? "" : t("need_category");
    show(categoryError, !category.value);
    category.setAttribute("aria-invalid", String(!category.value));
    const text = description.value.trim();
    descriptionError.textContent = text ? "" : t("need_description");
    show(descriptionError, !text);
    description.setAttribute("aria-invalid", String(!text));
    if (!this.location) problems.push([t("need_location"), byId("use-location")]);
    if (!category.value) problems.push([t("need_category"), category]);
    if (!text) problems.push([t("need_description"), description]);
    return problems;
  }

  async submit() {
    const error = byId("form-error");
    const problems = this.validate();
    if (problems.length) {
      error.textContent = problems.map(([message]) => message).join(" ");
      show(error, true);
      problems[0][1].focus();
      return;
    }
    show(error, false);
    const button = byId("submit");
    button.disabled = true;
    const progress = byId("upload-progress");
    progress.value = 0;
    show(byId("upload"), true);
    const fields = {
      category: byId("category").value,
      description: byId("description").value.trim(),
      lat: this.location.lat.toFixed(6),
      lon: this.location.lon.toFixed(6),
      contact: byId("contact").value.trim(),
    };
    const previous = this.editing;
    const submission = this.submissionOf(fields, this.photos.map((p) => p.blob));
    try {
      const result = await outbox.send(submission, (fraction) => {
        progress.value = Math.round(fraction * 100);
      });
      // the new submission is kept (or filed): the refused one it replaces goes
      if (previous && previous.key !== submission.key) await outbox.discard(previous.key);
      if (result.outcome === "refused") {
        // kept on the device as refused (in "my reports"); the form stays filled to fix it here
        this.editing = submission;
        this.renderEditing();
        error.textContent = t("send_refused", { message: refusalReason(result.error) });
        show(error, true);
        error.focus();
        return;
      }
      this.reset();
      this.showSent(result.outcome, submission, result.receipt);
    } catch {
      error.textContent = t("error_generic");
      show(error, true);
    } finally {
      button.disabled = false;
      show(byId("upload"), false);
    }
  }

  reset() {
    this.editing = null;
    this.renderEditing();
    if (window.location.hash) window.history.replaceState(null, "", "/");
    for (const photo of this.photos) URL.revokeObjectURL(photo.url);
    this.photos = [];
    this.renderPhotos();
    byId("description").value = "";
    byId("contact").value = "";
    this.renderCounter();
  }
}

/** A filed report joins "my reports" on this device, with its tracking token. */
export function recordFiled(submission, receipt) {
  remember({
    report_id: receipt.report_id,
    token: receipt.tracking_token,
    category: receipt.category,
    description: submission.summary.description,
    submitted_at: receipt.submitted_at,
  });
}
