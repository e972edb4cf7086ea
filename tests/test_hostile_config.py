"""Hostile config files: alias bombs, deep nesting, unsafe tags, wrong shapes, wrong encodings.

Every one is refused quickly with a message naming the file (and line), and `python -m studio train FILE`
exits 2 with that message and no traceback. The files are written here, a few hundred bytes each.
"""

from __future__ import annotations

import re
import time

import pytest

from studio import config as cfg
from studio.cli import main
from studio.safe_yaml import YamlError, load_yaml
from studio.workspace import Workspace

# nine values, nine times nine, … : 9**7 ≈ 4.8 million strings from about 500 bytes
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdef", "bcdefg")
)


def test_alias_bomb_is_refused_before_it_is_expanded():
    assert len(BILLION_LAUGHS) < 600
    started = time.perf_counter()
    with pytest.raises(YamlError, match=r"bomb\.yaml, line \d+: its aliases expand to more than 100,000 values"):
        load_yaml(BILLION_LAUGHS, "bomb.yaml")
    assert time.perf_counter() - started < 2


def test_a_few_aliases_still_work():
    data = load_yaml("base: &base {rank: 8}\nlora: *base\nother: *base\n")
    assert data == {"base": {"rank": 8}, "lora": {"rank": 8}, "other": {"rank": 8}}


def test_recursive_alias_and_deep_nesting_are_named():
    with pytest.raises(YamlError, match="contains itself"):
        load_yaml("a: &a [*a]\n", "loop.yaml")
    started = time.perf_counter()
    with pytest.raises(YamlError, match=r"deep\.yaml, line 1: nested more than 40 levels deep"):
        load_yaml("[" * 100_000 + "]" * 100_000, "deep.yaml")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("text, message", [
    ("!!python/object/apply:os.system ['echo hacked']\n", "could not determine a constructor for the tag"),
    ("- model\n- train\n", "expected a mapping of sections"),
    ("train: {batch_size: 4\n", "not valid YAML"),
    ("train: [1, 2]\n", "train: expected a mapping of keys under this section"),
])
def test_bad_config_files_are_named(text, message):
    with pytest.raises(cfg.ConfigError, match=message) as caught:
        cfg.from_yaml(text, "my-run.yaml")
    assert "my-run.yaml" in str(caught.value) or "train" in str(caught.value)


def _train_cli(tmp_path, capsys, content: bytes | str) -> tuple[int, str]:
    workspace = Workspace(tmp_path / "ws")
    path = workspace.root / "run.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    code = main(["--workspace", str(workspace.root), "train", str(path), "--detach"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (BILLION_LAUGHS, "aliases expand to more than"),
    ("!!python/object/apply:os.system ['touch /tmp/hacked']\n", "could not determine a constructor"),
    ("- model: tiny-demo\n", "expected a mapping of sections"),
    ("model: {model: tiny-demo\n", "not valid YAML"),
    ("[" * 5000, "nested more than 40 levels deep"),
    ("run_name: caf\xe9\n".encode("latin-1"), r"line 1: not UTF-8 text \(byte 13"),
])
def test_train_with_a_hostile_file_exits_2_naming_it(tmp_path, capsys, content, message):
    started = time.perf_counter()
    code, err = _train_cli(tmp_path, capsys, content)
    assert code == 2
    assert "run.yaml" in err and "Traceback" not in err
    assert len(err) < 2000  # a message, not a dump of the expanded data
    assert re.search(message, err), err
    assert time.perf_counter() - started < 10
    assert not list((tmp_path / "ws" / "runs").iterdir())  # no run folder was made


def test_a_python_tag_never_runs_its_command(tmp_path, capsys):
    marker = tmp_path / "owned"
    code, err = _train_cli(tmp_path, capsys, f"!!python/object/apply:os.system ['touch {marker}']\n")
    assert code == 2 and "could not determine a constructor" in err
    assert not marker.exists()


def test_config_file_over_the_size_limit_is_refused(tmp_path, capsys):
    code, err = _train_cli(tmp_path, capsys, "# padding\n" * 150_000)
    assert code == 2 and "over the 1,000,000 limit" in err


def test_alias_bomb_in_a_key_value_override_is_not_expanded():
    bomb = "[" + ",".join(["&a [x,x,x,x,x,x,x,x,x,x]"] + ["*a"] * 150) + "]"
    overrides = cfg.parse_cli_overrides([f"run_name={bomb}"])
    assert overrides["run_name"] == bomb  # kept as text; validation then refuses the name
    problems = cfg.validate(cfg.apply_overrides(cfg.RunConfig(), overrides))
    assert any(p.key == "run_name" for p in problems)


def test_bundled_presets_and_catalog_load_through_the_bounded_loader():
    from studio.models.catalog import load_catalog
    from studio.presets import read_preset

    assert "tiny-demo" in load_catalog()
    assert isinstance(read_preset("balanced"), dict)


def test_load_config_in_the_browser_refuses_a_bomb_with_a_short_answer(tmp_path):
    from studio.ui.train_form import read_config_file

    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(cfg.ConfigError) as caught:
        read_config_file(path)
    assert time.perf_counter() - started < 2
    assert "aliases expand to more than 100,000 values" in str(caught.value) and len(str(caught.value)) < 1000
