"""The README's config reference documents every config key with its real default."""

from pathlib import Path

from studio import config as cfg

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented_with_its_default():
    defaults = cfg.to_flat(cfg.RunConfig())
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip(" `") for line in README.splitlines() if line.startswith("| `")}
    for key in cfg.flat_keys():
        assert key in rows, f"README config reference lacks `{key}`"
        shown = rows[key]
        expected = defaults[key]
        if isinstance(expected, bool):
            assert shown == str(expected).lower(), key
        elif expected == "":
            assert shown == "(empty)", key
        else:
            assert type(expected)(shown) == expected, f"README says {key} defaults to {shown}, config says {expected}"
