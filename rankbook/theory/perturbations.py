"""Perturb-and-train-on experiments of appendix A (Figs. 9-10), aimed at exact times.

A reference run is a log-coordinate gradient flow (:func:`rankbook.theory.flow.log_flow`).
A kick adds N(0, std²) to every weight (entry of u or v) whose magnitude exceeds
``threshold`` (1e-5 in the paper), then the flow is followed from the kicked and
from the unkicked state. Kicks happen at exact times, never at the nearest
record: the state is integrated from the last record before the time.

- Fig. 9 (Assumption 4.3): one or more random times on *each* plateau θ^k of the
  reference run; the window runs to the end of that plateau, and the decay of
  ‖Δ(u⊙v)‖ is reported per plateau.
- Fig. 10 (Assumption 4.4): the first moment a coordinate's weight exceeds the
  threshold (found on a fine sub-record, so that coordinate is among those
  kicked); the measure is the perturbed run's distance to Algorithm 1's next
  saddle θ^{k+1} and the time shift of its closest approach.

Distances are between products u⊙v (β), the quantities the figures show:
(u, v) → (λu, v/λ) keeps u⊙v, so θ itself may settle elsewhere along that valley.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rankbook.theory import flow
from rankbook.theory.diagonal import DiagonalNetwork, uv_from_w
from rankbook.theory.flow import Trajectory

#: |u_i v_i| at which a coordinate outside a saddle's support ends that saddle's plateau: small beside the
#: kicks' ‖Δ(u⊙v)‖ (~1e-1), so a next jump starting a little earlier or later does not count as a non-return
PLATEAU_EXIT = 1e-3


@dataclasses.dataclass
class Perturbation:
    """One kick: the reference and perturbed continuations from the same exact time."""

    tau: float  # rescaled time of the kick
    reference: Trajectory
    perturbed: Trajectory
    perturbed_coords: np.ndarray  # indices into θ = [u, v]

    @property
    def distance(self) -> np.ndarray:
        """‖β_perturbed − β_reference‖ at each record of the window."""
        return np.linalg.norm(self.perturbed.beta - self.reference.beta, axis=1)

    def kicked(self, p: int) -> np.ndarray:
        """Diagonal coordinates (0 ≤ i < p) with u_i or v_i kicked."""
        return np.unique(self.perturbed_coords % p)


def weights(traj: Trajectory) -> np.ndarray:
    """max(|u_i|, |v_i|) per record and coordinate: the magnitude the threshold is compared with."""
    return np.maximum(np.abs(traj.u), np.abs(traj.v))


def state_at(net: DiagonalNetwork, traj: Trajectory, tau: float, **solver) -> tuple[Trajectory, int]:
    """(a trajectory, record index) holding the exact state at rescaled time ``tau``."""
    t = tau * flow.log_inverse(traj.alpha)
    k = int(np.searchsorted(traj.t, t, side="right")) - 1
    if k < 0 or t > traj.t[-1]:
        raise ValueError(f"τ = {tau:g} is outside the run [{traj.tau[0]:g}, {traj.tau[-1]:g}]")
    if t == traj.t[k]:
        return traj, k
    return flow.continue_from(net, traj, k, t - traj.t[k], 2, **solver), 1


def crossing_state(net: DiagonalNetwork, traj: Trajectory, coord: int, threshold: float, *,
                   n_fine: int = 64, **solver) -> tuple[Trajectory, int]:
    """The first state where ``coord``'s weight exceeds ``threshold``, on a record ``n_fine`` × finer."""
    above = np.flatnonzero(weights(traj)[:, coord] > threshold)
    if above.size == 0 or above[0] == 0:
        raise ValueError(f"coordinate {coord} never crosses {threshold:g} during the run "
                         "(or starts above it)")
    k = int(above[0]) - 1
    fine = flow.continue_from(net, traj, k, traj.t[k + 1] - traj.t[k], n_fine + 1, **solver)
    j = int(np.flatnonzero(weights(fine)[:, coord] > threshold)[0])
    return fine, j


def kick_and_follow(net: DiagonalNetwork, start: Trajectory, j: int, *, std: float, threshold: float,
                    duration: float, rng: np.random.Generator, n_record: int = 100,
                    compare: Trajectory | None = None, **solver) -> Perturbation:
    """Kick every weight above ``threshold`` at record ``j`` of ``start``; follow for ``duration`` (t units).

    The unperturbed continuation is integrated too, unless ``compare`` (the run ``start``
    was taken from) is given: then its own records in the window are the reference and
    the perturbed run is recorded at those times (half the cost, the same numbers).
    """
    if duration <= 0:
        raise ValueError(f"the window after a kick must be positive, got {duration:g}")
    theta, t_kick = start.theta[j], start.t[j]
    coords = np.flatnonzero(np.abs(theta) > threshold)
    kick = np.zeros_like(theta)
    kick[coords] = std * rng.standard_normal(coords.size)
    z, c, signs = _kicked_state(start.log_w[j], start.c, start.signs, *np.split(kick, 2))
    if compare is None:
        reference = flow.continue_from(net, start, j, duration, n_record, **solver)
    else:
        inside = np.flatnonzero((compare.t > t_kick) & (compare.t <= t_kick + duration))
        reference = dataclasses.replace(
            compare, t=np.r_[t_kick, compare.t[inside]], theta=np.vstack([theta, compare.theta[inside]]),
            loss=np.r_[start.loss[j], compare.loss[inside]],
            log_w=np.vstack([start.log_w[j], compare.log_w[inside]]))
    perturbed = flow.log_flow_from(net, z, c, signs, start.alpha, reference.t - t_kick, **solver)
    perturbed = dataclasses.replace(perturbed, t=perturbed.t + t_kick)
    return Perturbation(float(start.tau[j]), reference, perturbed, coords)


def _kicked_state(z, c, signs, du, dv):
    """(log w, c, signs) after adding (du, dv) to (u, v), computed from the exact w = e^z and d = u − v = c/w.

    Recomputing w = u + v from the kicked (u, v) would cancel catastrophically for a learned
    negative product (u ≈ −v, w ~ α²): update w and d instead, flipping the signs where w < 0.
    """
    w = np.exp(z)
    w_new, d_new = w + signs * (du + dv), c / w + signs * (du - dv)
    flip = np.where(w_new < 0, -1.0, 1.0)
    w_new, d_new = w_new * flip, d_new * flip
    return np.log(np.maximum(w_new, 1e-300)), w_new * d_new, signs * flip


def at_saddle(net: DiagonalNetwork, beta: np.ndarray, alpha: float, off: float = 1e-60) -> Trajectory:
    """A one-record run sitting at Algorithm 1's saddle β = θ^k with (nearly) balanced weights.

    Every coordinate gets c = u² − v² = ``off``² (the α → 0 picture: c = O(α²)); off the
    support β = ``off``², i.e. weights ~``off``, negligible for any window shorter than
    log(1/off) / max|g| in gradient-flow time (~25 for the toy head).
    """
    c = np.full(beta.shape, off * off)
    z = log_w_from_product(np.where(beta != 0, beta, off * off), c)
    u, v = uv_from_w(np.exp(z), c)
    return Trajectory(alpha, np.zeros(1), np.concatenate([u, v])[None], np.array([net.loss(u * v)]), 0, 0.0,
                      "Algorithm 1 saddle", log_w=z[None], c=c, signs=np.ones_like(c))


def log_w_from_product(beta: np.ndarray, c: np.ndarray) -> np.ndarray:
    """z = log w with w = u + v > 0, from β = u v and c = u² − v² > 0: w² solves w⁴ − 4βw² − c² = 0.

    Written without cancellation for β < 0, where w² ≈ c² / (4|β|) is tiny.
    """
    root = np.sqrt(4 * beta * beta + c * c)
    w2 = np.where(beta >= 0, 2 * beta + root, c * c / np.maximum(root - 2 * beta, 1e-300))
    return 0.5 * np.log(w2)


def crossings(traj: Trajectory, threshold: float) -> list[tuple[float, int]]:
    """(τ, coordinate) per coordinate whose weight rises above ``threshold`` (Fig. 10's epochs), in order."""
    onsets = flow.activation_times(traj, threshold, weights(traj))
    found = [(float(t), int(i)) for i, t in enumerate(onsets) if not np.isnan(t) and t > traj.tau[0]]
    return sorted(found)


def plateau_exit(traj: Trajectory, support, after_tau: float, level: float = PLATEAU_EXIT) -> float:
    """First recorded τ > ``after_tau`` where a coordinate outside ``support`` has |u_i v_i| ≥ ``level``."""
    outside = np.setdiff1d(np.arange(traj.beta.shape[1]), support)
    hit = (traj.tau > after_tau) & (np.abs(traj.beta[:, outside]) >= level).any(axis=1)
    return float(traj.tau[np.argmax(hit)]) if hit.any() else float(traj.tau[-1])


def plateaus(traj: Trajectory, stages, threshold: float, near: float = 1e-2) -> list[dict]:
    """Per stage k of Algorithm 1: when the reference run reaches θ^k, how close it gets, when it leaves.

    The plateau starts at the first record after the winner's weight crosses ``threshold``
    within ``near`` × ‖θ^k‖ of θ^k (else at the closest record: the run never settles there)
    and ends when a coordinate outside supp(θ^k) reaches |u_i v_i| = :data:`PLATEAU_EXIT`.
    """
    onset = dict((i, t) for t, i in crossings(traj, threshold))
    out = []
    for stage in stages:
        after = onset.get(stage.winner, traj.tau[0])
        end = plateau_exit(traj, stage.support, after)
        inside = np.flatnonzero((traj.tau >= after) & (traj.tau <= end))
        dist = np.linalg.norm(traj.beta[inside] - stage.beta, axis=1)
        close = np.flatnonzero(dist <= near * np.linalg.norm(stage.beta))
        first = close[0] if close.size else int(np.argmin(dist))
        out.append({"stage": stage.k, "start": float(traj.tau[inside[first]]), "end": end,
                    "closest": float(dist.min()), "saddle": stage.beta})
    return out


def plateau_times(found: list[dict], rng: np.random.Generator,
                  per_plateau: int = 1) -> list[tuple[int, float]]:
    """(stage, τ) drawn uniformly in the first half of each plateau, so the window shows the return."""
    out = []
    for plateau in found:
        middle = 0.5 * (plateau["start"] + plateau["end"])
        drawn = np.sort(rng.uniform(plateau["start"], middle, per_plateau))
        out += [(plateau["stage"], float(t)) for t in drawn]
    return out


def jump_time(traj: Trajectory, coord: int, target: float, level: float = 0.5) -> float:
    """Rescaled time at which |u_i v_i| of ``coord`` first reaches ``level`` × |``target``| (NaN if never)."""
    values = np.abs(traj.beta[:, coord]) / abs(target)
    return float(flow.activation_times(traj, level, values[:, None])[0])


def closest_approach(traj: Trajectory, beta: np.ndarray) -> tuple[float, float]:
    """(min over records of ‖u⊙v − β‖, the rescaled time where it is reached)."""
    dist = np.linalg.norm(traj.beta - beta, axis=1)
    k = int(np.argmin(dist))
    return float(dist[k]), float(traj.tau[k])
