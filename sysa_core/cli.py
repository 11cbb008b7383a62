"""Command line: `sysa evaluate`, `sysa train`, `sysa run` (also `python -m sysa_core`).

User mistakes end with one line on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import threading
from pathlib import Path

from . import forked
from .errors import UserError

# jsonschema (imported by nbformat, papermill and nbconvert) imports rfc3987_syntax when it is
# installed, and that compiles some forty grammars at import (about a second per process) to check
# "iri" strings, which no notebook holds. The sysa command and the workers it spawns (which import
# this module again) go without it; jsonschema then skips that one format check.
sys.modules.setdefault("rfc3987_syntax", None)

#: the most seeds one command takes
MAX_SEEDS = 10_000


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, like every other user error
        sub = self.prog.removeprefix("sysa").strip()
        raise UserError(f"{sub}: {message}" if sub else message)


class Terminated(BaseException):
    """SIGTERM, handled like an interrupt (a BaseException, as KeyboardInterrupt is: no handler of
    errors catches it, so the work ends where the signal found it)."""


def _terminate(signum, frame):
    raise Terminated


def parse_seeds(text: str) -> list[int]:
    """'1-20', '3', '1,4,7-9' -> sorted unique seeds (at most MAX_SEEDS, checked before they are built)."""
    seeds: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                if lo_i < 0 or hi_i >= 2**31:  # checked before the range is built (1-9999999999)
                    raise UserError(f"--seeds: seeds must be integers in [0, 2^31), got {text!r}")
                if hi_i - lo_i + 1 + len(seeds) > MAX_SEEDS:
                    raise UserError(f"--seeds: at most {MAX_SEEDS} seeds at once, {text!r} has more")
                seeds.update(range(lo_i, hi_i + 1))
            else:
                seeds.add(int(part))
    except ValueError:
        raise UserError(f"--seeds: cannot read {text!r} (use e.g. 1-20, 3 or 1,4,7-9)") from None
    if not seeds or min(seeds) < 0 or max(seeds) >= 2**31:
        raise UserError(f"--seeds: seeds must be integers in [0, 2^31), got {text!r}")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"--seeds: at most {MAX_SEEDS} seeds at once, {text!r} has more")
    return sorted(seeds)


def _out(text: str | None, default: Path | None = None, option: str = "--out") -> Path:
    """The folder of `option`: the default when not given; an empty text is a mistake, not the
    current folder."""
    if text is None:
        return default
    if not str(text).strip():
        raise UserError(f"{option}: empty folder name")
    return Path(text)


def cmd_evaluate(args) -> int:
    from . import files, training
    from .analysis import metrics, network
    from .pipeline import preflight, store

    cache = None if args.network_dir is None else _out(args.network_dir, option="--network-dir")
    if cache is not None and args.core_only:
        raise UserError("--network-dir: --core-only computes no analysis of G to keep; drop one of the two")
    jobs = []
    for p in (Path(p) for p in args.checkpoints):  # check every file before any work starts
        cfg = files.for_checkpoint(p, args.profile, args.set, args.seed)
        training.check_memory(cfg)
        ck = files.load_checkpoint(p, hidden_size=cfg.model.hidden_size)
        jobs.append((p, cfg, ck))
    if cache is not None:
        files.check_model_folder(cache, "--network-dir")  # not a symbolic link, nor a folder of other files
        preflight.check_output_dir(cache, "--network-dir")

    def warn(exc: OSError) -> None:
        print(f"sysa: warning: --network-dir {cache}: G's analysis was not kept ({exc.strerror or exc})",
              file=sys.stderr)

    nets: dict = {}  # the network analysis once per G (and configuration) among the files given
    for p, cfg, ck in jobs:
        net = None
        if not args.core_only:
            G = ck["state_dict"]["G"]
            key = network.network_key(cfg, G)
            net = nets[key] = nets.get(key) or store.load_or_analyse_network(cfg, G, cache, on_write_error=warn)
        m = metrics.analyse(cfg, ck["state_dict"], core_only=args.core_only, checkpoint_sha256=files.sha256(p),
                            epoch=ck["epoch"], training=ck["extra"], network=net).metrics
        if args.json:
            print(json.dumps(m), flush=True)
        else:
            print(f"{p}  (seed {cfg.seed}, profile {cfg.profile})")
            for k, v in m.items():
                print(f"  {k:32s} {json.dumps(v) if isinstance(v, dict) else v}")
    return 0


def cmd_train(args) -> int:
    from . import config
    from .pipeline import train
    from .runtime import resolve_device

    cfg = config.resolve(args.profile, args.set)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [cfg.seed]
    dev = resolve_device(args.device)
    out = _out(args.out)
    seconds = train.train(cfg, seeds, out, overrides=args.set, batch_seeds=args.batch_seeds,
                          progress=not args.quiet, device=str(dev))
    if not args.quiet:
        print(f"sysa train: {len(seeds)} seed(s) on {dev} in {seconds:.1f} s wall; "
              f"checkpoints in {out}", file=sys.stderr)
    return 0


def cmd_check(args) -> int:
    from .pipeline import verify

    results = verify.check_run(_out(args.folder))
    bad = {k: v for k, v in results.items() if v.action != "none"}
    for name, chk in results.items():
        if chk.action == "none":
            print(f"{name}: complete")
        else:
            print(f"{name}: {'; '.join(chk.problems)} (a re-run would: {chk.action})")
    if bad:
        print(f"sysa check: {len(bad)} of {len(results)} parts do not verify; the same `sysa run` (or `sysa train`) "
              f"command repairs them", file=sys.stderr)
    else:
        print(f"sysa check: all {len(results)} parts verify", file=sys.stderr)
    return 1 if bad else 0


def cmd_run(args) -> int:
    from . import config, files
    from .pipeline import run as pipeline
    from .runtime import resolve_device

    cfg = config.resolve(args.profile, args.set)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else config.PROFILE_SEEDS[args.profile]
    dev = resolve_device(args.device)
    out = _out(args.out, files.default_run_dir(args.profile))
    if args.workers < 1:
        raise UserError(f"--workers: must be at least 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: must be at least 1, got {args.threads}")
    if args.scheduler and args.batch_seeds:
        raise UserError("--batch-seeds: not with --scheduler (each Dask task trains one seed)")
    if args.workers > 1 and args.batch_seeds:
        raise UserError("--batch-seeds: not with --workers (each worker trains one seed)")
    if (args.workers > 1 or args.scheduler) and args.device != "auto":
        raise UserError(f"--device {args.device}: only for training in this process; with --workers or "
                        f"--scheduler each seed trains in its notebook on the worker's device (SYSA_DEVICE there)")
    control = config.PROFILE_CONTROL[args.profile] if args.control is None else args.control
    return pipeline.run(cfg, seeds, out, overrides=args.set, force=args.force, batch_seeds=args.batch_seeds,
                        progress=not args.quiet, control=control, workers=args.workers, scheduler=args.scheduler,
                        threads=args.threads, device=str(dev), html_code=args.html_code)


def cmd_study(args) -> int:
    from . import files
    from .pipeline import shipped

    src = Path(args.shipped) if args.shipped else shipped.default_dir()
    if args.action == "pack":
        if not args.run:
            raise UserError("study pack: name the paper run folder whose finished models to add")
        added = shipped.pack(_out(args.run), src)
        analysed = sum((shipped.seed_folder(src, label, s) / "metrics.json").is_file()
                       for label, seeds in shipped.shipped_seeds(src).items() for s in seeds)
        print(f"sysa study pack: {len(added)} model(s) added to {src}" + (f": {', '.join(added)}" if added else "")
              + f"; {analysed} shipped model(s) with their metrics", file=sys.stderr)
    elif args.action == "unpack":
        out = _out(args.out, Path("data/runs/paper-study"))
        got = shipped.unpack(out, src)
        print(f"sysa study unpack: {', '.join(f'{k} seeds {parse_text(v)}' for k, v in got.items())} in {out}; "
              f"`sysa run --profile {shipped.study_config(src).profile} --out {out} --seeds {parse_text(got['main'])}` "
              f"analyses them without training", file=sys.stderr)
    elif args.action == "report":
        from .pipeline import run as pipeline

        out = _out(args.out, Path("data/runs/paper-study"))
        rule = shipped.comparison(src)
        got = shipped.unpack(out, src)
        cfg = shipped.study_config(src)
        status = pipeline.run(cfg, got["main"], out, overrides=files.read_json(src / shipped.STUDY).get("overrides", []),
                              control=len(got) > 1, progress=not args.quiet, device="cpu")
        diffs = shipped.compare_metrics(out, src, rule)
        bad = {k: v for k, v in diffs.items() if v}
        for k, v in bad.items():
            print(f"{k}: {len(v)} metric(s) differ from the shipped ones: {'; '.join(v[:3])}"
                  + (" ..." if len(v) > 3 else ""))
        checked = (f"{len(diffs) - len(bad)} of {len(diffs)} shipped models' metrics re-made "
                   f"{rule.text}" if diffs else "no shipped metrics to compare yet")
        print(f"sysa study report: {checked}; reports in {out / 'index.html'}", file=sys.stderr)
        return 1 if bad or status else 0
    elif args.action == "export":
        seeds = parse_seeds(args.seeds) if args.seeds is not None else shipped.shipped_seeds(src)["control" if args.control else "main"]
        written = shipped.export(src, "control" if args.control else "main", seeds, _out(args.out, Path(".")))
        print("\n".join(map(str, written)))
    else:
        problems = shipped.check_sums(src)
        have = shipped.shipped_seeds(src)
        for line in problems:
            print(line)
        print(f"sysa study check: {src}: main seeds {parse_text(have['main'])}, control seeds "
              f"{parse_text(have['control'])}; " + (f"{len(problems)} problem(s)" if problems else "every sha256 holds"),
              file=sys.stderr)
        return 1 if problems else 0
    return 0


def parse_text(seeds: list[int]) -> str:
    """Seeds as the shortest text parse_seeds reads back: [1, 2, 3, 5] -> '1-3,5'."""
    parts, run = [], []
    for s in sorted(seeds):
        if run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [s]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts) or "none"


def cmd_reproduce(args) -> int:
    from . import original
    from .pipeline import reproduce

    names = [n.strip() for n in args.files.split(",")] if args.files else list(original.source()["files"])
    reproduce.run(names, args.base_url, Path(args.cache) if args.cache else None, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sysa", description="Train and analyse System A rate RNNs.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    e = sub.add_parser("evaluate", help="print the per-model metrics of checkpoints")
    e.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="sys_A<seed>_state.pth or sys_A<seed>.pth")
    e.add_argument("--seed", type=int, help="the model's seed (default: from the file name)")
    e.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    e.add_argument("--core-only", action="store_true",
                   help="only the original's metrics (precision, I-w cosine, participation ratios, dimensionality): "
                        "no untrained network, alignment nulls, float64 spread, dynamics or duration sweep")
    e.add_argument("--profile", default=None, help="configuration profile when no metadata lies beside the file "
                   "(default paper)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration value")
    e.add_argument("--network-dir", default=None, metavar="DIR",
                   help="keep the analysis of each network G (its fixed-point census: about a minute at paper "
                        "scale) in DIR, as network-<key>.json/.npz, and read it from there when DIR holds that of "
                        "the same G, configuration and code (a run's folder may be given: it holds its networks' "
                        "analyses)")
    e.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("train", help="train models (checkpoints, metadata and plots in OUT/seed_<s>)")
    t.add_argument("--profile", default="quick", help="paper, quick or smoke (default quick)")
    t.add_argument("--seeds", default=None, help="e.g. 1-20 (default: the configuration's seed)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration value")
    t.add_argument("--batch-seeds", action=argparse.BooleanOptionalAction, default=None,
                   help="--batch-seeds: train all seeds as one computation; --no-batch-seeds: one at a time "
                        "(default: together, up to 8 models per batch (40 on a GPU); fewer where half the available memory cannot hold them)")
    t.add_argument("--device", default="auto", help="auto (SYSA_DEVICE when set, else a CUDA GPU when there is one, "
                   "else the CPU), cpu, cuda or cuda:N: where the training steps run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("run", help="train and analyse seeds with the notebooks; HTML reports and index.html")
    r.add_argument("--profile", default="quick", help="paper, quick (default) or smoke")
    r.add_argument("--seeds", default=None, help="e.g. 1-20 or 1,3,5 (default: the profile's seeds)")
    r.add_argument("--out", default=None, help="output folder (default data/runs/<profile>)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration value")
    r.add_argument("--force", action="store_true", help="redo seeds that are already complete")
    r.add_argument("--batch-seeds", action=argparse.BooleanOptionalAction, default=None,
                   help="--batch-seeds: train all models (both ensembles) as one computation; --no-batch-seeds: "
                        "one at a time (default: together, up to 8 models per batch (40 on a GPU), fewer where half the available memory "
                        "cannot hold them; "
                        "with --workers or --scheduler each seed trains alone)")
    r.add_argument("--device", default="auto", help="auto (SYSA_DEVICE when set, else a CUDA GPU when there is one, "
                   "else the CPU), cpu, cuda or cuda:N: where this process's training steps run (not with --workers "
                   "or --scheduler: those train on their own auto device)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--html-code", action="store_true",
                   help="show the notebooks' code cells in the HTML reports it writes (default: prose and outputs "
                        "only; the executed .ipynb beside each report holds the code)")
    r.add_argument("--control", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the control ensemble with independent initialisation in OUT/control "
                        "(default: on for quick and paper, off for smoke)")
    r.add_argument("--workers", type=int, default=1, help="seeds run in parallel on this machine (default 1)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the seeds on the Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786); the output "
                        "folder must be shared with its workers")
    r.add_argument("--threads", type=int, default=None,
                   help="torch threads per seed (default: all cores; cores/workers with --workers; 1 per Dask task). "
                        "Results are bit-identical for the same thread count and CPU")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check", help="verify a run folder: list what is incomplete or corrupt (exit 0 only if "
                                     "everything verifies)")
    c.add_argument("folder", metavar="FOLDER", help="the run folder (sysa run's or sysa train's --out)")
    c.set_defaults(func=cmd_check)
    st = sub.add_parser("study", help="the shipped paper study (data/paper): pack a paper run into it, unpack it "
                                      "into a run folder, export the original's files, check its sha256")
    st.add_argument("action", choices=["pack", "unpack", "report", "export", "check"],
                    help="pack RUN: add a paper run's finished models; unpack [--out DIR]: a run folder holding "
                         "them (then `sysa run --profile paper --out DIR` analyses them without training); "
                         "report [--out DIR]: unpack, analyse and re-make every report without training, and "
                         "check the metrics against the shipped ones; "
                         "export [--seeds S] [--control] [--out DIR]: sys_A<s>_state.pth and sys_A<s>.pth; "
                         "check: every shipped file against SHA256SUMS")
    st.add_argument("run", nargs="?", default=None, help="pack: the paper run folder")
    st.add_argument("--shipped", default=None, help="the shipped study's folder (default data/paper)")
    st.add_argument("--out", default=None, help="unpack, report: the run folder (default data/runs/paper-study); "
                                                "export: where the files go (default the current folder)")
    st.add_argument("--seeds", default=None, help="export: which seeds (default every shipped one)")
    st.add_argument("--control", action="store_true", help="export: the control ensemble's models")
    st.add_argument("--quiet", action="store_true", help="report: no progress bars")
    st.set_defaults(func=cmd_study)
    rp = sub.add_parser("reproduce", help="fetch the original's published checkpoints (pinned commit, sha256 "
                                          "checked, cached) and print sysa's evaluation beside the published values")
    rp.add_argument("--files", default=None, help="which files, e.g. sys_A1_state.pth,sys_A5.pth (default all four)")
    rp.add_argument("--base-url", default=None, help="fetch from this URL (a mirror of the repository's paths) "
                                                     "instead of the pinned commit's raw files")
    rp.add_argument("--cache", default=None, help="where fetched files are kept (default $SYSA_CACHE or the "
                                                  "user's cache folder)")
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.set_defaults(func=cmd_reproduce)
    return p


def main(argv=None) -> int:
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    if main_thread:  # past a file-size limit a write fails (EFBIG, one line below) instead of killing
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        print(f"sysa: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("sysa: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("sysa: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except forked.ChildDied as exc:
        print(f"sysa: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("sysa: error: this machine ran out of memory; finished seeds are kept; use a smaller "
              "configuration (--set) or a machine with more memory", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            where = f" while writing {exc.filename}" if exc.filename else ""
            what = "a file grew past this process's file-size limit" if exc.errno == errno.EFBIG else "the disk is full"
            print(f"sysa: error: {what}{where}; finished seeds are kept, free some space (or raise the limit) "
                  f"and run the command again to continue", file=sys.stderr)
            return 2
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
