"""Gather the wheels a GPU machine without network lacks into .whl/ (git-ignored), for bench/gpu_check.sh.

The GPU machine this is sized for has Python 3.12, PyTorch (CUDA 13), transformers, accelerate, peft and
numpy/pandas/pyarrow, but not TRL, datasets, bitsandbytes, liger-kernel or DeepSpeed. This downloads those (and
their own missing needs) as manylinux x86-64 / CPython 3.12 wheels with `pip download`, builds DeepSpeed's
wheel from its source release (DeepSpeed publishes no wheel; built with DS_BUILD_OPS=0 its kernels compile on
first use on the GPU machine), checks the total against what can be carried, and lists every requirement of a
carried wheel that neither another carried wheel nor the machine's own package list answers.

    python bench/gpu_wheels.py            # → .whl/*.whl and bench/results/gpu_wheels.json (sizes)
    python bench/gpu_wheels.py --check    # only size, trial-install and list what is already in .whl/

On the GPU machine, bench/gpu_check.sh installs them without network:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
and, should `import datasets, trl` fail there (datasets 5.2 needs a newer pyarrow), .whl/fallback/ over them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS_DIR = ROOT / ".whl"
RESULTS = ROOT / "bench" / "results" / "gpu_wheels.json"
LIMIT_MB = 60.0
PYTHON = "3.12"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
# The versions the test suite runs with here, so the GPU run exercises what CI does.
WHEELS = {
    "trl": "1.16.0",
    "datasets": "5.2.0",
    "dill": "0.4.1",  # datasets: dill<0.4.2
    "multiprocess": "0.70.19",  # datasets: multiprocess<0.70.20
    "bitsandbytes": "0.50.2",  # qlora, 8-bit and paged optimizers; ships libbitsandbytes_cuda130
    "liger-kernel": "0.8.5",
    "hjson": "3.1.0",  # deepspeed
    "pydantic": "2.14.4",  # deepspeed
    "pydantic-core": "2.50.5",  # pydantic 2.14.4 pins it
    "annotated-types": "0.8.0",  # pydantic
    "typing-inspection": "0.4.5",  # pydantic
}
BUILT_FROM_SOURCE = {"deepspeed": "0.19.8"}
# Installed in place of the pinned ones only when those do not import on the machine (bench/gpu_check.sh):
# datasets 5.2 needs pyarrow>=24, datasets 4.8 no more than TRL itself does (pyarrow>=21).
FALLBACK = {"datasets": "4.8.0"}
FALLBACK_DIR = WHEELS_DIR / "fallback"
# What a wheel left out would weigh, measured with the same download (MB): newer copies of what the machine has.
LEFT_OUT = {"transformers==5.24.0": "13.5 MB: the machine's transformers 5.17 is used instead (trl 1.16 needs >=4.56.2)"}
# Package names the GPU machine's image holds (KINDS.md of the device notes, read 2026-11-17): requirements on
# these are taken as answered, their versions unchecked here; bench/gpu_check.py records `pip check` there.
ON_MACHINE = set("""accelerate certifi charset-normalizer einops filelock fsspec hf-xet httpx huggingface-hub idna jinja2 markupsafe
msgpack ninja numpy nvidia-ml-py packaging pandas psutil py-cpuinfo pyarrow python-dateutil pyyaml regex requests safetensors
setuptools six tokenizers torch tqdm transformers triton typing-extensions urllib3 xxhash peft""".split())


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def download(folder: Path, wheels: dict[str, str]) -> None:
    """pip download the `wheels` (name: version) for CPython 3.12 on manylinux x86-64 (no dependencies followed)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON,
               "--implementation", "cp", *platforms, "-d", str(folder), *[f"{n}=={v}" for n, v in wheels.items()]]
    subprocess.run(command, check=True)


def build_from_source(folder: Path) -> None:
    """DeepSpeed's wheel, built here from its source release without its CUDA kernels (they build on first use)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in BUILT_FROM_SOURCE.items():
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:", "-d", tmp,
                            f"{name}=={version}"], check=True)
            source = next(Path(tmp).glob(f"{name}-{version}.tar.gz"))
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(folder), str(source)],
                           check=True, env={**os.environ, "DS_BUILD_OPS": "0"})


def requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that apply on Linux with Python 3.12 and no extras."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode("utf-8").splitlines()
    environment = {"python_version": PYTHON, "python_full_version": PYTHON + ".3", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    wanted = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            if requirement.marker is None or requirement.marker.evaluate(environment):
                wanted.append(str(requirement))
    return wanted


def trial_install(folder: Path) -> str:
    """Install the carried wheels here as the GPU machine will (no index, no dependencies) into a scratch folder,
    for CPython 3.12 on manylinux x86-64, then the fallback wheels over them: "ok", or pip's complaint (a wrong
    tag, two versions of one package)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory() as target:
        for wheels in (sorted(folder.glob("*.whl")), sorted((folder / FALLBACK_DIR.name).glob("*.whl"))):
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--upgrade",
                                   "--target", target, "--python-version", PYTHON, "--implementation", "cp", *platforms, "--only-binary=:all:",
                                   *map(str, wheels)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
                return "; ".join(errors) or done.stderr[-500:]
    return "ok"


def report(folder: Path) -> dict:
    """Sizes of the carried wheels, their total against the limit, and the requirements nobody answers."""
    from packaging.requirements import Requirement

    wheels = sorted(folder.glob("*.whl")) + sorted((folder / FALLBACK_DIR.name).glob("*.whl"))
    carried = {normalise(w.name.split("-")[0]): w for w in wheels if w.parent == folder}
    unanswered = []
    for name, wheel in carried.items():
        for line in requirements(wheel):
            needed = normalise(Requirement(line).name)
            if needed not in carried and needed not in ON_MACHINE:
                unanswered.append(f"{name} needs {line}")
    sizes = {str(w.relative_to(folder)): round(w.stat().st_size / 1e6, 2) for w in wheels}
    total = round(sum(w.stat().st_size for w in wheels) / 1e6, 2)
    return {"command": "python bench/gpu_wheels.py", "folder": ".whl", "limit_mb": LIMIT_MB, "total_mb": total,
            "fits": total <= LIMIT_MB, "trial_install_py312": trial_install(folder), "wheels_mb": sizes, "left_out": LEFT_OUT,
            "needs_not_carried": unanswered,
            "fallback": {f"{n}=={v}": "installed by bench/gpu_check.sh over the pinned one when `import datasets, trl` fails there"
                         for n, v in FALLBACK.items()},
            "version_notes": ["datasets 5.2.0 needs pyarrow>=24 (4.8.0: >=21) and fsspec<=2026.9.0 (4.8.0: <=2026.2.0); the machine's "
                              "pyarrow and fsspec versions are not recorded in its notes: bench/gpu_check.py records them and `pip check`",
                              "the CPU rehearsal passes with the machine's transformers 5.17.0, accelerate 1.15.0 and huggingface_hub 1.33.0 "
                              "installed over this machine's (PYTHONPATH)"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report what .whl/ holds")
    args = parser.parse_args()
    WHEELS_DIR.mkdir(exist_ok=True)
    if not args.check:
        for old in [*WHEELS_DIR.glob("*.whl"), *FALLBACK_DIR.glob("*.whl")]:  # one version of each: two stop the install
            old.unlink()
        download(WHEELS_DIR, WHEELS)
        build_from_source(WHEELS_DIR)
        FALLBACK_DIR.mkdir(exist_ok=True)
        download(FALLBACK_DIR, FALLBACK)
    result = report(WHEELS_DIR)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, size in result["wheels_mb"].items():
        print(f"{size:8.2f} MB  {name}")
    print(f"{result['total_mb']:8.2f} MB in all (limit {LIMIT_MB:g} MB): {'fits' if result['fits'] else 'TOO LARGE'}")
    for line in result["needs_not_carried"]:
        print(f"not carried: {line}")
    print(f"trial install for CPython {PYTHON} (manylinux x86-64, no index): {result['trial_install_py312']}")
    return 0 if result["fits"] and result["trial_install_py312"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
