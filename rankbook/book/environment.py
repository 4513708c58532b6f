"""What the setup chapter reports: library versions, the device, profile settings, data sets."""
from __future__ import annotations

import dataclasses
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


def summary(profile: str) -> dict[str, str]:
    """What the setup chapter's prose states: profile, device, Python and torch versions."""
    device, versions = device_info(), library_versions()
    where = device.get("cuda device") or f"CPU ({device['cpu cores (os)']} cores)"
    return {"profile": profiles.resolve(profile), "device": where, "python": versions["python"],
            "torch": versions["torch"]}


def reference_times() -> dict[str, str]:
    """How long the stored reference runs took, from their manifests: ``vit`` (the range over the stored
    reference ViT runs, with their device) and ``lm`` (the reference language model)."""
    from rankbook.book import performance

    found: dict[str, list] = {"vit": [], "gpt": []}
    for row in performance.stored_run_costs().records():
        kind = row["stored run"].split("-", 1)[0]
        # a run made with the reference settings, or closest to them (settings changed since: named there)
        if kind in found and row["profile"].split(" (")[0] in ("reference", "closest: reference"):
            found[kind].append(row)
    out = {}
    for key, kind in (("vit", "vit"), ("lm", "gpt")):
        rows = found[kind]
        if not rows:
            out[key] = "(no stored run here)"
            continue
        times = sorted({r["training time"] for r in rows})
        devices = sorted({r["device"] for r in rows})
        span = times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"
        out[key] = f"{span}, on {', '.join(devices)}"
    return out


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


def descriptions(settings_class) -> dict[str, str]:
    """Each setting's one-line description: the ``help=`` of its :func:`rankbook.settings.profiles.param`."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(settings_class)}


def profile_comparison(part: str, active: str) -> Table:
    """One part's settings under every profile side by side (the active one marked), each with its
    description; the rows where ``fast`` differs from ``paper`` (where the fast chapters depart from the
    paper) are highlighted and marked in the "fast vs paper" column."""
    module = _optional_module(PROFILE_TABLES[part])
    if module is None:
        raise ValueError(f"part {part!r} is not in this version of rankbook")
    by_profile = {name: profiles.select(module.PROFILES, name).as_dict() for name in profiles.PROFILE_NAMES
                  if name in module.PROFILES}
    help_text = descriptions(type(next(iter(module.PROFILES.values()))))
    columns = [f"{name} (active)" if name == active else name for name in by_profile]
    keys = list(next(iter(by_profile.values())))
    rows, departs = [], []
    for key in keys:
        cells = [_cell(by_profile[name].get(key, "")) for name in by_profile]
        differs = "fast" in by_profile and "paper" in by_profile and by_profile["fast"].get(key) != \
            by_profile["paper"].get(key)
        departs.append(differs)
        rows.append([key, help_text.get(key, ""), *cells, "departs" if differs else ""])
    return Table(rows, ["setting", "what it sets", *columns, "fast vs paper"], highlight=departs,
                 title=f"{part}: settings per profile ({sum(departs)} of {len(rows)} settings of fast depart "
                       "from paper, highlighted)")


def _cell(value) -> str:
    """A setting as text: each value is its own quantity, so no decimals shared down a column."""
    if isinstance(value, tuple):
        return ", ".join(_cell(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


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
