"""ViT training throughput (images/s) and model FLOP utilization: the fast path vs a plain PyTorch path.

Fast path (what rankbook.training.loop runs): the training split as one uint8
tensor on the device, batches gathered by index and augmented there (random
crop + flip), bf16 autocast where the device has it (CUDA; fp32 on CPU unless
--precision bf16), fused Adam on CUDA, no host sync per step, optional
torch.compile. Plain path: torchvision ImageFolder over the JPEG files with
PIL transforms (RandomCrop(32, padding 4), RandomHorizontalFlip, ToTensor,
Normalize) through a DataLoader, fp32, default Adam, ``loss.item()`` every
step. Same model, batch and optimizer settings; the two are timed in
alternating chunks (best chunk of each), so load drifts hit both alike.

FLOPs are counted analytically (rankbook.book.benchmarking.vit_train_flops_per_image);
the peak is the data-sheet value on GPUs and an assumed one on CPUs (printed).
--quick (default without CUDA): the fast profile's narrow ViT, batch 128, on
a 5,000-image subset. --full (default with CUDA): the paper's ViT, batch 512,
the whole training split.

    .venv/bin/python benchmarks/vit_throughput.py [--quick|--full] [--compile] [--out PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: idle OpenMP threads sleep, not spin

import itertools  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rankbook.book import benchmarking  # noqa: E402
from rankbook.data import images as data  # noqa: E402
from rankbook.models.vit import ViT  # noqa: E402
from rankbook.settings import profiles  # noqa: E402
from rankbook.settings.vit import PROFILES  # noqa: E402
from rankbook.store import atomic  # noqa: E402
from rankbook.training import vit  # noqa: E402
from rankbook.training.options import FitOptions  # noqa: E402


def plain_loader(batch: int, workers: int, mean: torch.Tensor, std: torch.Tensor, subset: int | None):
    """A torchvision DataLoader with PIL transforms over the CIFAR-10 JPEGs (FakeData when none are found)."""
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean.tolist(), std.tolist()),
        ]
    )
    try:
        source = data.locate("cifar10", download=False)
        if source.kind == "imagefolder":
            dataset = torchvision.datasets.ImageFolder(str(source.path / "train"), transform=tf)
        else:
            dataset = torchvision.datasets.CIFAR10(str(source.path.parent), train=True, transform=tf)
        what = f"{source.kind} at {source.path}"
    except data.DataNotFoundError:
        dataset = torchvision.datasets.FakeData(50_000, (3, 32, 32), 10, transform=tf)
        what = "torchvision FakeData (CIFAR-10 not found)"
    if subset:
        dataset = torch.utils.data.Subset(dataset, torch.randperm(len(dataset))[:subset].tolist())
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )
    return loader, what


def main(argv: list[str] | None = None) -> dict:
    p = benchmarking.parser("vit_throughput", __doc__)
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="fast path arithmetic (auto: bf16 on CUDA, fp32 on CPU)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="plain path DataLoader workers (default 0 quick, 8 full)"
    )
    p.add_argument("--chunks", type=int, default=None, help="alternating timed chunks per path")
    p.add_argument("--steps", type=int, default=None, help="steps per chunk")
    args = p.parse_args(argv)
    device, quick = benchmarking.resolve(args)
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    # the fast profile's narrow ViT (quick) or the paper's ViT at batch 512 (full), crop+flip on the device
    settings = profiles.select(
        PROFILES, "fast" if quick else "paper", augment="crop_flip", epochs=1, warmup_epochs=0, lr=1e-4
    )
    subset, steps, chunks, workers = (5000, 3, 3, 0) if quick else (None, 30, 3, 8)
    batch = settings.batch_size
    steps, chunks = args.steps or steps, args.chunks or chunks
    workers = workers if args.workers is None else args.workers

    try:
        train_data = data.load_split("cifar10", "train", subset=subset, seed=0)
    except data.DataNotFoundError:  # throughput does not depend on pixel values
        g = torch.Generator().manual_seed(0)
        n = subset or 50_000
        train_data = data.ImageData(
            torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.arange(n) % 10,
            [str(i) for i in range(10)],
            "synthetic (CIFAR-10 not found)",
        )
    task = vit.ViTTask(settings, "cifar10", 1.0, 0, data=(train_data, train_data))
    model_cfg = task.model_config()
    options = FitOptions(precision=precision, compile=args.compile).resolved(device)

    # fast path: the step of rankbook.training.loop
    fast_model = task.build_model().to(device)
    fast_opt = torch.optim.Adam(
        fast_model.parameters(), lr=1e-4, **({"fused": True} if options.fused_adam else {})
    )
    forward = torch.compile(fast_model) if args.compile else fast_model
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    fast_steps = itertools.count()

    def fast_chunk():
        nonlocal loss_sum
        for _ in range(steps):
            images, labels = task.train_batch(next(fast_steps) % task.total_steps(), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = task.loss(forward, images, labels).float()
            fast_opt.zero_grad(set_to_none=True)
            loss.backward()
            fast_opt.step()
            loss_sum += loss.detach().double()

    # plain path: DataLoader + PIL transforms, fp32, a host sync per step
    task._on(device)
    loader, plain_source = plain_loader(batch, workers, task.mean.cpu(), task.std.cpu(), subset)
    torch.manual_seed(0)
    plain_model = ViT(model_cfg).to(device)
    plain_opt = torch.optim.Adam(plain_model.parameters(), lr=1e-4)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # endless epochs

    def plain_chunk():
        for _ in range(steps):
            images, labels = next(batches)
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = F.cross_entropy(plain_model(images), labels)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            plain_opt.step()
            loss.item()

    benchmarking.clock(fast_chunk, device)  # warm-up (and compilation)
    benchmarking.clock(plain_chunk, device)
    t_fast, t_plain = [], []
    for _ in range(chunks):
        t_fast.append(benchmarking.clock(fast_chunk, device))
        t_plain.append(benchmarking.clock(plain_chunk, device))
    flops_per_image = benchmarking.vit_train_flops_per_image(model_cfg)
    peak, peak_source = benchmarking.peak_flops(device, precision)
    peak_fp32, _ = benchmarking.peak_flops(device, "fp32")
    measured = (
        benchmarking.measured_matmul_peak(device) if device.type == "cuda" and precision == "bf16" else None
    )
    rows = {}
    for name, times, prec, peak_used in (
        ("fast", t_fast, precision, peak),
        ("plain", t_plain, "fp32", peak_fp32),
    ):
        ips = batch * steps / min(times)
        rows[name] = {
            "images_per_s": ips,
            "step_s": min(times) / steps,
            "precision": prec,
            "achieved_tflops": ips * flops_per_image / 1e12,
            "mfu": ips * flops_per_image / peak_used if peak_used else None,
            "mfu_measured_peak": ips * flops_per_image / measured if measured and prec == "bf16" else None,
        }
    params = sum(p.numel() for p in fast_model.parameters())
    report = {
        **benchmarking.report_header(device, quick),
        "model": vars(model_cfg) if hasattr(model_cfg, "__dict__") else str(model_cfg),
        "parameters": params,
        "batch": batch,
        "steps_per_chunk": steps,
        "chunks": chunks,
        "compile": args.compile,
        "fused_adam": options.fused_adam,
        "plain_workers": workers,
        "plain_source": plain_source,
        "fast_source": train_data.description,
        "flops_per_image": flops_per_image,
        "flop_formula": benchmarking.FLOP_FORMULA,
        "peak_flops": peak,
        "peak_flops_fp32": peak_fp32,
        "peak_source": peak_source,
        "measured_bf16_matmul_flops": measured,
        "fast": rows["fast"],
        "plain": rows["plain"],
        "speedup": rows["fast"]["images_per_s"] / rows["plain"]["images_per_s"],
    }
    print(
        f"ViT training throughput on {report['device']} ({report['mode']}): {params / 1e6:.2f} M parameters, "
        f"batch {batch}, {flops_per_image / 1e9:.3f} GFLOP per image (training)"
    )
    print(f"{'path':<8}{'precision':>10}{'images/s':>12}{'TFLOP/s':>10}{'MFU':>9}")
    for name, r in rows.items():
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"{name:<8}{r['precision']:>10}{r['images_per_s']:>12.1f}{r['achieved_tflops']:>10.3f}{mfu:>9}")
    print(f"fast / plain: {report['speedup']:.2f}x   peak: {peak_source}")
    if measured:
        print(
            f"measured bf16 matmul peak (8192³): {measured / 1e12:.0f} TFLOP/s; fast path MFU against it: "
            f"{100 * rows['fast']['mfu_measured_peak']:.1f}%"
        )
    print(f"written to {atomic.write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
