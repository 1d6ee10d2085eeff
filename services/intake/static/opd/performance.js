// This OPD's own figures, read from the statistics service (the same table the public dashboard shows).
import * as api from "./api.js";
import { byId, clear, el } from "/shared/dom.js";
import { formatTime, t } from "./i18n.js";

function percent(share) {
  return share === null || share === undefined ? t("no_value") : `${Math.round(share * 100)}%`;
}

function hours(durations) {
  if (!durations || durations.median_hours === null || durations.median_hours === undefined) return t("no_value");
  return `${t("hours", { n: durations.median_hours })} / ${t("hours", { n: durations.p90_hours })}`;
}

export class PerformanceScreen {
  constructor({ session, reference }) {
    this.session = session;
    this.reference = reference;
    this.figures = undefined;
  }

  async start() {
    try {
      this.figures = await api.performance(this.reference.statsUrl, this.session.opd.code);
    } catch {
      this.figures = null;
    }
    this.render();
    document.body.dataset.performance = this.figures?.row ? "shown" : "none";
  }

  stop() {
    document.body.removeAttribute("data-performance");
  }

  render() {
    const body = clear(byId("performance-body"));
    if (this.figures === null) {
      body.append(el("p", { class: "error", role: "alert", text: t("performance_unavailable") }));
      return;
    }
    const row = this.figures.row;
    if (!row) {
      body.append(el("p", { class: "help", text: t("performance_none") }));
      return;
    }
    const facts = [
      ["received", row.received],
      ["completed", row.completed],
      ["still_open", row.open],
      ["response_time", hours(row.response)],
      ["resolution_time", hours(row.resolution)],
      ["on_time", percent(row.within_deadline?.share)],
      ["bounces", `${row.koordinasi ?? 0} (${percent(row.bounce_rate)})`],
      ["rejected", `${row.rejected ?? 0} (${percent(row.rejection_rate)})`],
      ["reopened_by_citizens", `${row.reopened ?? 0} (${percent(row.reopened_rate)})`],
      ["citizen_rating", row.rating_average == null ? t("no_value") : `${row.rating_average} / 5 (${row.ratings})`],
      ["score", row.score ?? t("no_value")],
      ["rank", row.rank ?? t("no_value")],
    ];
    body.append(
      el("h2", { text: this.session.opd.name }),
      el("dl", { id: "performance-figures", class: "facts figures" }, ...facts.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", { "data-figure": key, text: String(value) })])),
      el("p", { class: "help", text: t("as_of", { when: formatTime(this.figures.generatedAt) }) }),
    );
  }
}
