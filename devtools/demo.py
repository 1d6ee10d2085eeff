"""`jaklapor demo`: walk sample reports through a running system and narrate what happens.

Start the system in one terminal (`make run`), then run `make demo` (or `jaklapor demo`) in another. The demo acts as
citizens (submits reports with GPS-tagged photos, follows one live), as agencies (reads an OPD queue over AMQP, answers
through the OPD API with the OPD's key) and as the public (reads the statistics). It talks to the system only through
its public interfaces: HTTP for the gateway and statistics, AMQP for the OPD queue.

The AMQP URI and the OPD key secret come from the same configuration as the system (`--config FILE`, or the packaged
config.yaml with `${VAR:default}` expanded from the environment), so set the same environment variables as for
`jaklapor run` when they differ from the defaults.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from PIL import ExifTags, Image, ImageDraw

from jaklapor.vocabulary import JAKARTA_TZ
from jaklapor_app.system import jaklapor_command

HTTP_TIMEOUT = 10.0
SUBMIT_DEADLINE = 120.0
ROUTING_DEADLINE = 30.0
QUEUE_DEADLINE = 15.0
STREAM_DEADLINE = 15.0
STATS_DEADLINE = 30.0
POLL_INTERVAL = 0.2
# how many other messages the demo may step over (and give back) while looking for its own in an OPD queue
QUEUE_SCAN_LIMIT = 50

STATUS_ORDER = ("menunggu", "koordinasi", "disposisi", "dikerjakan", "selesai", "ditolak")


class DemoError(Exception):
    """Something the demo needs did not happen; the message says what and what to check."""


# ---- the story -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A citizen's report and where the routing rules send it (checked offline by `jaklapor route`)."""

    key: str
    category: str
    description: str
    lat: float
    lon: float
    place: str
    expect_opd: str
    expect_kelurahan: str | None
    contact: str | None = None


@dataclass(frozen=True)
class Action:
    """One answer of the responsible OPD, in order; `expect_error` marks a request the API must refuse."""

    sample: str
    status: str
    note: str
    reason: str | None = None
    target_opd: str | None = None
    evidence: bool = False
    expect_error: str | None = None


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "sudirman",
        "jalan",
        "Jalan berlubang cukup dalam di lajur lambat Jl. Jend. Sudirman dekat halte Karet; "
        "sudah dua pengendara motor terjatuh saat hujan.",
        -6.2146,
        106.8185,
        "Jl. Jend. Sudirman, Karet",
        "sudin-bina-marga-jakarta-selatan",
        "Karet",
    ),
    Sample(
        "pohon",
        "pohon",
        "Pohon angsana tumbang setelah hujan deras dan menutup separuh badan jalan di Kebayoran Baru.",
        -6.2395,
        106.8010,
        "Kebayoran Baru",
        "sudin-pertamanan-hutan-kota-jakarta-selatan",
        "Selong",
    ),
    Sample(
        "blok-m",
        "parkir-liar",
        "Mobil dan motor parkir liar di trotoar depan Blok M Square; pejalan kaki terpaksa turun ke jalan.",
        -6.2443,
        106.8003,
        "Blok M",
        "sudin-perhubungan-jakarta-selatan",
        "Melawai",
        contact="warga.blokm@example.org",
    ),
    Sample(
        "sampah",
        "sampah",
        "Sampah rumah tangga menumpuk di pinggir jalan, sudah tiga hari tidak diangkut dan baunya menyengat.",
        -6.2250,
        106.9000,
        "Pondok Bambu, Jakarta Timur",
        "kelurahan-pondok-bambu",
        "Pondok Bambu",
    ),
    Sample(
        "tanah-abang",
        "pkl-liar",
        "PKL berjualan di trotoar dan bahu jalan depan Pasar Tanah Abang, menghambat pejalan kaki dan angkot.",
        -6.1860,
        106.8130,
        "Pasar Tanah Abang",
        "satpol-pp-jakarta-pusat",
        "Kampung Bali",
    ),
    Sample(
        "kota-tua",
        "gangguan-ketenteraman-dan-ketertiban",
        "Sekelompok orang mabuk membuat keributan hampir setiap malam di sekitar Taman Fatahillah, Kota Tua.",
        -6.1352,
        106.8133,
        "Taman Fatahillah, Kota Tua",
        "satpol-pp-jakarta-barat",
        "Pinangsia",
    ),
    Sample(
        "kelapa-gading",
        "saluran-air-kali-sungai",
        "Saluran air tersumbat lumpur dan sampah; setiap hujan air meluap ke jalan perumahan.",
        -6.1580,
        106.9050,
        "Kelapa Gading",
        "sudin-sumber-daya-air-jakarta-utara",
        "Kelapa Gading Timur",
    ),
    Sample(
        "melawai",
        "ppsu",
        "Mohon PPSU memeriksa: jalan ambles dan penutup saluran hilang di dekat Jl. Melawai, "
        "berbahaya bagi pengendara motor.",
        -6.2440,
        106.7995,
        "Jl. Melawai",
        "kelurahan-melawai",
        "Melawai",
    ),
    Sample(
        "depok",
        "jalan",
        "Jalan perumahan rusak dan berlubang, tergenang air setiap hujan.",
        -6.4025,
        106.7942,
        "Depok (Jawa Barat)",
        "triage",
        None,
    ),
)

ACTIONS: tuple[Action, ...] = (
    Action("sudirman", "dikerjakan", "Tim Sudin Bina Marga menuju lokasi untuk menambal lubang."),
    Action("sudirman", "selesai", "Sudah selesai, tapi lupa foto.", expect_error="missing_evidence"),
    Action("sudirman", "selesai", "Lubang sudah ditambal dengan aspal, lajur lambat bisa dilalui lagi.", evidence=True),
    Action("pohon", "dikerjakan", "Regu pemangkasan Sudin Pertamanan dan Hutan Kota dikerahkan."),
    Action("pohon", "selesai", "Batang pohon sudah dipotong dan diangkut; jalan kembali lancar.", evidence=True),
    Action("sampah", "dikerjakan", "PPSU kelurahan dijadwalkan mengangkut sampah pagi ini."),
    Action(
        "sampah",
        "selesai",
        "Sampah sudah diangkut ke TPS; warga diimbau membuang sampah pada jadwalnya.",
        evidence=True,
    ),
    Action("blok-m", "dikerjakan", "Petugas Dishub menuju Blok M untuk menderek kendaraan yang parkir di trotoar."),
    Action("tanah-abang", "dikerjakan", "Satpol PP Jakarta Pusat melakukan penertiban PKL."),
    Action(
        "melawai",
        "koordinasi",
        "Jalan ambles perlu perbaikan konstruksi; diteruskan ke Sudin Bina Marga Jakarta Selatan.",
        target_opd="sudin-bina-marga-jakarta-selatan",
    ),
    Action(
        "depok",
        "ditolak",
        "Lokasi berada di Kota Depok, di luar wilayah DKI Jakarta; silakan melapor ke Pemerintah Kota Depok.",
        reason="di-luar-jakarta",
    ),
)

# the report whose live stream (Server-Sent Events) the demo follows, and the OPD queue it reads over AMQP
STREAM_SAMPLE = "sudirman"
QUEUE_SAMPLE = "blok-m"


@dataclass
class Submitted:
    sample: Sample
    report_id: str
    token: str
    tracking_url: str
    stream_url: str
    photo: bytes
    view: dict[str, Any] = field(default_factory=dict)

    @property
    def opd(self) -> dict[str, Any]:
        return self.view.get("responsible_opd") or {}


@dataclass
class Demo:
    """What the steps share: where the system is, the demo's own configuration and one HTTP session."""

    url: str
    stats_url: str
    config: dict[str, Any]
    session: requests.Session
    reports: dict[str, Submitted] = field(default_factory=dict)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, timeout=kwargs.pop("timeout", HTTP_TIMEOUT), **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.post(url, timeout=kwargs.pop("timeout", HTTP_TIMEOUT), **kwargs)


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(number: int, text: str) -> None:
    say()
    say(f"{number}. {text}")


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def error_of(response: requests.Response) -> str:
    """`409 illegal_transition: …` from the gateway's JSON error, or the start of whatever body came back."""
    try:
        error = response.json().get("error") or {}
        return f"{response.status_code} {error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        return f"{response.status_code} {shorten(response.text.strip(), 200)}"


def retry_after(response: requests.Response, default: float = 1.0) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.1), 30.0)
    except ValueError:
        return default


def poll(condition: Callable[[], Any], deadline: float, what: str) -> Any:
    """Call `condition` until it returns something truthy; DemoError naming `what` once `deadline` passed."""
    end = time.monotonic() + deadline
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > end:
            raise DemoError(f"timed out after {deadline:g}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


# ---- photos ----------------------------------------------------------------------------------------------------------


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 2)


def photo_with_gps(
    lat: float, lon: float, caption: str, colour: tuple[int, int, int] = (90, 90, 96), *, evidence: bool = False
) -> bytes:
    """A small JPEG as a phone would take it: a picture plus EXIF with camera, time and the GPS position. The
    evidence of a fix is another picture (the repaired street, taken now), so the automatic check can match it."""
    image = Image.new("RGB", (320, 240), (150, 190, 230))
    draw = ImageDraw.Draw(image)
    if evidence:
        draw.polygon([(0, 240), (120, 90), (200, 90), (320, 240)], fill=colour)
        for y in range(110, 240, 30):
            draw.rectangle((155, y, 165, y + 14), fill=(240, 240, 240))
        draw.rectangle((0, 60, 60, 240), fill=(60, 120, 60))
    else:
        draw.rectangle((0, 130, 320, 240), fill=colour)
        draw.rectangle((0, 182, 320, 188), fill=(235, 235, 235))
        draw.ellipse((140, 150, 200, 175), fill=(40, 40, 40))
    draw.text((8, 8), shorten(caption, 48), fill=(20, 20, 20))
    draw.text((8, 24), f"{lat:.4f}, {lon:.4f}", fill=(20, 20, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "DemoPhone"
    exif[ExifTags.Base.Model] = "JakLapor Demo"
    taken = datetime.now(JAKARTA_TZ) if evidence else datetime(2024, 5, 1, 8, 30, tzinfo=JAKARTA_TZ)
    exif[ExifTags.Base.DateTime] = taken.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "S" if lat < 0 else "N"
    gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W" if lon < 0 else "E"
    gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80, exif=exif.tobytes())
    return buffer.getvalue()


def gps_of(jpeg: bytes) -> tuple[float, float] | None:
    """The GPS position in a JPEG's EXIF, or None."""
    with Image.open(io.BytesIO(jpeg)) as image:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    if ExifTags.GPS.GPSLatitude not in gps or ExifTags.GPS.GPSLongitude not in gps:
        return None

    def degrees(values: Any, ref: str, negative: str) -> float:
        value = float(values[0]) + float(values[1]) / 60 + float(values[2]) / 3600
        return -value if ref == negative else value

    return (
        degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S"),
        degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W"),
    )


def metadata_of(jpeg: bytes) -> list[str]:
    """Names of the metadata blocks an image carries (EXIF, XMP, comments); empty for a clean image."""
    with Image.open(io.BytesIO(jpeg)) as image:
        found = ["EXIF"] if image.getexif() else []
        found += [key for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment") if image.info.get(key)]
    return found


# ---- 1. is the system there? -----------------------------------------------------------------------------------------


def check_gateway(demo: Demo) -> bool:
    heading(1, "Is the system running?")
    for name, base in (("intake gateway", demo.url), ("statistics", demo.stats_url)):
        try:
            response = demo.get(f"{base}/health", timeout=5)
        except requests.RequestException:
            say(f"   ✗ the {name} does not answer at {base}")
            say("     Start the system in another terminal with `make run`, wait for its 'jaklapor is up' banner,")
            say("     then run `make demo` again.")
            elsewhere = f"`{jaklapor_command()} demo --url URL --stats-url URL`"
            say(f"     Elsewhere than on 127.0.0.1:8000 / :8002? Use {elsewhere}.")
            return False
        if response.status_code != 200:
            failing = ", ".join(k for k, ok in (_json(response).get("checks") or {}).items() if not ok)
            say(f"   ✗ the {name} at {base} is unhealthy ({response.status_code}; failing: {failing or 'unknown'})")
            say("     Look at the `make run` terminal; the demo needs every check to pass.")
            return False
        say(f"   ✓ {name} answers at {base}/health")
    return True


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def fetch_categories(demo: Demo) -> dict[str, str]:
    response = demo.get(f"{demo.url}/api/v1/categories")
    if response.status_code != 200:
        raise DemoError(f"GET /api/v1/categories failed: {error_of(response)}")
    categories = {c["code"]: c["name"] for c in response.json()["categories"]}
    missing = sorted({s.category for s in SAMPLES} - set(categories))
    if missing:
        raise DemoError(f"the gateway does not know the demo's categories {missing}")
    say(f"   ✓ {len(categories)} report categories (GET /api/v1/categories), e.g. " + ", ".join(list(categories)[:5]))
    return categories


def fetch_summary(demo: Demo) -> dict[str, Any]:
    response = demo.get(f"{demo.stats_url}/api/v1/stats/summary")
    if response.status_code != 200:
        raise DemoError(f"GET {demo.stats_url}/api/v1/stats/summary failed: {error_of(response)}")
    return response.json()


def status_counts(summary: dict[str, Any]) -> dict[str, int]:
    return {status: int(row.get("count", 0)) for status, row in (summary.get("by_status") or {}).items()}


# ---- 2. citizens submit ----------------------------------------------------------------------------------------------


def submit(demo: Demo, sample: Sample) -> Submitted:
    photo = photo_with_gps(sample.lat, sample.lon, f"{sample.category} - {sample.place}")
    data = {"category": sample.category, "description": sample.description, "lat": sample.lat, "lon": sample.lon}
    if sample.contact:
        data["contact"] = sample.contact
    end = time.monotonic() + SUBMIT_DEADLINE
    while True:
        response = demo.post(
            f"{demo.url}/api/v1/reports",
            data=data,
            files={"photo": (f"IMG_{sample.key}.jpg", photo, "image/jpeg")},
            timeout=30,
        )
        if response.status_code not in (429, 503) or time.monotonic() > end:
            break
        # rate limited (anonymous intake allows a burst, then a steady rate) or briefly unavailable: wait as told
        pause = retry_after(response)
        say(f"   … the gateway answered {response.status_code}; waiting {pause:g}s as its Retry-After says")
        time.sleep(pause)
    if response.status_code != 201:
        raise DemoError(f"submitting the {sample.key} report was refused: {error_of(response)}")
    receipt = response.json()
    return Submitted(
        sample,
        receipt["report_id"],
        receipt["tracking_token"],
        receipt["tracking_url"],
        receipt["stream_url"],
        photo,
    )


def submit_all(demo: Demo, categories: dict[str, str]) -> None:
    heading(2, f"Citizens submit {len(SAMPLES)} reports (POST /api/v1/reports: photo, category, description, lat, lon)")
    for sample in SAMPLES:
        report = submit(demo, sample)
        demo.reports[sample.key] = report
        name = categories.get(sample.category, sample.category)
        text = shorten(sample.description, 46)
        say(f"   {report.report_id}  {shorten(name, 24):<24} {shorten(sample.place, 28):<28} “{text}”")
    with_contact = [r for r in demo.reports.values() if r.sample.contact]
    for report in with_contact:
        say(f"   ({report.report_id} left a contact for updates: only the notify service keeps it, encrypted)")
    say("   Each receipt holds a secret tracking token; the citizen stays anonymous.")


# ---- 3. routing ------------------------------------------------------------------------------------------------------


def tracking_view(demo: Demo, report: Submitted) -> dict[str, Any]:
    response = demo.get(f"{demo.url}/api/v1/reports/{report.token}")
    if response.status_code != 200:
        raise DemoError(f"tracking view of {report.report_id} failed: {error_of(response)}")
    return response.json()


def wait_until_routed(demo: Demo) -> None:
    heading(3, "Routing finds the kelurahan of each point and the responsible OPD (tracking view)")
    pending = dict(demo.reports)

    def all_routed() -> bool:
        for key, report in list(pending.items()):
            view = tracking_view(demo, report)
            if view.get("responsible_opd"):
                report.view = view
                del pending[key]
        return not pending

    poll(all_routed, ROUTING_DEADLINE, "routing of " + ", ".join(r.report_id for r in pending.values()))
    for report in demo.reports.values():
        say(f"   {report.report_id}  {where(report)}")
        say(f"   {'':18}  → {opd_label(report.opd)}{expectation(report)}")


def where(report: Submitted) -> str:
    area = report.view.get("area")
    if area and area.get("kelurahan"):
        return f"{area['kelurahan']}, {area['kecamatan']}, {area['kota']}"
    reason = report.view.get("triage_reason") or "no area"
    return f"{report.sample.place}: no Jakarta kelurahan here ({reason}), so the triage desk gets it"


def opd_label(opd: dict[str, Any]) -> str:
    return f"{opd.get('name')} [{opd.get('code')}]"


def expectation(report: Submitted) -> str:
    area = report.view.get("area") or {}
    if report.opd.get("code") == report.sample.expect_opd and area.get("kelurahan") == report.sample.expect_kelurahan:
        return ""
    return f"   (the demo expected {report.sample.expect_opd} in {report.sample.expect_kelurahan or 'triage'})"


def check_photos(demo: Demo) -> None:
    say()
    say("   Photo privacy: every uploaded JPEG carried the reporter's GPS position in its EXIF, e.g.")
    example = demo.reports[QUEUE_SAMPLE]
    gps = gps_of(example.photo)
    say(f"     {example.report_id} uploaded with GPS {gps[0]:.4f}, {gps[1]:.4f}" if gps else "     (no GPS written?)")
    for report in demo.reports.values():
        links = report.view.get("photos") or []
        if not links:
            raise DemoError(f"the tracking view of {report.report_id} lists no photo")
        response = demo.get(links[0])
        if response.status_code != 200:
            raise DemoError(f"downloading the photo of {report.report_id} failed: {error_of(response)}")
        found = metadata_of(response.content)
        if found:
            raise DemoError(f"the stored photo of {report.report_id} still carries {', '.join(found)}")
    say(f"   ✓ all {len(demo.reports)} stored photos, downloaded from their links, carry no EXIF / GPS / XMP")
    say(f"     e.g. {example.view['photos'][0]}")


# ---- 4. an agency reads its queue ------------------------------------------------------------------------------------


def read_opd_queue(demo: Demo) -> None:
    from amqp.exceptions import AMQPError
    from kombu import Connection
    from kombu.exceptions import KombuError

    with quiet_nameko_import():
        from jaklapor.messaging import opd_queue_name

    report = demo.reports[QUEUE_SAMPLE]
    opd_code = report.opd["code"]
    queue_name = opd_queue_name(opd_code)
    heading(4, f"{report.opd['name']} reads its own durable queue with any AMQP client")
    amqp_uri = demo.config["AMQP_URI"]
    say(f"   kombu, {safe_uri(amqp_uri)}: basic_get from queue {queue_name}")
    ours = {r.report_id for r in demo.reports.values()}
    try:
        with Connection(amqp_uri, connect_timeout=5) as connection:
            channel = connection.channel()
            message, body, skipped = take_own_message(channel, queue_name, ours)
    except (AMQPError, KombuError, OSError) as exc:
        raise DemoError(
            f"could not read {queue_name} at {safe_uri(amqp_uri)}: {exc!r}. Does the demo use the same AMQP_URI "
            "as the running system? (set AMQP_URI, or --config FILE)"
        ) from exc
    raw = message.body if isinstance(message.body, str) else message.body.decode()
    info = message.delivery_info
    persistent = "persistent" if message.properties.get("delivery_mode") == 2 else "transient"
    say(f"   routing key {info.get('routing_key')}  ({persistent}, message_id {message.properties.get('message_id')})")
    for line in trimmed_json(body):
        say(f"     {line}")
    secrets = {"contact": report.sample.contact, "tracking token": report.token}
    leaks = [what for what, secret in secrets.items() if secret and secret in raw]
    if leaks:
        raise DemoError(f"the OPD message of {report.report_id} contains the reporter's {' and '.join(leaks)}")
    say(f"   ✓ acknowledged: the agency has taken {body['report_id']}; no reporter contact or token in the message")
    if skipped:
        say(f"   ({skipped} older message(s) of other reports were handed back to the queue unacknowledged)")


def safe_uri(uri: str) -> str:
    """The AMQP URI without its password."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path or '/'}"


def take_own_message(channel: Any, queue_name: str, ours: set[str]) -> tuple[Any, dict[str, Any], int]:
    """Take (ack) the first message of one of the demo's reports; other messages are held unacked while looking and
    handed back afterwards, so an agency's real work stays in its queue."""
    held: list[Any] = []
    end = time.monotonic() + QUEUE_DEADLINE
    try:
        while True:
            message = channel.basic_get(queue_name, no_ack=False)
            if message is None:
                if time.monotonic() > end:
                    raise DemoError(
                        f"none of the demo's reports arrived in {queue_name} within {QUEUE_DEADLINE:g}s. Does the "
                        "demo use the same AMQP_URI (vhost included) as the running system? (set AMQP_URI, or --config)"
                    )
                time.sleep(POLL_INTERVAL)
                continue
            body = _decode(message.body)
            if body.get("report_id") in ours:
                channel.basic_ack(message.delivery_tag)
                return message, body, len(held)
            held.append(message)
            if len(held) >= QUEUE_SCAN_LIMIT:
                raise DemoError(f"{queue_name} holds more than {QUEUE_SCAN_LIMIT} other messages before the demo's")
    finally:
        for other in held:
            # if the connection broke meanwhile, the broker hands them back by itself
            with contextlib.suppress(Exception):
                channel.basic_reject(other.delivery_tag, requeue=True)


def _decode(body: Any) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def trimmed(value: Any, width: int = 44) -> Any:
    """A copy of a JSON value with long strings cut and lists shortened to their first item."""
    if isinstance(value, str):
        return shorten(value, width)
    if isinstance(value, list):
        head = [trimmed(item, width) for item in value[:1]]
        return head + ([f"… {len(value) - 1} more"] if len(value) > 1 else [])
    if isinstance(value, dict):
        return {key: trimmed(item, width) for key, item in value.items()}
    return value


def trimmed_json(body: dict[str, Any]) -> Iterator[str]:
    """One line per top-level key, long strings shortened: readable in a terminal, still valid JSON."""
    keys = list(body)
    yield "{"
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        yield f"  {json.dumps(key)}: {json.dumps(trimmed(body[key]), ensure_ascii=False)}{comma}"
    yield "}"


# ---- 5 and 6. agencies answer, a citizen watches live ----------------------------------------------------------------


class LiveStream:
    """A citizen's live view: reads Server-Sent Events frames from `stream_url` in a background thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.opened = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-live-stream", daemon=True)

    def start(self, deadline: float = 10.0) -> None:
        self._thread.start()
        if not self.opened.wait(deadline):
            raise DemoError(f"the live stream {self.url} did not open within {deadline:g}s")
        if self.error:
            raise DemoError(f"the live stream {self.url} failed: {self.error}")

    def _run(self) -> None:
        try:
            with requests.get(self.url, stream=True, timeout=(5, 30)) as response:
                if response.status_code != 200:
                    self.error = error_of(response)
                    return
                self.opened.set()
                for frame in sse_frames(self._lines(response)):
                    frame["received"] = time.monotonic()
                    self.frames.put(frame)
        except requests.RequestException as exc:
            self.error = repr(exc)
        finally:
            self.opened.set()

    def _lines(self, response: requests.Response) -> Iterator[str]:
        for line in response.iter_lines(decode_unicode=True):
            if self._stop.is_set():
                return
            yield line if isinstance(line, str) else line.decode()

    def collect_until(self, done: Callable[[dict[str, Any]], bool], deadline: float) -> list[dict[str, Any]]:
        """Every frame up to the first one for which `done` is true; DemoError after `deadline` seconds."""
        seen: list[dict[str, Any]] = []
        end = time.monotonic() + deadline
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                kinds = ", ".join(f.get("event", "?") for f in seen) or "nothing"
                raise DemoError(f"the live stream did not show the expected update within {deadline:g}s (got {kinds})")
            try:
                frame = self.frames.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                if self.error:
                    raise DemoError(f"the live stream broke: {self.error}") from None
                continue
            seen.append(frame)
            if done(frame):
                return seen

    def stop(self) -> None:
        # the reader leaves at the next line it receives (the server sends a keep-alive at least every 15 s)
        self._stop.set()


def sse_frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-Sent Events frames as dicts (`event`, `id`, `data` parsed as JSON); comments and retry hints skipped."""
    frame: dict[str, Any] = {}
    for line in lines:
        if line is None:
            continue
        if line:
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            frame[key] = value.removeprefix(" ")
        elif frame:
            if "data" in frame:
                frame["json"] = _decode(frame["data"])
                yield frame
            frame = {}


def opd_headers(demo: Demo, opd_code: str) -> dict[str, str]:
    from jaklapor.opd_keys import derive_key

    return {"Authorization": f"Bearer {derive_key(demo.config['OPD_KEY_SECRET'], opd_code)}"}


def transition(demo: Demo, report: Submitted, action: Action) -> requests.Response:
    """POST one status change as the report's responsible OPD; waits out `not_routed_yet` (409 with Retry-After)."""
    url = f"{demo.url}/api/v1/opd/reports/{report.report_id}/transitions"
    fields = {"status": action.status, "note": action.note}
    if action.reason:
        fields["reason"] = action.reason
    if action.target_opd:
        fields["target_opd"] = action.target_opd
    end = time.monotonic() + ROUTING_DEADLINE
    while True:
        headers = opd_headers(demo, report.opd["code"])
        if action.evidence:
            evidence = photo_with_gps(
                report.sample.lat, report.sample.lon, "bukti: " + report.sample.place, (60, 60, 60), evidence=True
            )
            files = {"photo": ("bukti.jpg", evidence, "image/jpeg")}
            response = demo.post(url, data=fields, files=files, headers=headers, timeout=30)
        else:
            response = demo.post(url, json=fields, headers=headers)
        code = (_json(response).get("error") or {}).get("code")
        if response.status_code == 409 and code == "not_routed_yet" and time.monotonic() < end:
            time.sleep(retry_after(response))
            continue
        return response


def act_as_agencies(demo: Demo) -> dict[str, float]:
    """Run ACTIONS; returns when each transition of the streamed report was sent (status -> monotonic time)."""
    sent_at: dict[str, float] = {}
    for action in ACTIONS:
        report = demo.reports[action.sample]
        actor = report.opd["code"]
        before = report.view.get("status", "menunggu")
        started = time.monotonic()
        response = transition(demo, report, action)
        if response.status_code == 401:
            raise DemoError(
                f"the gateway refused {actor}'s key ({error_of(response)}): the demo's OPD_KEY_SECRET differs from "
                "the running system's; set OPD_KEY_SECRET (or --config FILE) as for `jaklapor run`"
            )
        if action.expect_error:
            code = (_json(response).get("error") or {}).get("code")
            if code != action.expect_error:
                raise DemoError(
                    f"{report.report_id}: expected a {action.expect_error} refusal, got {error_of(response)}"
                )
            say(f"   {report.report_id}  {actor}: {before} → {action.status} without a photo is refused")
            say(f"      ({error_of(response)})")
            continue
        if response.status_code != 200:
            raise DemoError(f"{report.report_id}: {actor} could not set {action.status}: {error_of(response)}")
        report.view = response.json()
        if action.sample == STREAM_SAMPLE:
            sent_at[action.status] = started
        say(f"   {report.report_id}  {actor}: {before} → {describe(action, report)}")
        say(f"      “{shorten(action.note, 100)}”")
        if report.view.get("pending_verification"):
            if action.sample == STREAM_SAMPLE:
                sent_at[action.status] = time.monotonic()  # the close the citizen sees is the verifier's
            report.view = verify_completion(demo, report)
    return sent_at


def verify_completion(demo: Demo, report: Submitted) -> dict[str, Any]:
    """The city's verifier (its key: `jaklapor verifier-key`) reads the automatic check of the evidence and approves."""
    from jaklapor.opd_keys import VERIFIER_CODE, derive_key

    headers = {"Authorization": f"Bearer {derive_key(demo.config['OPD_KEY_SECRET'], VERIFIER_CODE)}"}
    base = f"{demo.url}/api/v1/verifier/reports/{report.report_id}"
    view = demo.get(base, headers=headers, timeout=10)
    if view.status_code != 200:
        raise DemoError(f"{report.report_id}: the verifier could not read it: {error_of(view)}")
    for check in view.json()["completion"]["checks"]:
        say(f"      menunggu verifikasi; automatic check of the evidence: {check['text']['id']}")
    approved = demo.post(f"{base}/approve", json={}, headers=headers)
    if approved.status_code != 200:
        raise DemoError(f"{report.report_id}: the verifier could not approve: {error_of(approved)}")
    say(f"   {report.report_id}  verifikator (Biro Pemerintahan): approved → selesai")
    return dict(approved.json())


def describe(action: Action, report: Submitted) -> str:
    if action.status == "ditolak":
        return f"ditolak (reason: {action.reason})"
    if action.status == "koordinasi":
        return f"koordinasi, handed to {opd_label(report.opd)}"
    if action.evidence:
        return f"{action.status} (with an evidence photo)"
    return action.status


def open_stream(demo: Demo) -> LiveStream:
    report = demo.reports[STREAM_SAMPLE]
    stream = LiveStream(report.stream_url)
    stream.start()
    say(f"   (a citizen follows {report.report_id} live: GET {report.stream_url}, text/event-stream)")
    return stream


def show_stream(demo: Demo, stream: LiveStream, sent_at: dict[str, float]) -> None:
    report = demo.reports[STREAM_SAMPLE]
    final = report.view.get("status")
    heading(6, f"What the citizen's live stream showed for {report.report_id} (Server-Sent Events)")
    try:
        frames = stream.collect_until(lambda f: f["json"].get("status") == final, STREAM_DEADLINE)
    finally:
        stream.stop()
    for frame in frames:
        data = frame["json"]
        status = data.get("status")
        detail = f"status {status}" if status else (data.get("note") or "")
        lag = ""
        if frame.get("event") == "status_changed" and status in sent_at:
            lag = f"   (+{frame['received'] - sent_at[status]:.2f}s after the agency's request)"
        note = data.get("note") or ""
        extra = f" – “{shorten(note, 50)}”" if status and note else ""
        say(f"   id {frame.get('id', '?'):>2}  event: {frame.get('event', '?'):<15} {detail}{extra}{lag}")


# ---- 7. statistics ---------------------------------------------------------------------------------------------------


def expected_final_statuses(demo: Demo) -> Counter[str]:
    return Counter(report.view.get("status", "menunggu") for report in demo.reports.values())


def wait_for_statistics(demo: Demo, baseline: dict[str, Any]) -> dict[str, Any]:
    heading(7, f"Public statistics (GET {demo.stats_url}/api/v1/stats/summary), rebuilt from events")
    expected = expected_final_statuses(demo)
    base_counts = status_counts(baseline)
    moved = {s: n for s, n in expected.items() if s != "menunggu"}

    def reflects() -> dict[str, Any] | None:
        summary = fetch_summary(demo)
        counts = status_counts(summary)
        total_ok = summary.get("total", 0) >= baseline.get("total", 0) + len(demo.reports)
        moved_ok = all(counts.get(s, 0) >= base_counts.get(s, 0) + n for s, n in moved.items())
        return summary if total_ok and moved_ok else None

    summary = poll(reflects, STATS_DEADLINE, "the statistics to count the demo's reports and transitions")
    added = summary["total"] - baseline.get("total", 0)
    say(f"   {plural(summary['total'], 'report')} counted ({added:+d} since the demo started)")
    say(f"   Headline: “{summary['headline']}”")
    say()
    for line in table("Category", summary.get("by_category") or [], lambda row: row.get("name") or row["category"]):
        say(f"   {line}")
    say()
    for line in table("Kota", summary.get("by_kota") or [], lambda row: row["kota"]):
        say(f"   {line}")
    return summary


def table(title: str, rows: list[dict[str, Any]], label: Callable[[dict[str, Any]], str], limit: int = 10) -> list[str]:
    """A compact text table: one row per group, a column per status that occurs, the selesai share last."""
    statuses = [s for s in STATUS_ORDER if any(row["by_status"].get(s) for row in rows)]
    header = f"{title:<36} {'total':>5} " + " ".join(f"{s:>10}" for s in statuses) + f" {'% selesai':>9}"
    lines = [header, "-" * len(header)]
    for row in rows[:limit]:
        cells = " ".join(f"{row['by_status'].get(s, 0):>10}" for s in statuses)
        lines.append(f"{shorten(label(row), 36):<36} {row['total']:>5} {cells} {row['selesai_percent']:>8.1f}%")
    if len(rows) > limit:
        lines.append(f"… and {len(rows) - limit} more")
    return lines


# ---- 8. what next ----------------------------------------------------------------------------------------------------


def what_next(demo: Demo) -> None:
    heading(8, "Try it yourself")
    report = demo.reports["blok-m"]
    forwarded = demo.reports["melawai"]
    code = report.opd.get("code")
    transitions = f"{demo.url}/api/v1/opd/reports/{report.report_id}/transitions"
    cli = jaklapor_command()
    rows = [
        ("track a report (its citizen)", f"curl {report.tracking_url}"),
        ("follow it live", f"curl -N {report.stream_url}"),
        ("act as its agency", f"KEY=$({cli} opd-key {code})"),
        ("", f'curl -H "Authorization: Bearer $KEY" -F status=selesai -F note=Beres -F photo=@bukti.jpg {transitions}'),
        (
            f"{forwarded.report_id} now waits at",
            f"{forwarded.opd.get('code')}  ({cli} opd-key {forwarded.opd.get('code')})",
        ),
        ("where would a point go (offline)", f"{cli} route --lat -6.2443 --lon 106.8003 --category parkir-liar"),
        ("statistics", f"curl {demo.stats_url}/api/v1/stats/summary"),
    ]
    metrics = [f"{demo.url}/metrics", f"{base_of(report.stream_url)}/metrics", f"{demo.stats_url}/metrics"]
    routing = routing_metrics_url(demo.config)
    if routing:
        metrics.insert(1, routing)
    rows.append(("Prometheus metrics", "  ".join(metrics)))
    for label, text in rows:
        say(f"   {label + ':' if label else '':<34} {text}")


def base_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def routing_metrics_url(config: dict[str, Any]) -> str | None:
    address = str((config.get("HTTP_ADDRESSES") or {}).get("routing") or "")
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics"


# ---- the whole run ---------------------------------------------------------------------------------------------------


def run_demo(url: str, stats_url: str, config_path: str | None) -> int:
    """Walk sample reports through the running system at `url` / `stats_url`; 0 when every step worked."""
    try:
        config = demo_config(config_path)
    except (OSError, ValueError) as exc:
        print(f"cannot read the configuration {config_path or '(packaged config.yaml)'}: {exc}", file=sys.stderr)
        return 2
    with requests.Session() as session:
        demo = Demo(url.rstrip("/"), stats_url.rstrip("/"), config, session)
        try:
            return tell(demo)
        except DemoError as exc:
            say()
            print(f"✗ demo failed: {exc}", file=sys.stderr, flush=True)
            return 1
        except requests.RequestException as exc:
            say()
            print(f"✗ demo failed: lost the connection to the system ({exc})", file=sys.stderr, flush=True)
            print("  Is `make run` still running?", file=sys.stderr, flush=True)
            return 1


def demo_config(config_path: str | None) -> dict[str, Any]:
    """The system's configuration as `jaklapor run` reads it (environment variables expanded)."""
    with quiet_nameko_import():
        from jaklapor.config import load_config

        return load_config(config_path)


@contextlib.contextmanager
def quiet_nameko_import() -> Iterator[None]:
    """Importing nameko (config loader, messaging helpers) warns that eventlet is deprecated: noise in a demo."""
    with warnings.catch_warnings():
        # eventlet's EventletDeprecationWarning is a plain Warning whose message starts with a newline
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        yield


def tell(demo: Demo) -> int:
    say("JakLapor demo: citizens report, routing assigns, agencies answer, the public sees the numbers")
    if not check_gateway(demo):
        return 1
    categories = fetch_categories(demo)
    baseline = fetch_summary(demo)
    say(f"   statistics before the demo: {plural(baseline.get('total', 0), 'report')}")
    submit_all(demo, categories)
    wait_until_routed(demo)
    check_photos(demo)
    read_opd_queue(demo)
    heading(5, "Agencies answer through the OPD API, each with its own key (Authorization: Bearer <key>)")
    stream = open_stream(demo)
    try:
        sent_at = act_as_agencies(demo)
        show_stream(demo, stream, sent_at)
    finally:
        stream.stop()
    wait_for_statistics(demo, baseline)
    what_next(demo)
    say()
    say("✓ demo complete")
    return 0
