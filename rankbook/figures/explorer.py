"""Interactive exploration of a stored ViT run's spectra.

:func:`spectra_explorer` is an ipywidgets panel (layer, head, step,
W_K W_Q^T or W_V W_O^T) for Jupyter and Colab. Widget callbacks need a
kernel, so the panel also offers a static fallback (its first view as an
image and a note saying where the panel works), which the site shows in its
place (``rankbook.book.site.for_site`` keeps an output's HTML over its widget);
and the site gets :func:`spectra_animation`: the same plot for every tracked
step, as a JavaScript animation with its own slider that plays in any browser.
"""
from __future__ import annotations

import numpy as np
import torch

from rankbook.analysis import spectra
from rankbook.figures import style
from rankbook.figures.spectra import KIND_LABEL, describe
from rankbook.store.results import Result

KINDS = {"W_K W_Q^T": "qk", "W_V W_O^T": "vo"}


def _spectrum_axes(ax, result: Result, kind: str, layer: int, head: int, step_index: int) -> None:
    """Normalized spectra of the initial product (red) and of Δ at one tracked step (green)."""
    a = result.arrays
    init = spectra.normalized(torch.from_numpy(a[f"init_{kind}"][layer, head])).numpy()
    delta_raw = torch.from_numpy(a[f"delta_{kind}"][step_index, layer, head])
    delta = spectra.normalized(delta_raw).numpy() if float(delta_raw.max()) > 0 else np.zeros(len(delta_raw))
    rank = a[f"stable_rank_delta_{kind}"][step_index, layer, head]
    ax.clear()
    ax.plot(np.arange(1, len(init) + 1), init, color="red", lw=2,
            label=f"init (stable rank {a[f'stable_rank_init_{kind}'][layer, head]:.2f})")
    ax.plot(np.arange(1, len(delta) + 1), delta, color="green", lw=2,
            label=f"Δ (stable rank {rank:.2f})" if np.isfinite(rank) else "Δ = 0")
    ax.set(xlabel="singular value index", ylabel="normalized singular value", ylim=(0, 1.05),
           title=f"{KIND_LABEL[kind]}, layer {layer + 1}, head {head + 1}, step {int(a['step'][step_index])}")
    ax.legend(loc="upper right")


def _png(fig):
    """``fig`` as a 2× PNG image shown at its drawn size (independent of the kernel's display formatters)."""
    import io

    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=2 * style.DPI)
    return Image(data=buf.getvalue(), format="png", width=int(fig.get_figwidth() * style.DPI))


def spectra_explorer(result: Result, profile: str):
    """An ipywidgets panel over ``result``'s tracked spectra (needs a running kernel)."""
    import ipywidgets as w

    a = result.arrays
    layers, heads = a["delta_qk"].shape[1:3]
    steps = [int(s) for s in a["step"]]
    layer = w.IntSlider(value=1, min=1, max=layers, description="layer")
    head = w.IntSlider(value=1, min=1, max=heads, description="head")
    step = w.SelectionSlider(options=steps, value=steps[-1], description="step")
    kind = w.ToggleButtons(options=list(KINDS), description="matrix")
    out = w.Output()

    def redraw(_=None) -> None:
        fig, axes = style.figure(1, 1, width=6.5, height=3.6)
        _spectrum_axes(axes[0, 0], result, KINDS[kind.value], layer.value - 1, head.value - 1,
                       steps.index(step.value))
        style.finish(fig, "Normalized spectra: initialization vs Δ", describe(result, profile))
        # set the Output's contents directly: capturing display() inside `with out:` after clear_output
        # hangs a headless (papermill) kernel until the cell times out
        out.outputs = ()
        out.append_display_data(_png(fig))

    for control in (layer, head, step, kind):
        control.observe(redraw, names="value")
    redraw()
    panel = w.VBox([w.HBox([layer, head]), step, kind, out])
    first = out.outputs[0]
    width = first.get("metadata", {}).get("image/png", {}).get("width")
    fallback = static_fallback(first["data"]["image/png"], width, layers, heads, len(steps))
    widget_bundle = panel._repr_mimebundle_

    def bundle(**kwargs):  # the widget where a kernel runs it; its static view (text/html) elsewhere
        data = widget_bundle(**kwargs)
        data = dict(data[0] if isinstance(data, tuple) else data)
        data["text/html"] = fallback
        return data

    panel._repr_mimebundle_ = bundle
    return panel


def static_fallback(png_base64: str, width: int | None, layers: int, heads: int, steps: int) -> str:
    """What a page without a kernel shows for the panel: its first view and where the panel works."""
    return ('<div class="rankbook-static-widget"><p><strong>Interactive panel (needs a running kernel).'
            '</strong> '
            f"In Jupyter or Colab (the launch button at the top of the page) it lets you choose any of the "
            f"{layers} layers, {heads} heads and {steps} tracked steps, and either product. Below: its first "
            "view; the animation after it plays every tracked step of one head.</p>"
            f'<img alt="spectra explorer: first view" style="max-width:100%;height:auto" '
            + (f'width="{int(width)}" ' if width else "") +
            f'src="data:image/png;base64,{png_base64}"/></div>')


def spectra_animation(result: Result, profile: str, layer: int, head: int, kind: str = "qk"):
    """The explorer's plot for every tracked step of one head, as an HTML/JS animation for the site."""
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    frames = list(range(1, len(result.arrays["step"])))  # step 0 has Δ = 0
    fig, axes = style.figure(1, 1, width=6.5, height=3.6)
    ax = axes[0, 0]

    def draw(i: int):
        _spectrum_axes(ax, result, kind, layer, head, i)
        return []

    draw(frames[-1])
    # finish once (it sizes the figure for its title), not per frame
    style.finish(fig, "Normalized spectra: initialization vs Δ", describe(result, profile))

    anim = FuncAnimation(fig, draw, frames=frames, interval=500, blit=False)
    html = anim.to_jshtml(default_mode="once")
    return HTML(html)
