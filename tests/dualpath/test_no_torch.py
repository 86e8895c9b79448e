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


def test_model_config_and_command_help_do_not_import_torch():
    """dualpath.model's names load when first used, so backbone names and ModelConfig (what --help lists) come
    without torch: `python -m train --help` answers at once."""
    code = ("import sys, runpy\nimport dualpath.model.config\nassert 'torch' not in sys.modules, 'model.config'\n"
            "sys.argv = ['train', '--help']\n"
            "try:\n    runpy.run_module('train', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", "python -m train --help imported torch"
    from dualpath import model

    assert model.ModelConfig.__module__ == "dualpath.model.config" and "build_model" in dir(model)
    with pytest.raises(AttributeError):
        model.no_such_name
