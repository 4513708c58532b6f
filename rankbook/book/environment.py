"""What the setup chapter reports: library versions, the device, profile settings, data sets."""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys

from rankbook.figures.tables import Table
from rankbook.settings import profiles
from rankbook.store import paths

LIBRARIES = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "ipywidgets", "tqdm",
             "papermill", "jupytext", "jupyter-book", "rankbook")
#: modules that hold a part's ``PROFILES`` table, in the book's order
PROFILE_TABLES = {"toy model (chapters 01-03)": "rankbook.settings.toy",
                  "vision transformer (chapters 04-05)": "rankbook.settings.vit",
                  "language model (chapters 06-07)": "rankbook.settings.lm"}


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def versions_table() -> Table:
    rows = [{"library": k, "version": v} for k, v in library_versions().items()]
    return Table(rows, title="Library versions")


def device_info() -> dict[str, str]:
    import torch

    info = {"platform": platform.platform(), "cpu threads (torch)": str(torch.get_num_threads()),
            "cpu cores (os)": str(os.cpu_count()), "cuda available": str(torch.cuda.is_available())}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update({"cuda device": props.name, "cuda devices": str(torch.cuda.device_count()),
                     "gpu memory (GiB)": f"{props.total_memory / 2**30:.1f}",
                     "bf16 supported": str(torch.cuda.is_bf16_supported())})
    info["device used by the book"] = "cuda" if torch.cuda.is_available() else "cpu"
    info["in Colab"] = str("google.colab" in sys.modules)
    return info


def device_table() -> Table:
    return Table([{"item": k, "value": v} for k, v in device_info().items()], title="Device")


def profile_settings(profile: str) -> dict[str, dict]:
    """Each part's settings under ``profile``, for the parts whose modules are present."""
    profile = profiles.resolve(profile)
    found = {}
    for part, module_name in PROFILE_TABLES.items():
        module = _optional_module(module_name)
        if module is None:
            continue
        found[part] = profiles.select(module.PROFILES, profile).as_dict()
    return found


def profile_table(profile: str) -> Table:
    rows = [{"part": part, "setting": key, "value": value}
            for part, settings in profile_settings(profile).items() for key, value in settings.items()]
    return Table(rows, columns=["part", "setting", "value"], title=f"Settings of the {profile!r} profile")


def datasets_table() -> Table:
    """Which data sets are found offline, cached, or would be downloaded."""
    found = "exists" if paths.data_root().is_dir() else "missing"
    rows = [{"dataset": "(offline data folder)", "status": found, "location": str(paths.data_root())}]
    data = _optional_module("rankbook.data.images")
    if data is not None:
        rows += data.describe_available()
    return Table(rows, columns=["dataset", "status", "location"], title="Data sets")


def _optional_module(name: str):
    """The module, or None while that part of the book is not written yet."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
