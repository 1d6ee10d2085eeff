"""The public dashboard in a real browser (headless Debian Chromium) against the running system with known data: what
a person reads there (headline, figures, a category row, the agency table, the kelurahan map), and a screenshot."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from PIL import Image

from services.stats.tests.e2e_helpers import Filed, act, stats, submit_many, wait_assigned
from tests.system import ROOT, RunningSystem, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
KOTA = "Jakarta Timur"
PLACES = {
    "Rawamangun": (-6.19429, 106.88296),
    "Pisangan Baru": (-6.2131, 106.86968),
    "Utan Kayu Selatan": (-6.20314, 106.86873),
    "Bali Mester": (-6.21909, 106.86649),
    "Cipinang Besar Utara": (-6.22017, 106.87828),
    "Duren Sawit": (-6.23462, 106.9169),
    "Penggilingan": (-6.20218, 106.93425),
    "Malaka Jaya": (-6.22468, 106.93501),
    "Balekambang": (-6.28182, 106.85182),
    "Cijantung": (-6.32203, 106.85821),
    "Susukan": (-6.31263, 106.86885),
    "Munjul": (-6.3492, 106.89613),
    "Halim Perdana Kusuma": (-6.26588, 106.89406),
}
# (kelurahan, category, what its OPD does): 24 reports in Jakarta Timur
REPORTS = [
    *[(k, "jalan", "selesai") for k in ("Rawamangun", "Rawamangun", "Pisangan Baru", "Utan Kayu Selatan")],
    *[(k, "jalan", "selesai") for k in ("Bali Mester", "Cipinang Besar Utara")],
    ("Rawamangun", "jalan", "koordinasi:kelurahan-rawamangun"),
    ("Duren Sawit", "jalan", "ditolak"),
    *[(k, "jaringan-listrik", "selesai") for k in ("Rawamangun", "Rawamangun", "Penggilingan")],
    ("Malaka Jaya", "jaringan-listrik", "dikerjakan"),
    *[(k, "pohon", "selesai") for k in ("Balekambang", "Cijantung", "Susukan", "Munjul", "Halim Perdana Kusuma")],
    ("Duren Sawit", "pohon", "menunggu"),
    *[(k, "saluran-air-kali-sungai", "selesai") for k in ("Rawamangun", "Pisangan Baru", "Cijantung", "Malaka Jaya")],
    ("Cipinang Besar Utara", "saluran-air-kali-sungai", "dikerjakan"),
    ("Penggilingan", "saluran-air-kali-sungai", "koordinasi:kelurahan-penggilingan"),
]
ROADS_OPD = "sudin-bina-marga-jakarta-timur"
MAP_EMPTY = "#dde4eb"


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail("Debian chromium is required in CI (scripts/install-system-deps installs it)")
    pytest.skip("chromium is not installed (apt-get install -y chromium, or scripts/install-system-deps)")


def browse(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with nothing phoning home; virtual time lets the page's fetches and drawing finish."""
    with tempfile.TemporaryDirectory(prefix="jaklapor-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)  # text and child nodes, in order

    @property
    def text(self) -> str:
        # elements are separated by a space (several are blocks), text runs are kept as they are
        return " ".join("".join(p if isinstance(p, str) else f" {p.text} " for p in self.parts).split())

    def find_all(self, tag: str | None = None, **attrs: str) -> Iterator[Node]:
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                yield child
            yield from child.find_all(tag, **attrs)

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = next(self.find_all(tag, **attrs), None)
        assert found is not None, f"no <{tag or '*'} {attrs}> on the page"
        return found


class DomParser(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(html: str) -> Node:
    parser = DomParser()
    parser.feed(html)
    return parser.root


@pytest.fixture(scope="module")
def east(system: RunningSystem) -> list[Filed]:
    """24 reports in Jakarta Timur, answered by their Suku Dinas as listed in REPORTS."""
    filed = submit_many(system, [(*PLACES[k], category, f"Laporan {category} di {k}") for k, category, _ in REPORTS])
    for report, (_, _, outcome) in zip(filed, REPORTS, strict=True):
        if outcome == "selesai":
            act(system, report, "dikerjakan")
            act(system, report, "selesai", note="Sudah diperbaiki")
        elif outcome == "dikerjakan":
            act(system, report, "dikerjakan")
        elif outcome == "ditolak":
            act(system, report, "ditolak", reason="duplikat")
        elif outcome.startswith("koordinasi:"):
            act(system, report, "koordinasi", target_opd=outcome.split(":", 1)[1])
            wait_assigned(system, report, hop=1)

    def settled() -> bool:
        summary = stats(system, "/api/v1/stats/summary", kota=KOTA)
        return summary["total"] >= len(REPORTS) and summary["by_status"]["selesai"]["count"] >= 18

    wait_for(settled, 15, message="the statistics to count the reports")
    return filed


def dashboard_url(system: RunningSystem) -> str:
    return system.url("stats", "/dashboard?" + urlencode({"kota": KOTA, "min_reports": 5}))


def test_the_dashboard_shows_the_numbers_of_the_running_system(
    system: RunningSystem, east: list[Filed], tmp_path: Path
) -> None:
    def page_of_unchanged_numbers() -> tuple[Node, dict[str, Any]] | None:
        """The page, and the summary it must show: read before and after the page loaded, and the same. Other
        modules' reports in Jakarta Timur may still be moving (a hand-over puts one back to menunggu), and a read
        can be served from the statistics' cache up to a second old: a page that loaded while the numbers moved
        is loaded again."""
        before = stats(system, "/api/v1/stats/summary", kota=KOTA)
        page = browse(dashboard_url(system), "--dump-dom")
        assert page.returncode == 0, page.stderr[-2000:]
        after = stats(system, "/api/v1/stats/summary", kota=KOTA)
        return (parse(page.stdout), after) if before == after else None

    dom, summary = wait_for(page_of_unchanged_numbers, 120, interval=1, message="numbers that hold while a page loads")
    body = dom.find("body")
    assert body.attrs.get("data-state") == "ready", dom.find(id="error").text

    # the headline sentence and the key figures, as a person reads them
    assert dom.find(id="headline").text == summary["headline"]
    # the running system is shared with other test modules, which file reports in Jakarta Timur too: the headline
    # leads with the largest share, selesai here (18 of this module's 24 reports)
    assert summary["headline"].split(", ")[0].endswith("% selesai"), summary["headline"]
    assert dom.find(id="kpi-total").text == str(summary["total"])
    selesai = summary["by_status"]["selesai"]["percent"]
    assert dom.find(id="kpi-selesai").text == f"{selesai:g}%".replace(".", ",")
    legend = {li.attrs["data-status"]: li.text for li in dom.find(id="status-legend").find_all("li")}
    assert legend["selesai"].startswith(f"Selesai {summary['by_status']['selesai']['count']} ")
    assert "Jakarta Timur" in dom.find(id="filter-summary").text

    # a category row: street lights, only ours in Jakarta Timur
    row = dom.find("tr", data_category="jaringan-listrik")
    cells = [td.text for td in row.find_all("td")]
    assert cells[0] == "Jaringan Listrik Street lights and cables"
    assert cells[1] == "4" and cells[3] == "75%"

    # the agency table: the roads Suku Dinas of Jakarta Timur is ranked (12 reports, min 5 on this page)
    ranked = dom.find(id="agencies").find("tbody")
    roads = ranked.find("tr", data_opd=ROADS_OPD)
    cells = [td.text for td in roads.find_all("td")]
    agencies = stats(system, "/api/v1/stats/agencies", kota=KOTA, min_reports=5)
    expected = next(r for r in agencies["ranked"] if r["opd"] == ROADS_OPD)
    assert cells[0] == str(expected["rank"])
    assert cells[1].startswith("Sudin Bina Marga Jakarta Timur") and ROADS_OPD in cells[1]
    assert cells[2] == str(expected["received"]) and expected["received"] >= 12
    assert cells[-1] == f"{expected['score']:g}".replace(".", ",")
    unranked = [tr.attrs.get("data-opd") for tr in dom.find(id="agencies-unranked").find_all("tr")]
    assert "kelurahan-rawamangun" in unranked

    # the map: every kelurahan drawn from the boundary file, ours coloured by their count
    paths = list(dom.find(id="map").find_all("path"))
    assert len(paths) == 267
    by_name = {p.attrs["data-kelurahan"]: p for p in paths}
    areas = {r["kelurahan"]: r for r in stats(system, "/api/v1/stats/by/kelurahan", kota=KOTA)["rows"]}
    rawamangun = by_name["Rawamangun"]
    assert int(rawamangun.attrs["data-count"]) == areas["Rawamangun"]["total"] >= 6
    assert rawamangun.attrs["fill"] != MAP_EMPTY
    assert "Rawamangun, Pulogadung, Jakarta Timur" in rawamangun.text
    coloured = {p.attrs["data-kelurahan"] for p in paths if p.attrs["fill"] != MAP_EMPTY}
    assert set(PLACES) <= coloured
    assert by_name["Melawai"].attrs["fill"] == MAP_EMPTY  # filtered to Jakarta Timur
    assert len(list(dom.find(id="trend").find_all("rect"))) == 30


def test_the_dashboard_works_offline_and_is_saved_as_a_screenshot(
    system: RunningSystem, east: list[Filed], tmp_path: Path
) -> None:
    # everything the page loads comes from the stats service itself: no CDN, no tile server
    html = requests.get(system.url("stats", "/dashboard"), timeout=10)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in html.headers["Content-Security-Policy"]
    assert "http://" not in html.text and "https://" not in html.text
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        response = requests.get(system.url("stats", asset), timeout=10)
        assert response.status_code == 200 and "https://" not in response.text
    assert requests.get(system.url("stats", "/static/..%2Fservice.py"), timeout=10).status_code == 404
    assert requests.get(system.url("stats", "/"), timeout=10).text == html.text

    shot = tmp_path / "dashboard.png"
    result = browse(dashboard_url(system), f"--screenshot={shot}", "--window-size=1280,2300")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    image = Image.open(shot)
    assert image.size == (1280, 2300)
    # the page drew something: many colours (map, charts), not a blank or error page
    assert len(image.convert("RGB").getcolors(maxcolors=100_000) or []) > 50
    # the commit-worthy copy goes to docs/ only when asked (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean
    docs = ROOT / "docs" / "dashboard.png" if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "small.png"
    docs.parent.mkdir(exist_ok=True)
    # the small copy: the page's background below the footer cut off, a 256-colour palette keeps it small
    rgb = image.convert("RGB")
    background = rgb.getpixel((2, rgb.height - 2))
    rows = [y for y in range(rgb.height) if any(rgb.getpixel((x, y)) != background for x in range(0, rgb.width, 4))]
    rgb = rgb.crop((0, 0, rgb.width, min(rgb.height, rows[-1] + 24)))
    rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(docs, optimize=True)
    assert docs.stat().st_size < 300_000


def load_dashboard(system: RunningSystem, **query: str) -> Node:
    page = browse(system.url("stats", "/dashboard?" + urlencode(query)), "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    return parse(page.stdout)


def test_a_bad_filter_is_named_in_indonesian_and_the_rest_of_the_page_still_shows(
    system: RunningSystem, east: list[Filed]
) -> None:
    dom = load_dashboard(system, kota="Bogor", category="jalan")
    error = dom.find(id="error")
    assert "hidden" not in error.attrs
    assert error.text.startswith('Filter Kota "Bogor" tidak valid dan diabaikan'), error.text
    assert dom.find("body").attrs.get("data-state") == "ready"
    # the page shows the filters that are valid (all of Jakarta, roads only): headline, figures and the map
    summary = stats(system, "/api/v1/stats/summary", category="jalan")
    assert dom.find(id="headline").text == summary["headline"] != "Memuat data…"
    assert dom.find(id="kpi-total").text == f"{summary['total']:,}".replace(",", ".")
    assert dom.find(id="filter-summary").text == "Jalan"
    paths = list(dom.find(id="map").find_all("path"))
    assert len(paths) == 267
    assert any(p.attrs["fill"] != MAP_EMPTY for p in paths)

    dom = load_dashboard(system, kota=KOTA, **{"from": "2026-13-45"})
    assert dom.find(id="error").text.startswith('Filter Dari "2026-13-45" tidak valid dan diabaikan')
    assert dom.find(id="headline").text == stats(system, "/api/v1/stats/summary", kota=KOTA)["headline"]
    assert len(list(dom.find(id="map").find_all("path"))) == 267


def test_the_category_filter_offers_every_category(system: RunningSystem, east: list[Filed]) -> None:
    # Jakarta Timur has reports in four categories; a citizen may still look for any of them
    dom = load_dashboard(system, kota=KOTA)
    offered = [o.attrs["value"] for o in dom.find(id="f-category").find_all("option")]
    categories = requests.get(system.url("intake", "/api/v1/categories"), timeout=10).json()["categories"]
    assert offered[0] == "" and sorted(offered[1:]) == sorted(c["code"] for c in categories)
    assert len(categories) > 4
    assert requests.get(system.url("stats", "/api/v1/stats/categories"), timeout=10).json() == {
        "categories": categories
    }
    refused = requests.get(system.url("stats", "/api/v1/stats/categories?kota=x"), timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "kota"


def test_empty_states_read_as_sentences_not_list_items(system: RunningSystem, east: list[Filed]) -> None:
    dom = load_dashboard(system, **{"from": "2020-01-01", "to": "2020-01-31"})
    assert dom.find("body").attrs.get("data-state") == "ready", dom.find(id="error").text
    # the busiest kelurahan: no numbered "1. Belum ada laporan", a plain sentence instead
    assert list(dom.find(id="top-kelurahan").find_all("li")) == []
    empty = dom.find(id="top-kelurahan-empty")
    assert empty.tag == "p" and "hidden" not in empty.attrs and empty.text == "Belum ada laporan"
    # both agency tables say why they are empty
    (ranked,) = dom.find(id="agencies").find("tbody").find_all("tr")
    assert ranked.text.startswith("Belum ada OPD dengan")
    (unranked,) = dom.find(id="agencies-unranked").find("tbody").find_all("tr")
    assert unranked.text.startswith("Belum ada OPD yang menerima laporan")

    # with reports, the list is there and the sentence is not
    dom = load_dashboard(system, kota=KOTA)
    assert "hidden" in dom.find(id="top-kelurahan-empty").attrs
    assert len(list(dom.find(id="top-kelurahan").find_all("li"))) == 8
