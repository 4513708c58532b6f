"""The figures of the toy chapters (01 theory, 02 toy, 03 assumptions), in the book's one style.

Each function takes runs already computed by :mod:`rankbook.theory` and returns a
finished figure; the subtitle (data, profile, settings) comes from the caller.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from rankbook.figures import style
from rankbook.theory import diagonal, flow

TAU = r"rescaled time $\tau = t\,/\log(1/\alpha)$"
QK, VO = r"$W_K W_Q^\top$", r"$W_V W_O^\top$"
ENTRY = r"$u_i v_i$"
DIST = r"$\|\Delta(u \odot v)\|$"


def plateau_range(result, pad: float = 3.0) -> tuple[float, float]:
    """A loss axis that shows Algorithm 1's plateaus: from the lowest nonzero plateau / ``pad`` to the initial
    loss × ``pad`` (the last plateau, at the teacher, has loss ~0 and would stretch a log axis over
    decades)."""
    losses = np.array([result.initial_loss] + [s.loss_after for s in result.stages])
    positive = losses[losses > 1e-8 * losses.max()]
    return float(positive.min() / pad), float(losses.max() * pad)


def plot_entries(ax, traj, coords, names, *, linestyle="-", legend=True) -> None:
    """u_i v_i against rescaled time for ``coords`` (the diagonal entries of W_K W_Q^T or W_V W_O^T)."""
    for n, (i, name) in enumerate(zip(coords, names)):
        ax.plot(traj.tau, traj.beta[:, i], linestyle, color=f"C{n}", label=name if legend else None, lw=1.3)
    ax.set_xlabel(TAU)


def conservation(net, check, subtitle: str):
    """u_i², v_i² change by orders of magnitude while c_i = u_i² − v_i² stays put (Lemma 4.1)."""
    c = diagonal.conserved(check.u, check.v)
    learned = np.argsort(-np.abs(check.beta[-1]))[:3]
    fig, axes = style.figure(1, 2)
    for n, i in enumerate(learned):
        name = net.coordinate_name(i)
        axes[0, 0].semilogy(check.tau, check.u[:, i] ** 2, color=f"C{n}", label=name)
        axes[0, 0].semilogy(check.tau, check.v[:, i] ** 2, "--", color=f"C{n}")
        axes[0, 1].plot(check.tau, (c[:, i] - c[0, i]) / abs(c[0, i]), color=f"C{n}", label=name)
    axes[0, 0].set(ylabel=r"$u_i^2$ (solid), $v_i^2$ (dashed)", title="squared weights")
    axes[0, 1].set(ylabel=r"$(c_i(t) - c_i(0))\,/\,|c_i(0)|$", title=r"$c_i = u_i^2 - v_i^2$")
    for ax in axes[0]:
        ax.set_xlabel(TAU)
    axes[0, 1].legend(loc="upper left")
    title = rf"Conservation law along a $\theta$-coordinate flow, $\alpha$ = {check.alpha:g}"
    return style.finish(fig, title, subtitle)


def algorithm1_overlay(net, result, runs: dict, tau_max: float, subtitle: str):
    """Loss of the flow at each α against Algorithm 1's plateaus; entries at the smallest α with T_k."""
    fig, axes = style.figure(1, 2)
    plateau_losses = [result.initial_loss] + [s.loss_after for s in result.stages]
    edges = [0.0] + [s.time for s in result.stages] + [tau_max]
    for n, (alpha, traj) in enumerate(runs.items()):
        axes[0, 0].semilogy(traj.tau, traj.loss, color=f"C{n}", label=rf"$\alpha$ = {alpha:g}")
    axes[0, 0].stairs(np.maximum(plateau_losses, 1e-30), edges, baseline=None, color="k", ls="--",
                      label="Algorithm 1")
    axes[0, 0].set(ylabel="training loss", title="loss (axis clipped to the plateaus)", xlabel=TAU,
                   ylim=plateau_range(result))
    axes[0, 0].legend(loc="lower left")
    smallest = min(runs)
    order = [s.winner for s in result.stages]
    plot_entries(axes[0, 1], runs[smallest], order, [net.coordinate_name(i) for i in order])
    for n, s in enumerate(result.stages):
        axes[0, 1].axvline(s.time, color=f"C{n}", ls=":", lw=1)
    axes[0, 1].set(ylabel=ENTRY, title=rf"entries at $\alpha$ = {smallest:g}; dotted: $T_k$")
    handles, texts = axes[0, 1].get_legend_handles_labels()
    style.finish(fig, "Algorithm 1 overlaid on gradient flow", subtitle)
    return _legend_below(fig, handles, texts)


def alpha_panels(net, runs: dict, what: str, teacher_coords, subtitle: str):
    """One panel per α: the loss (``what="loss"``, Fig. 6) or the QK / VO entries (``"qk"``/``"vo"``, 7-8)."""
    fig, axes = style.figure(1, len(runs), sharey=True)
    dim = net.dim
    idx = {"qk": np.arange(dim), "vo": dim + np.arange(dim)}.get(what)
    for ax, (alpha, traj) in zip(axes[0], runs.items()):
        if idx is None:
            ax.semilogy(traj.tau, traj.loss, color="C0")
        else:
            ax.plot(traj.tau, traj.beta[:, idx], color="0.75", lw=0.6)
            for n, i in enumerate(i for i in teacher_coords if i in idx):
                ax.plot(traj.tau, traj.beta[:, i], color=f"C{n}", lw=1.4, label=net.coordinate_name(i))
        ax.set(title=rf"$\alpha$ = {alpha:g}", xlabel=TAU)
    label = {"loss": "training loss", "qk": f"entries of {QK}", "vo": f"entries of {VO}"}[what]
    axes[0, 0].set_ylabel(label)
    grey = "" if idx is None else " (grey: not in the teacher)"
    style.finish(fig, f"{label}, gradient flow{grey}", subtitle)
    if idx is None:
        return fig
    return _legend_below(fig, *axes[0, -1].get_legend_handles_labels(), rows=1)


def loss_overlay(runs: dict, result, tau_max: float, subtitle: str):
    """The loss of the flow at every α in one panel, with Algorithm 1's plateaus, the axis clipped to them."""
    fig, axes = style.figure(1, 1, width=6.0, height=3.4)
    ax = axes[0, 0]
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))
    for shade, (alpha, traj) in zip(shades, sorted(runs.items(), reverse=True)):
        ax.semilogy(traj.tau, traj.loss, color=shade, label=rf"$\alpha$ = {alpha:g}")
    edges = [0.0] + [s.time for s in result.stages] + [tau_max]
    plateaus = [result.initial_loss] + [s.loss_after for s in result.stages]
    ax.stairs(np.maximum(plateaus, 1e-30), edges, baseline=None, color="k", ls="--",
              label=r"Algorithm 1 ($\alpha \to 0$)")
    ax.set(xlabel=TAU, ylabel="training loss", ylim=plateau_range(result), xlim=(0.0, tau_max))
    handles, texts = ax.get_legend_handles_labels()
    style.finish(fig, r"Training loss, gradient flow at each $\alpha$, against Algorithm 1", subtitle)
    return _legend_below(fig, handles, texts)


def full_weights(full_run, sv_qk, sv_vo, subtitle: str, windows: dict | None = None):
    """Singular values of W_K W_Q^T and W_V W_O^T and the loss of the full-weight head (Fig. 2d-f); with
    ``windows`` ({name: [(start, end), ...]}, in the panels' order), each learned singular value's jump
    shaded."""
    fig, axes = style.figure(1, 3, width=2.3, height=2.6)
    axes[0, 0].plot(full_run.tau, sv_qk)
    axes[0, 1].plot(full_run.tau, sv_vo)
    axes[0, 2].semilogy(full_run.tau, full_run.loss)
    for ax, jumps in zip(axes[0, :2], (windows or {}).values()):
        for n, (start, end) in enumerate(jumps):
            ax.axvspan(start, end, color=f"C{n}", alpha=0.15, lw=0)
    titles = [f"singular values, {QK}", f"singular values, {VO}", "training loss"]
    for ax, title in zip(axes[0], titles):
        ax.set(title=title, xlabel=TAU)
    return style.finish(fig, rf"Full weights, {full_run.method}, $\alpha$ = {full_run.alpha:g}", subtitle)


def optimizers(runs: dict, teacher_vo, subtitle: str, loss_range: tuple[float, float] | None = None):
    """Loss of flow / GD / SGD against τ, the teacher's VO entries under flow and GD, Adam's loss per step;
    ``loss_range`` (e.g. :func:`plateau_range`) clips the first panel's loss axis to the plateaus."""
    fig, axes = style.figure(1, 3, width=2.3, height=2.6)
    for n, (name, traj) in enumerate(runs.items()):
        adam = name.startswith("Adam")
        ax = axes[0, 2] if adam else axes[0, 0]
        x = np.arange(len(traj.t)) if adam else traj.tau
        ax.semilogy(x, np.where(np.isfinite(traj.loss), traj.loss, np.nan), color=f"C{n}", label=name)
        if name.startswith("GD") or name == "gradient flow":
            for i in teacher_vo:
                axes[0, 1].plot(traj.tau, traj.beta[:, i], color=f"C{n}", lw=1)
    axes[0, 0].set(title="flow, GD, SGD", xlabel=TAU, ylabel="training loss")
    if loss_range is not None:
        axes[0, 0].set(ylim=loss_range, title="flow, GD, SGD (loss axis clipped)")
    axes[0, 1].set(title="teacher's VO entries", xlabel=TAU, ylabel=ENTRY)
    axes[0, 2].set(title="Adam", xlabel="Adam step", ylabel="training loss")
    handles, texts = [], []
    for ax in (axes[0, 0], axes[0, 2]):
        h, t = ax.get_legend_handles_labels()
        handles, texts = handles + h, texts + t
    style.finish(fig, "Optimizers on the diagonal head", subtitle)
    return _legend_below(fig, handles, texts)


def perturbations(net, reference, experiments, coords, title: str, subtitle: str, labels=None):
    """One panel per kick (entries: perturbed solid, unperturbed dashed, reference dotted), a last panel with
    ‖Δ(u⊙v)‖ per kick (dark to light in panel order); the coordinates' legend goes under the panels."""
    n = len(experiments)
    fig, axes = style.figure(1, n + 1)
    names = [net.coordinate_name(i) for i in coords]
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, n))
    for col, exp in enumerate(experiments):
        ax = axes[0, col]
        plot_entries(ax, reference, coords, names, linestyle=":", legend=False)
        plot_entries(ax, exp.perturbed, coords, names, legend=col == 0)
        plot_entries(ax, exp.reference, coords, names, linestyle="--", legend=False)
        ax.set_xlim(exp.tau - 0.02, exp.reference.tau[-1] + 0.01)
        ax.set_title(labels[col] if labels else rf"kick at $\tau$ = {exp.tau:.3f}")
        t = exp.reference.t - exp.reference.t[0]
        axes[0, n].semilogy(t, np.maximum(exp.distance, 1e-16), color=shades[col])
    axes[0, 0].set_ylabel(ENTRY)
    axes[0, n].set(xlabel="gradient-flow time since the kick", ylabel=DIST, title="distance, per kick")
    handles, texts = axes[0, 0].get_legend_handles_labels()
    style.finish(fig, title, subtitle)
    return _legend_below(fig, handles, texts)


def _legend_below(fig, handles, texts, rows: int = 2):
    """A figure legend under the panels (inside one it would cover the curves); grows the figure for it."""
    w, h = fig.get_size_inches()
    extra = rows * 0.28 + 0.1
    fig.set_size_inches(w, h + extra)
    fig.subplots_adjust(bottom=fig.subplotpars.bottom * h / (h + extra) + extra / (h + extra))
    fig.legend(handles, texts, loc="lower center", ncol=int(np.ceil(len(texts) / rows)), frameon=False)
    return fig


def saddle_decay(experiments, subtitle: str):
    """‖Δ(u⊙v)‖ after a kick at each saddle θ^k of Algorithm 1, against time since the kick."""
    fig, axes = style.figure(1, 1, width=6.0, height=3.2)
    ax = axes[0, 0]
    for n, (k, exp) in enumerate(experiments):
        ax.semilogy(exp.reference.t - exp.reference.t[0], np.maximum(exp.distance, 1e-16), color=f"C{n}",
                    label=rf"$\theta^{{{k}}}$")
    ax.set(xlabel="gradient-flow time since the kick", ylabel=DIST)
    ax.legend()
    return style.finish(fig, "Kicks at Algorithm 1's saddles decay on every plateau", subtitle)


def separation(rows, runs: dict, subtitle: str):
    """Per α, the jumps (|u_i v_i| from 1e-3 to 0.5 of final) as bars, one colour per stage."""
    fig, axes = style.figure(1, 1, width=6.5, height=3.0)
    ax = axes[0, 0]
    for n, row in enumerate(rows):
        for k, (start, end) in enumerate(sorted(flow.transition_windows(runs[row["α"]]).values())):
            ax.plot([start, end], [n, n], color=f"C{k}", lw=6, solid_capstyle="butt")
    ax.set(yticks=range(len(rows)), yticklabels=[rf"$\alpha$ = {r['α']:g}" for r in rows], xlabel=TAU)
    return style.finish(fig, r"Jumps from $10^{-3}$ to $0.5$ of the final $|u_i v_i|$, one colour per stage",
                        subtitle)
