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
# What a wheel left out would weigh, measured with the same download (MB): newer copies of what the machine has.
LEFT_OUT = {"transformers==5.24.0": "13.5 MB: the machine's transformers 5.17 is used instead (trl 1.16 needs >=4.56.2)"}
# Package names the GPU machine's image holds (KINDS.md of the device notes, read 2026-11-17): requirements on
# these are taken as answered, their versions unchecked here; bench/gpu_check.py records `pip check` there.
ON_MACHINE = set("""accelerate certifi charset-normalizer einops filelock fsspec hf-xet httpx huggingface-hub idna jinja2 markupsafe
msgpack ninja numpy nvidia-ml-py packaging pandas psutil py-cpuinfo pyarrow python-dateutil pyyaml regex requests safetensors
setuptools six tokenizers torch tqdm transformers triton typing-extensions urllib3 xxhash peft""".split())


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def download(folder: Path) -> None:
    """pip download every pinned wheel for CPython 3.12 on manylinux x86-64 (no dependencies followed)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON,
               "--implementation", "cp", *platforms, "-d", str(folder), *[f"{n}=={v}" for n, v in WHEELS.items()]]
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
    for CPython 3.12 on manylinux x86-64: "ok", or pip's complaint (a wrong tag, two versions of one package)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory() as target:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--target", target,
                               "--python-version", PYTHON, "--implementation", "cp", *platforms, "--only-binary=:all:",
                               *map(str, sorted(folder.glob("*.whl")))], capture_output=True, text=True, check=False)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    return "ok" if done.returncode == 0 else ("; ".join(errors) or done.stderr[-500:])


def report(folder: Path) -> dict:
    """Sizes of the carried wheels, their total against the limit, and the requirements nobody answers."""
    from packaging.requirements import Requirement

    wheels = sorted(folder.glob("*.whl"))
    carried = {normalise(w.name.split("-")[0]): w for w in wheels}
    unanswered = []
    for name, wheel in carried.items():
        for line in requirements(wheel):
            needed = normalise(Requirement(line).name)
            if needed not in carried and needed not in ON_MACHINE:
                unanswered.append(f"{name} needs {line}")
    sizes = {w.name: round(w.stat().st_size / 1e6, 2) for w in wheels}
    total = round(sum(w.stat().st_size for w in wheels) / 1e6, 2)
    return {"command": "python bench/gpu_wheels.py", "folder": ".whl", "limit_mb": LIMIT_MB, "total_mb": total,
            "fits": total <= LIMIT_MB, "trial_install_py312": trial_install(folder), "wheels_mb": sizes, "left_out": LEFT_OUT,
            "needs_not_carried": unanswered,
            "version_notes": ["datasets 5.2.0 needs pyarrow>=24 and huggingface-hub>=1.31: the machine's pyarrow version is not "
                              "recorded in its notes; bench/gpu_check.py's environment step records `pip check` there"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report what .whl/ holds")
    args = parser.parse_args()
    WHEELS_DIR.mkdir(exist_ok=True)
    if not args.check:
        for old in WHEELS_DIR.glob("*.whl"):  # one version of each: two would stop the whole install
            old.unlink()
        download(WHEELS_DIR)
        build_from_source(WHEELS_DIR)
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
