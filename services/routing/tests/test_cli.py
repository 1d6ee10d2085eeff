"""`jaklapor route` (services.routing.cli.route_command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.routing.cli import route_command

REPO = Path(__file__).resolve().parents[3]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = route_command(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_route_with_category(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--lat", "-6.2443", "--lon", "106.8001", "--category", "Parkir Liar")
    assert code == 0 and err == ""
    assert out == {
        "kelurahan": "Melawai",
        "kecamatan": "Kebayoran Baru",
        "kota": "Jakarta Selatan",
        "code": "31.74.07.1001",
        "match": "inside",
        "category": "parkir-liar",
        "opd": "sudin-perhubungan-jakarta-selatan",
        "opd_name": "Suku Dinas Perhubungan Kota Administrasi Jakarta Selatan",
        "routing_key": "sudin-perhubungan-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai",
    }


def test_route_without_category_gives_the_kelurahan_office(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--lat", "-6.1754", "--lon", "106.8272")
    assert code == 0
    assert (out["kelurahan"], out["kecamatan"], out["kota"]) == ("Gambir", "Gambir", "Jakarta Pusat")
    assert out["opd"] == "kelurahan-gambir"
    assert out["opd_name"] == "Kelurahan Gambir"
    assert out["routing_key"] == "kelurahan-gambir.jakarta-pusat.gambir.gambir"
    assert "distance_m" not in out


def test_route_snapped_point_reports_the_distance(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--lat", "-6.103", "--lon", "106.878", "--category", "sampah")
    assert code == 0
    assert out["match"] == "snapped"
    assert out["kelurahan"] == "Tanjung Priok"
    assert 30 < out["distance_m"] < 100
    assert out["opd"] == "kelurahan-tanjung-priok"


def test_route_outside(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--lat", "-6.2383", "--lon", "106.9756")  # Bekasi
    assert code == 0
    assert out["outside"] is True
    assert out["reason"] == "outside_jakarta"
    assert out["distance_m"] > 2500
    assert out["routing_key"] == "triage.outside-jakarta"


def test_route_snap_cap_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--lat", "-6.2383", "--lon", "106.9756", "--snap-cap-m", "5000")
    assert code == 0
    assert out["match"] == "snapped" and out["kelurahan"] == "Pulo Gebang"


def test_unknown_category_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--lat", "-6.2443", "--lon", "106.8001", "--category", "ufo")
    assert code == 2
    assert out is None
    body = json.loads(err)
    assert body["error"] == "unknown_category"
    assert body["field"] == "category"
    assert "parkir-liar" in body["known"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--lat", "nan", "--lon", "106.8"], "lat"),
        (["--lat", "-6.2", "--lon", "200"], "lon"),
        (["--lat", "-6.2", "--lon", "106.8", "--snap-cap-m", "-1"], "snap_cap_m"),
    ],
)
def test_invalid_input_is_an_error(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out is None
    body = json.loads(err)
    assert (body["error"], body["field"]) == ("invalid_input", field)


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert route_command(["--lat", "-6.2"]) == 2
    assert "required" in capsys.readouterr().err
    assert route_command(["--help"]) == 0


def test_module_entrypoint() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.routing.cli",
            "--lat",
            "-5.7456",
            "--lon",
            "106.6137",
            "--category",
            "gangguan-ketenteraman-dan-ketertiban",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kota"] == "Kepulauan Seribu"
    assert out["opd"] == "satpol-pp-kepulauan-seribu"
    assert out["routing_key"] == ("satpol-pp-kepulauan-seribu.kepulauan-seribu.kepulauan-seribu-utara.pulau-panggang")
