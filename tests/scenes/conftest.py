import pytest

from dualpath.scenes import SceneConfig


@pytest.fixture(scope="session")
def small_config() -> SceneConfig:
    """The real generator with a small catalogue (2 objects per class, 1 background per kind): a fast bank."""
    return SceneConfig(variants_per_class=2, backgrounds_per_kind=1)
