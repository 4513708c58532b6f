"""Cost of the spectra tracker per tracking point against one epoch of training, at the paper's schedule.

The tracker records, at each log-spaced tracking point, the singular values
of every head's ΔW_K W_Q^T and ΔW_V W_O^T (factored, float64, on the
training device) and evaluates the test set. Its overhead over a whole run
is ``points × t_point / (epochs × t_epoch)``, with the paper's schedule:
CIFAR-10's 50,000 training images in batches of 512 for 500 epochs (97
steps per epoch, 48,500 steps), 6 tracking points per decade (the number of
points follows from rankbook.training.loop.tracking_steps). Target: < 2% for the
spectra. Shapes are the paper's ViT (6 layers × 8 heads of 128, width 512);
images are synthetic (throughput does not depend on pixel values).

t_epoch = 50,000 / measured training throughput (the fast path's step);
t_eval = 10,000 test images / measured evaluation throughput. --quick
(default without CUDA) measures throughput on small batches (CPU); --full
(default with CUDA) on batches of 512.

    .venv/bin/python benchmarks/tracking_overhead.py [--quick|--full] [--out PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: idle OpenMP threads sleep, not spin


import torch  # noqa: E402

from rankbook.analysis import spectra  # noqa: E402
from rankbook.book import benchmarking  # noqa: E402
from rankbook.data import images as data  # noqa: E402
from rankbook.settings import profiles  # noqa: E402
from rankbook.settings.vit import PROFILES  # noqa: E402
from rankbook.store import atomic  # noqa: E402
from rankbook.training import schedule, vit  # noqa: E402
from rankbook.training.options import FitOptions  # noqa: E402

PAPER_TRAIN, PAPER_TEST, PAPER_BATCH, PAPER_EPOCHS, PER_DECADE = 50_000, 10_000, 512, 500, 6


def _synthetic(n: int, seed: int) -> data.ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return data.ImageData(images, torch.arange(n) % 10, [str(i) for i in range(10)], "synthetic")


def main(argv: list[str] | None = None) -> dict:
    p = benchmarking.parser("tracking_overhead", __doc__)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (best of)")
    args = p.parse_args(argv)
    device, quick = benchmarking.resolve(args)
    batch, steps, eval_images, repeats = (16, 2, 64, 1) if quick else (PAPER_BATCH, 20, PAPER_TEST, 3)
    repeats = args.repeats or repeats
    precision = "bf16" if device.type == "cuda" else "fp32"
    settings = profiles.select(
        PROFILES,
        "paper",
        augment="crop_flip",
        epochs=1,
        warmup_epochs=0,
        batch_size=batch,
        track_per_decade=PER_DECADE,
        eval_batch_size=min(eval_images, 500),
    )
    task = vit.ViTTask(
        settings, "cifar10", 1.0, 0, data=(_synthetic(max(4 * batch, 256), 0), _synthetic(eval_images, 1))
    )
    options = FitOptions(precision=precision).resolved(device)
    model = task.build_model().to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=1e-4, **({"fused": True} if options.fused_adam else {})
    )
    initial = {k: v.clone() for k, v in model.attention_weights().items()}
    step_counter = iter(range(10**9))

    def train_steps():
        for _ in range(steps):
            images, labels = task.train_batch(next(step_counter) % task.total_steps(), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = task.loss(model, images, labels).float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def track_spectra():
        weights = model.attention_weights()
        return spectra.delta_svdvals(weights, initial, "qk"), spectra.delta_svdvals(weights, initial, "vo")

    def evaluate():
        with torch.no_grad():
            task.evaluate(model, device)

    benchmarking.clock(train_steps, device)  # warm-up
    if not quick:  # first-call costs (CUDA kernels, cuSOLVER handles); on CPU they are negligible
        track_spectra()
        evaluate()
    t_steps, t_spectra, t_eval = [], [], []
    for _ in range(repeats):  # alternating, best of: load drifts hit all three alike
        t_steps.append(benchmarking.clock(train_steps, device))
        t_spectra.append(benchmarking.clock(track_spectra, device))
        t_eval.append(benchmarking.clock(evaluate, device))
    images_per_s = batch * steps / min(t_steps)
    t_epoch = PAPER_TRAIN / images_per_s
    t_point_spectra = min(t_spectra)
    t_point_eval = min(t_eval) * PAPER_TEST / eval_images
    spe = schedule.steps_per_epoch(PAPER_TRAIN, PAPER_BATCH)
    points = len(schedule.tracking_steps(spe * PAPER_EPOCHS, PER_DECADE))
    run_s = PAPER_EPOCHS * t_epoch
    report = {
        **benchmarking.report_header(device, quick),
        "precision": precision,
        "measured_batch": batch,
        "repeats": repeats,
        "schedule": {
            "train_images": PAPER_TRAIN,
            "test_images": PAPER_TEST,
            "batch": PAPER_BATCH,
            "epochs": PAPER_EPOCHS,
            "steps_per_epoch": spe,
            "tracking_points": points,
            "per_decade": PER_DECADE,
        },
        "train_images_per_s": images_per_s,
        "epoch_s": t_epoch,
        "spectra_s_per_point": t_point_spectra,
        "eval_s_per_point": t_point_eval,
        "spectra_vs_epoch": t_point_spectra / t_epoch,
        "spectra_overhead": points * t_point_spectra / run_s,
        "spectra_and_eval_overhead": points * (t_point_spectra + t_point_eval) / run_s,
        "target_overhead": 0.02,
    }
    print(
        f"tracker cost at the paper's schedule on {report['device']} ({report['mode']}, {precision}): "
        f"{points} tracking points over {PAPER_EPOCHS} epochs of {spe} steps"
    )
    print(f"one epoch of training      {t_epoch:10.2f} s   ({images_per_s:.1f} images/s at batch {batch})")
    print(
        f"spectra per tracking point {t_point_spectra:10.3f} s   = "
        f"{100 * report['spectra_vs_epoch']:.2f}% of an epoch"
    )
    print(f"test evaluation per point  {t_point_eval:10.3f} s")
    print(
        f"whole-run overhead: spectra {100 * report['spectra_overhead']:.3f}% (target < 2%), "
        f"spectra + evaluation {100 * report['spectra_and_eval_overhead']:.3f}%"
    )
    print(f"written to {atomic.write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
