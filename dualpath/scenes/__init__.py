"""The Complex Scene Generator (paper section IV.A, fig. 3): numpy + OpenCV, never torch.

    render_scene(SceneConfig(), seed, i)              one scene, a pure function of its arguments
    generate_dataset(config, seed, n, out, workers)   n scenes on disk (arrays + manifest), reused when identical
    load_dataset(path)                                a data set folder back, checked against its manifest
"""
from dualpath.scenes.compose import Scene, render_scene
from dualpath.scenes.config import GENERATOR_VERSION, DegradeConfig, SceneConfig
from dualpath.scenes.dataset import DatasetError, SceneDataset, cache_tag, generate_dataset, load_dataset

__all__ = [
    "GENERATOR_VERSION",
    "DatasetError",
    "DegradeConfig",
    "Scene",
    "SceneConfig",
    "SceneDataset",
    "cache_tag",
    "generate_dataset",
    "load_dataset",
    "render_scene",
]
