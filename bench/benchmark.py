"""Speed figures for the closing notes, measured side by side in one run (never a timed test).

    python bench/benchmark.py                  # everything
    python bench/benchmark.py --only training  # one section: training, grading, im2col

* training: the MLP reference trained the course's way (DataLoader + ToTensor + Normalize, batch 64,
  Adam lr 0.001) and the grader's way (whole tensors sliced into batches of 256, Adam with one-cycle),
  each until the grading threshold on the test set (judged every quarter epoch; for the grader's way,
  the smallest budget in quarter epochs that reaches it), or a cap; times to threshold and their ratio.
* grading: one reference submission of every assignment graded end to end with `python -m autograder grade`
  (wall time, the probe's and the judge's seconds, peak memory of the whole process tree: the sum
  of the processes' proportional set sizes, sampled every 50 ms), and again
  lean with one torch thread, as Gradescope's small containers need it.
* gradescope: each reference graded lean inside a container with Gradescope's default limits (768 MB
  without swap, half a CPU: bench/container.py, cgroups, as root), and in larger ones where it does not
  fit; the score, wall time, the peak memory the kernel charged and OOM kills.
* throughput: 20 copies of the MLP reference submission graded with -j 1 and with -j 2, and the same
  batch of 4 graded in the strongest sandbox and with none (--unsafe): the sandbox's
  overhead per submission.
* im2col: bench/im2col_speed.py (the reference convolution against torch's conv2d).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "solutions" / "mlp"))
sys.path.insert(0, str(ROOT / "bench"))


CHECKS_PER_EPOCH = 4  # both ways are judged on the test set every quarter epoch (judging time excluded)


def _course_way(data_dir: str, threshold: float, cap: int, seed: int) -> tuple[float, float, float]:
    """DataLoader + ToTensor + Normalize, batch 64, Adam lr 0.001: seconds of training until ``threshold``."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    from mlp import Net

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(data_dir, train=True, download=True, transform=transform)
    test = datasets.MNIST(data_dir, train=False, download=True, transform=transform)
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=1000)
    torch.manual_seed(seed)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    check_every = len(train_loader) // CHECKS_PER_EPOCH
    trained = 0.0
    accuracy = 0.0
    for epoch in range(cap):
        model.train()
        start = time.perf_counter()
        for step, (data, target) in enumerate(train_loader, start=1):
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            if step % check_every == 0:
                trained += time.perf_counter() - start
                model.eval()
                with torch.no_grad():
                    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader)
                accuracy = correct / len(test)
                model.train()
                done = epoch + step / len(train_loader)
                print(f"  course way, {done:.2f} epochs: {accuracy:.2%} after {trained:.1f} s of training")
                if accuracy >= threshold:
                    return trained, accuracy, done
                start = time.perf_counter()
    return trained, accuracy, float(cap)


def _grader_way(data_dir: str, threshold: float, seed: int) -> tuple[float, float, float]:
    """Whole tensors, batches by slicing, one-cycle: the smallest budget (in quarter epochs) reaching ``threshold``."""
    from mnistkit.data import load_mnist, normalize
    from mnistkit.train import Budget, accuracy, fit, predict

    from mlp import Net

    train_images, train_labels = load_mnist(train=True, data_dir=data_dir)
    test_images, test_labels = load_mnist(train=False, data_dir=data_dir)
    train_images, test_images = normalize(train_images), normalize(test_images)
    import torch

    for quarters in range(1, 4 * CHECKS_PER_EPOCH + 1):
        budget = Budget(epochs=quarters / CHECKS_PER_EPOCH, batch_size=256, lr=0.005)
        torch.manual_seed(seed)
        model = Net()
        start = time.perf_counter()
        fit(model, train_images, train_labels, budget=budget, seed=seed)
        seconds = time.perf_counter() - start
        reached = accuracy(predict(model, test_images), test_labels)
        print(f"  grader way, {budget.epochs:.2f} epochs (batch 256, one-cycle): {reached:.2%} in {seconds:.1f} s")
        if reached >= threshold:
            return seconds, reached, budget.epochs
    return seconds, reached, budget.epochs


def bench_training(args: argparse.Namespace) -> None:
    import torch

    from autograder.config import load_assignment

    torch.set_num_threads(args.threads)
    threshold = load_assignment("mlp").accuracy["trained"].threshold
    print(f"== MLP training until {threshold:.0%} on the test set ({args.threads} threads, seed {args.seed})")
    course_s, course_acc, course_epochs = _course_way(args.data_dir, threshold, args.cap_epochs, args.seed)
    grader_s, grader_acc, grader_epochs = _grader_way(args.data_dir, threshold, args.seed)
    print(f"  course way: {course_s:.1f} s to {course_acc:.2%} ({course_epochs:.2f} epochs)")
    print(f"  grader way: {grader_s:.2f} s to {grader_acc:.2%} ({grader_epochs:.2f} epochs)")
    print(f"  ratio course/grader: {course_s / grader_s:.1f}x")


def _memory_of(entry: Path) -> int:
    """A process's proportional set size in bytes (its own pages, plus its share of pages it shares with
    others: the libraries torch maps in every process count once over the tree, as a container's memory
    limit counts them); its resident size where smaps_rollup cannot be read."""
    for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            text = (entry / name).read_text()
        except OSError:
            continue
        kb = next((int(line.split()[1]) for line in text.splitlines() if line.startswith(key)), None)
        if kb is not None:
            return kb * 1024
    return 0


def _tree_rss(pid: int) -> int:
    """Memory (bytes, :func:`_memory_of`) of a process and all its descendants, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _memory_of(Path("/proc") / str(current))
        todo += children.get(current, [])
    return total


def _timed(command: list[str], env: dict) -> tuple[float, int, float]:
    """Wall seconds, peak memory (:func:`_tree_rss`, sampled every 50 ms) and CPU seconds (user + system)
    of the whole process tree of ``command``."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start, cpu_start = time.perf_counter(), cpu()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed with exit code {process.returncode}")
    return time.perf_counter() - start, peak, cpu() - cpu_start


def _references(names: list[str], tmp_path: Path, data_dir: str):
    """``(name, zip)`` of a reference submission per assignment, built as a student builds theirs."""
    from autograder.assign import release_assignment
    from autograder.assign.submission import build_submission
    from autograder.config import load_assignment

    for name in names:
        config = load_assignment(name)
        handout = release_assignment(config, out_dir=tmp_path / "dist")
        yield name, build_submission(config, handout, tmp_path / "subs" / f"{name}.zip", kind="reference",
                                     data_dir=data_dir)


def _grade_command(submission: Path, out: Path, name: str, data_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out), "--data-dir", data_dir,
            "--assignment", name, *extra]


def _assignments(args: argparse.Namespace) -> list[str]:
    from autograder.config import list_assignments

    return args.assignments.split(",") if args.assignments else list_assignments()


def bench_grading(args: argparse.Namespace) -> None:
    """Every assignment's reference graded end to end, as `grade` does (2 threads) and as Gradescope would."""
    import json
    import os

    print("== grading one reference submission per assignment, end to end (python -m autograder grade)")
    print("   lean: --lean --threads 1, as on Gradescope; 'half a CPU' is twice its CPU seconds, the wall time "
          "a container with half a CPU needs at least")
    print(f"  {'assignment':10s} {'score':>9s} {'wall':>7s} {'probe':>6s} {'judge':>6s} {'peak memory':>12s}   "
          f"{'lean wall':>9s} {'lean peak':>10s} {'half a CPU':>11s}")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name, submission in _references(_assignments(args), tmp_path, args.data_dir):
            figures = []
            for extra in ([], ["--lean", "--threads", "1"]):
                out = tmp_path / f"out-{name}-{len(extra)}"
                seconds, peak, cpu_seconds = _timed(_grade_command(submission, out, name, args.data_dir, *extra), env)
                results = json.loads((out / name / "results.json").read_text())
                figures.append((seconds, peak, cpu_seconds, results))
            (seconds, peak, _, results), (lean_seconds, lean_peak, lean_cpu, _) = figures
            extra = results["extra_data"]
            print(f"  {name:10s} {results['score']:4g}/{extra['max_score']:<4g} {seconds:6.1f}s "
                  f"{extra.get('probe_seconds', 0):5.1f}s {extra.get('judge_seconds', 0):5.1f}s {peak / 2**20:9.0f} MB   "
                  f"{lean_seconds:8.1f}s {lean_peak / 2**20:7.0f} MB {2 * lean_cpu:10.0f}s", flush=True)


def bench_gradescope(args: argparse.Namespace) -> None:
    """Every reference graded lean in a container with Gradescope's default limits (768 MB without swap,
    half a CPU), and in larger ones where it does not fit: the settings each assignment needs."""
    import json
    import os

    from container import Container, ContainerUnavailable

    print("== grading one reference per assignment lean (--lean --threads 1) under a container's limits "
          "(cgroups: memory without swap, CPU quota)")
    print(f"  {'assignment':10s} {'memory':>8s} {'CPUs':>5s} {'score':>9s} {'wall':>7s} {'peak charged*':>13s} {'OOM kills':>9s}")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name, submission in _references(_assignments(args), tmp_path, args.data_dir):
            for memory in (768, 1024, 1536, 2048):
                out = tmp_path / f"box-{name}-{memory}"
                command = _grade_command(submission, out, name, args.data_dir, "--lean", "--threads", "1")
                try:
                    with Container(memory_mb=memory, cpus=0.5) as box:
                        outcome = box.run(command, env)
                except ContainerUnavailable as err:
                    print(f"  skipped: {err} (run as root on Linux)")
                    return
                result = out / name / "results.json"
                score = "failed"
                full = False
                if outcome.returncode == 0 and result.is_file():
                    results = json.loads(result.read_text())
                    score = f"{results['score']:g}/{results['extra_data']['max_score']:g}"
                    full = results["score"] >= results["extra_data"]["max_score"]
                print(f"  {name:10s} {memory:5d} MB {0.5:5.1f} {score:>9s} {outcome.seconds:6.1f}s "
                      f"{outcome.peak_bytes / 2**20:10.0f} MB {outcome.oom_kills:9d}", flush=True)
                if full and not outcome.oom_kills:
                    break
    print("  * what the kernel charged to the container, the page cache it read included (reclaimed under the "
          "limit, so it can reach the limit without harm); a run fits when it keeps full marks without OOM kills")


def _grade_batch(folder: Path, out: Path, *, jobs: int, data_dir: str, sandbox: str | None = None) -> float:
    import os

    env = dict(os.environ)
    if sandbox:
        env["MNISTKIT_SANDBOX"] = sandbox
    start = time.perf_counter()
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out), "--assignment", "mlp",
               "--data-dir", data_dir, "-j", str(jobs)] + (["--unsafe"] if sandbox == "unsafe" else [])
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_throughput(args: argparse.Namespace) -> None:
    from autograder.assign import release_assignment
    from autograder.assign.submission import build_submission
    from autograder.config import load_assignment
    from autograder.grade.sandbox import choose_mode

    config = load_assignment("mlp")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        handout = release_assignment(config, out_dir=tmp_path / "dist")
        reference = build_submission(config, handout, tmp_path / "ref.zip", kind="reference", data_dir=args.data_dir)
        batch = tmp_path / "batch"
        batch.mkdir()
        for index in range(args.batch_size):  # distinct bytes, so no two share a resume stamp
            with zipfile.ZipFile(reference) as old, zipfile.ZipFile(batch / f"student{index:02d}.zip", "w") as new:
                for item in old.infolist():
                    new.writestr(item, old.read(item))
                new.writestr("note.txt", f"copy {index}")
        print(f"== throughput: {args.batch_size} MLP reference submissions")
        for jobs in (1, 2):
            seconds = _grade_batch(batch, tmp_path / f"out-j{jobs}", jobs=jobs, data_dir=args.data_dir)
            print(f"  -j {jobs}: {seconds:.1f} s, {seconds / args.batch_size:.1f} s per submission, "
                  f"{3600 * args.batch_size / seconds:.0f} submissions per hour")
        small = tmp_path / "small"
        small.mkdir()
        for path in sorted(batch.iterdir())[:4]:
            (small / path.name).write_bytes(path.read_bytes())
        mode = choose_mode()
        sandboxed = _grade_batch(small, tmp_path / "out-sandboxed", jobs=1, data_dir=args.data_dir)
        bare = _grade_batch(small, tmp_path / "out-bare", jobs=1, data_dir=args.data_dir, sandbox="unsafe")
        print(f"== sandbox overhead ({mode} vs none, 4 submissions, -j 1): {sandboxed:.1f} s vs {bare:.1f} s, "
              f"{(sandboxed - bare) / 4:+.2f} s per submission")


def bench_im2col(args: argparse.Namespace) -> None:
    script = ROOT / "bench" / "im2col_speed.py"
    if script.is_file():
        print("== im2col convolution vs torch")
        subprocess.run([sys.executable, str(script), "--threads", str(args.threads)], check=True)


SECTIONS = {"training": bench_training, "grading": bench_grading, "gradescope": bench_gradescope,
            "throughput": bench_throughput, "im2col": bench_im2col}


def main(argv: list[str] | None = None) -> int:
    from mnistkit.data import resolve_data_dir

    parser = argparse.ArgumentParser(description="mnist-kit speed figures, measured side by side")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run (default: {','.join(SECTIONS)})")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--cap-epochs", type=int, default=5, help="most epochs for the course's way (default: 5)")
    parser.add_argument("--batch-size", type=int, default=20, help="submissions in the throughput batch (default: 20)")
    parser.add_argument("--assignments", default=None, help="assignments of the grading section (default: all)")
    args = parser.parse_args(argv)
    args.data_dir = str(resolve_data_dir(args.data_dir))
    for name in args.only.split(","):
        SECTIONS[name.strip()](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
