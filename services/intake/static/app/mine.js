// "Laporan saya": the reports filed or followed on this device (localStorage). A filed report keeps its tracking
// token (only here and in the person's link); a followed one only its public number.
const STORAGE_KEY = "jaklapor.mine";

export function myReports() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
  } catch {
    return [];
  }
}

function save(reports) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(reports));
}

/** Add or update a report ({report_id, token?, category, description, submitted_at, followed?}). */
export function remember(report) {
  const reports = myReports().filter((r) => r.report_id !== report.report_id);
  reports.unshift(report);
  save(reports);
}

export function forget(reportId) {
  save(myReports().filter((r) => r.report_id !== reportId));
}

/** The app's tracking link: the token (or a followed report's number) in the fragment, never sent to a server. */
export function trackingHref(report) {
  return `/lacak#${report.token || report.report_id}`;
}
