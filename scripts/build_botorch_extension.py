"""Install step: build BoTorch's fused qLogNEHVI C++ kernel once and install it.

BoTorch compiles this kernel on first use (40-50 s on 2 cores), and a process
killed during that compile leaves a lock that hangs every later run. Building it here,
in a private temporary build folder, and installing the result as the importable module
``logei_fused_ext`` (which BoTorch tries before compiling) means no campaign or test ever
compiles it. Fails loudly, with the compiler's output, instead of falling back silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

MODULE = "logei_fused_ext"


def installed() -> bool:
    probe = f"import torch, {MODULE}"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def main() -> int:
    if installed():
        sys.stderr.write(f"{MODULE}: already installed\n")
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as build_dir:
        os.environ["TORCH_EXTENSIONS_DIR"] = build_dir
        import botorch.acquisition.multi_objective.logei as logei
        from torch.utils.cpp_extension import load

        source = Path(logei.__file__).parents[2] / "csrc" / "logei_fused.cpp"
        module = load(
            name=MODULE,
            sources=[str(source)],
            extra_cflags=["-O3", "-march=native"],
            build_directory=build_dir,
            verbose=False,
        )
        target = Path(sysconfig.get_paths()["platlib"]) / f"{MODULE}.so"
        shutil.copy2(module.__file__, target)
    if not installed():
        sys.stderr.write(f"{MODULE}: built but not importable from {target}\n")
        return 1
    sys.stderr.write(f"{MODULE}: built and installed in {time.perf_counter() - start:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
