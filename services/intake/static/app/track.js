// The tracking page: the token (the citizen's own report) or the number (a followed report) is in the URL fragment,
// so it never reaches a server's logs. It shows status, the responsible OPD, the area, the deadline, the photos and
// the history, and follows the live stream (notify's Server-Sent Events); where the stream cannot be opened, it
// reloads the report now and then instead.
import * as api from "./api.js";
import { byId, clear, el, show } from "/shared/dom.js";
import { formatTime, onLanguageChange, statusLabel, t } from "./i18n.js";
import { remember, myReports } from "./mine.js";
import { feedbackSection } from "./feedback.js";

const REPORT_ID = /^JK-\d{8}-\d{6}$/;
const STREAM_EVENTS = ["submitted", "routed", "triage", "escalated", "status_changed", "forwarded", "message", "merged", "unmerged"];
const POLL_MS = 15000;
const FINAL = new Set(["selesai", "ditolak"]);

export class TrackScreen {
  constructor() {
    this.stream = null;
    this.pollTimer = null;
    this.view = null;
  }

  start() {
    window.addEventListener("hashchange", () => this.load());
    onLanguageChange(() => this.view && this.render(this.view));
    this.load();
  }

  reference() {
    return decodeURIComponent(window.location.hash.replace(/^#/, "")).trim();
  }

  async load() {
    const reference = this.reference();
    this.stopLive();
    if (!reference) {
      this.message(t("track_missing"));
      return;
    }
    const view = await this.fetchView(reference);
    if (view) this.follow(reference, view);
  }

  async fetchView(reference) {
    try {
      const view = REPORT_ID.test(reference) ? await api.reportById(reference) : await api.reportByToken(reference);
      this.view = view;
      this.render(view);
      this.rememberSeen(reference, view);
      return view;
    } catch (error) {
      this.message(error.status === 404 ? t("track_missing") : t("track_offline"));
      return null;
    }
  }

  rememberSeen(reference, view) {
    // a report opened from its link joins "my reports" (kept on this device only)
    const known = myReports().find((r) => r.report_id === view.report_id);
    remember({
      ...(known || {}),
      report_id: view.report_id,
      category: view.category,
      description: view.description,
      submitted_at: view.submitted_at,
      status: view.status,
      ...(REPORT_ID.test(reference) ? { followed: !known?.token } : { token: reference }),
    });
  }

  follow(reference, view) {
    if (FINAL.has(view.status)) return;
    const live = byId("track-live");
    if (view.stream_url && "EventSource" in window) {
      this.stream = new EventSource(view.stream_url);
      const refresh = () => this.fetchView(reference);
      for (const kind of STREAM_EVENTS) this.stream.addEventListener(kind, refresh);
      this.stream.onopen = () => {
        live.textContent = t("live_on");
        document.body.dataset.live = "stream";
      };
      this.stream.onerror = () => {
        // closed for good (the stream ended, or it cannot be reached from here): poll instead
        if (this.stream.readyState === EventSource.CLOSED) {
          this.stream = null;
          this.poll(reference);
        }
      };
    } else {
      this.poll(reference);
    }
  }

  poll(reference) {
    if (this.pollTimer || (this.view && FINAL.has(this.view.status))) return;
    byId("track-live").textContent = t("live_polling");
    document.body.dataset.live = "polling";
    this.pollTimer = setInterval(async () => {
      const view = await this.fetchView(reference);
      if (view && FINAL.has(view.status)) this.stopLive();
    }, POLL_MS);
  }

  stopLive() {
    if (this.stream) this.stream.close();
    this.stream = null;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  message(text) {
    clear(byId("track-body")).append(el("p", { class: "error", role: "alert", text }));
  }

  render(view) {
    const body = clear(byId("track-body"));
    body.dataset.status = view.status;
    const opd = view.responsible_opd;
    const area = view.area;
    const areaText = area ? [area.kelurahan, area.kecamatan, area.kota].filter(Boolean).join(", ") : "";
    const facts = el("dl", { class: "facts" });
    const fact = (label, value, id) => facts.append(el("dt", { text: label }), el("dd", { id, text: value }));
    fact(t("report_number"), view.report_id, "track-number");
    fact(t("status"), statusLabel(view.status, view.status_label), "track-status");
    fact(t("responsible"), opd ? opd.name || opd.code : t("not_routed"), "track-opd");
    if (areaText) fact(t("area"), areaText, "track-area");
    if (view.response_deadline) fact(t("deadline"), formatTime(view.response_deadline), "track-deadline");
    if (view.overdue) fact(t("deadline"), t("overdue"), "track-overdue");
    if (view.work_deadline) fact(t("deadline"), formatTime(view.work_deadline), "track-work-deadline");
    fact(t("submitted_at"), formatTime(view.submitted_at), "track-submitted");
    if (view.supporters) fact(t("supporters_label"), t("supporters", { n: view.supporters }), "track-supporters");
    if (view.merged_into) {
      facts.append(
        el("dt", { text: t("merged_label") }),
        el("dd", { id: "track-merged" }, el("a", { href: `/lacak#${view.merged_into}`, text: t("merged_into", { id: view.merged_into }) })),
      );
    }
    body.append(facts, el("p", { class: "quote", id: "track-description", text: view.description || "" }));
    if (view.merged_into) body.append(el("p", { class: "help", id: "track-merged-help", text: t("merged_help", { id: view.merged_into }) }));
    body.append(...this.gallery(t("citizen_photos"), view.photos, "track-photos"));
    body.append(...this.gallery(t("evidence_photos"), view.evidence_photos, "track-evidence"));
    const reference = this.reference();
    const feedback = REPORT_ID.test(reference) ? null : feedbackSection(view, reference, (answered) => this.answered(reference, answered));
    if (feedback) body.append(feedback);
    const history = el("ol", { class: "history", id: "track-history" });
    for (const entry of view.history || []) {
      history.append(
        el(
          "li",
          { "data-status": entry.status },
          el("p", {}, el("strong", { text: statusLabel(entry.status, entry.status_label) }), " · ", el("time", { datetime: entry.at, text: formatTime(entry.at) })),
          entry.opd ? el("p", { class: "help", text: entry.opd.name || entry.opd.code || "" }) : null,
          entry.note ? el("p", { text: entry.note }) : null,
          ...(entry.photos || []).map((src) => el("img", { src, alt: t("evidence_photos"), class: "thumb" })),
        ),
      );
    }
    body.append(el("h2", { text: t("history") }), history);
    document.body.dataset.reportStatus = view.status;
  }

  answered(reference, view) {
    // the citizen confirmed or reopened: show the outcome, and follow the report again once it is back at work
    this.view = view;
    this.render(view);
    this.rememberSeen(reference, view);
    byId("feedback-title")?.setAttribute("tabindex", "-1");
    byId("feedback-title")?.focus();
    if (!FINAL.has(view.status)) this.follow(reference, view);
  }

  gallery(title, photos, id) {
    if (!photos || photos.length === 0) return [];
    const list = el("ul", { class: "photos", id });
    photos.forEach((src, index) => list.append(el("li", {}, el("img", { src, alt: `${title} ${index + 1}` }))));
    return [el("h2", { text: title }), list];
  }
}

export function hideTrack() {
  show(byId("view-track"), false);
}
