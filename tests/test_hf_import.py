"""transformers imported from several threads at once: the studio's server answers a page load's events together."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import threading
from studio.hf_import import import_transformers

failed = []

def use(name):
    try:
        import_transformers()
        getattr(__import__("transformers"), name)
    except Exception as error:
        failed.append(repr(error))

threads = [threading.Thread(target=use, args=(n,)) for n in ("AutoTokenizer", "AutoModelForCausalLM", "PreTrainedTokenizerFast")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(failed)
"""


def test_three_threads_that_import_from_transformers_at_once_all_get_their_class():
    # A fresh interpreter: transformers must not be imported yet. Without the lock, two of the three threads
    # get "cannot import name ... from 'transformers'" in nearly every try on this machine.
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
