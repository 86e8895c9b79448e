"""The core stays light: importing it (what the runtime does) never imports torch."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["dualpath", "dualpath.contract", "dualpath.scenes", "dualpath.metrics", "dualpath.architectures",
               "dualpath.exitcodes"]
)
def test_import_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} imported torch"


def test_rendering_a_scene_does_not_import_torch():
    code = (
        "import sys\nfrom dualpath.scenes import SceneConfig, render_scene\n"
        "render_scene(SceneConfig(variants_per_class=1, backgrounds_per_kind=1), 0, 0)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
