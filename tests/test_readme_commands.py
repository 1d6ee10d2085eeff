"""Every command the README and the start-up banner show works as written from the repository root, in a shell
whose PATH has no virtualenv in it (a new user's terminal): its program resolves, its make target, module or
subcommand exists, and the cheap ones run and print what the README says."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from jaklapor.config import load_config
from jaklapor_app.runner import banner_commands
from tests.system import ROOT

README = ROOT / "README.md"
#: the first word of an inline code span that makes it a command (anything else is a name, a path, a URL, …)
COMMAND_WORDS = {
    "make", "python", "python3", "pip", "jaklapor", "nameko", "pytest", "ruff", "curl", "kubectl", "docker",
    "docker-compose", "promtool", "rabbitmqctl", "rabbitmq-plugins", "bash", "sh", "kill",
}  # fmt: skip
COMMAND_PREFIXES = (".venv/", "scripts/", "./")
#: tools for a place the development machine is not (the README says so where it names them)
OTHER_MACHINES = {"kubectl": "a Kubernetes cluster's client"}


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    return [
        (language, body.splitlines())
        for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    ]


def block_commands(lines: list[str]) -> list[str]:
    """Commands of a shell block: the `$ ` lines when it shows a session, else every line but comments and output
    (`# ...`), continuation lines joined."""
    prompted = any(line.startswith("$ ") for line in lines)
    commands: list[str] = []
    pending = ""
    for line in lines:
        if pending:
            pending += " " + line.strip()
        elif prompted:
            if not line.startswith("$ "):
                continue
            pending = line[2:]
        elif line.strip() and not line.lstrip().startswith("#"):
            pending = line.strip()
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append(pending)
        pending = ""
    return commands


def inline_commands(text: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]  # a span may wrap a line
    return [span for span in spans if span and (span.split()[0] in COMMAND_WORDS or span.startswith(COMMAND_PREFIXES))]


def readme_commands() -> list[str]:
    text = README.read_text()
    commands = inline_commands(text)
    for language, lines in fenced_blocks(text):
        if language in ("sh", "bash", "shell", "console"):
            commands += block_commands(lines)
    return commands


def programs_of(command: str) -> list[list[str]]:
    """The argv of each program a command line runs: `KEY=$(a b) c d | e` gives [a, b], [c, d], [e]."""
    found = [programs_of(inner)[0] for inner in re.findall(r"\$\(([^)]*)\)", command)]
    lexer = shlex.shlex(re.sub(r"\$\([^)]*\)", "VALUE", command), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True  # `#` starts a comment, as in a shell
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token in (";", "&", "&&", "|", "||"):
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the program
                words.pop(0)
            if words:
                found.append(words)
            words = []
        else:
            words.append(token)
    return found


def path_without_virtualenv() -> str:
    virtualenvs = {str(ROOT / ".venv" / "bin"), os.path.join(os.environ.get("VIRTUAL_ENV", "/nonexistent"), "bin")}
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in virtualenvs)


@functools.cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


@functools.cache
def jaklapor_subcommand_exists(name: str) -> bool:
    result = subprocess.run(
        [str(ROOT / ".venv/bin/jaklapor"), name, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return result.returncode == 0 and "usage: jaklapor" in result.stdout


def problem_with(argv: list[str]) -> str | None:
    """Why this program cannot run as written from the repository root, or None."""
    program, args = argv[0], argv[1:]
    if "/" in program:
        if not os.access(ROOT / program, os.X_OK):
            return f"{program} is not an executable file in the repository"
    elif program in OTHER_MACHINES:
        return None
    elif shutil.which(program, path=path_without_virtualenv()) is None:
        return f"{program!r} is not on a fresh shell's PATH (write .venv/bin/{program} or a make target)"
    if program == "make":
        if args and args[0] not in make_targets():
            return f"no make target {args[0]!r}"
    elif os.path.basename(program).startswith("python"):
        target = args[:2] if args[:1] == ["-m"] else args[:1]
        if "/" not in program and target[:1] != ["-m"]:
            return f"{program} {' '.join(target)}: the system's interpreter lacks the packages; write .venv/bin/python"
        if "/" not in program:
            # the system's interpreter, without the project's packages: it must really get as far as --help
            result = run_readme_command(shlex.join([program, *target, "--help"]))
            if result.returncode != 0:
                return f"{program} {' '.join(target)} fails without the virtualenv: {result.stderr[-300:]}"
        elif target[:1] == ["-m"] and importlib.util.find_spec(target[1]) is None:
            return f"no module {target[1]}"
        elif target and target[0] != "-m" and not (ROOT / target[0]).is_file():
            return f"no script {target[0]}"
    elif os.path.basename(program) == "jaklapor" and args and not jaklapor_subcommand_exists(args[0]):
        return f"no jaklapor subcommand {args[0]!r}"
    return None


def test_the_readme_shows_commands() -> None:
    commands = readme_commands()
    # the ones a new user types first, found by the extraction
    assert ["make", "run"] in [argv for c in commands for argv in programs_of(c)]
    assert any(c.startswith(".venv/bin/jaklapor opd-key") for c in commands)
    assert any("curl" in c for c in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_as_written(command: str) -> None:
    problems = [p for argv in programs_of(command) if (p := problem_with(argv))]
    assert not problems, f"{command!r}: {problems}"


def test_banner_commands_run_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # where `make run` starts it
    config = load_config()
    commands = banner_commands(config, ["intake", "routing", "notify", "stats"])
    assert [label for label, _ in commands] == ["try it", "OPD API keys", "verifier key"]
    for _label, command in commands:
        problems = [p for argv in programs_of(command) if (p := problem_with(argv))]
        assert not problems, f"banner: {command!r}: {problems}"


def test_the_banner_shows_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from jaklapor_app.runner import ready_banner

    monkeypatch.chdir(ROOT)
    banner = "\n".join(ready_banner(load_config(), ["intake", "routing", "notify", "stats"]))
    assert "public dashboard    http://127.0.0.1:8002/\n" in banner


def run_readme_command(command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path_without_virtualenv()}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_verifier_key_command_prints_the_verifiers_key() -> None:
    from jaklapor.opd_keys import VERIFIER_CODE, derive_key

    result = run_readme_command(".venv/bin/jaklapor verifier-key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == derive_key(load_config()["OPD_KEY_SECRET"], VERIFIER_CODE)


def test_opd_key_command_prints_a_key() -> None:
    (shown,) = [c for c in readme_commands() if c.startswith(".venv/bin/jaklapor opd-key <opd_code>")]
    result = run_readme_command(shown.replace("<opd_code>", "sudin-perhubungan-jakarta-selatan"))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\S{20,}\n", result.stdout), result.stdout


def test_route_command_prints_what_the_readme_shows() -> None:
    (shown,) = [c for c in readme_commands() if c.startswith(".venv/bin/jaklapor route --lat -")]
    result = run_readme_command(shown)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["kelurahan"], decision["opd"]) == ("Melawai", "sudin-perhubungan-jakarta-selatan")


def test_a_bare_jaklapor_is_caught() -> None:
    """The check itself: the README's old style, which a new user's shell cannot find."""
    assert problem_with(["jaklapor", "opd-key", "x"]) is not None
    assert problem_with(["make", "no-such-target"]) is not None
    assert problem_with([".venv/bin/jaklapor", "no-such-command"]) is not None
    assert problem_with([".venv/bin/jaklapor", "opd-key", "x"]) is None
