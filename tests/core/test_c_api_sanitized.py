"""The C core under AddressSanitizer and UndefinedBehaviorSanitizer: random and absurd
arguments to every call give a status, never a crash, a leak or undefined behaviour."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _compiler():
    return shutil.which("cc") or shutil.which("gcc")


def _sanitizers_link(cc, tmp_path):
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    r = subprocess.run([cc, *SANITIZE, str(probe), "-o", str(tmp_path / "probe")],
                       capture_output=True)
    return r.returncode == 0


def test_every_call_survives_random_and_absurd_arguments_under_sanitizers(tmp_path):
    cc = _compiler()
    assert cc, "a C compiler is required to build kdsim at all"
    if not _sanitizers_link(cc, tmp_path):
        pytest.skip("this compiler cannot link the address/undefined sanitizers")
    exe = tmp_path / "api_fuzz"
    sources = [ROOT / "csrc" / f for f in ("ram.c", "paging.c", "mmu.c", "tlb.c", "lazy.c")]
    subprocess.run([cc, "-O1", "-g", "-std=c11", *SANITIZE, f"-I{ROOT / 'csrc'}",
                    *map(str, sources), str(ROOT / "tests/core/c/api_fuzz.c"), "-o", str(exe)],
                   check=True)
    r = subprocess.run([str(exe), "300000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.strip() == "ok"
