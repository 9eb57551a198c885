"""Trace the two routes a newcomer follows through the code (issue 28; ``docs/design.md``): the setup of
one split with an empty cache, and one training step. Prints each route as the project files it enters,
in order, and the entries that break its rule (one rule for both: every entry into a file comes from the
same file, and none calls back into a file still on the stack):

- **setup** returns to no file it already left: an entry into a file entered before is a break, whether
  that file is still on the stack (a callback) or not (a second visit);
- **a training step** enters each file at most once, apart from the model's own calls into its loss
  (``losses/``, and autograd calling the ``backward`` of the model's own ``autograd.Function``).

    python scripts/trace_routes.py            # SRU-NER (the default model), BC5CDR samples, a tiny encoder
    python scripts/trace_routes.py --model baseline --json routes.json

An *entry* is a call into a function of a project file whose nearest project caller on the stack is in
another file (or there is none: Lightning or torch calling in); frames of libraries between the two are
transparent (``nn.Module.__call__``, Lightning's loops), and returns are not entries. Exit status 1 when a
route breaks its rule. ``tests/test_architecture.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ALLOWED_REPEATS = ("losses/",)  # the model's own calls into its loss (per step of the autograd loop)
LIBRARY = "(library)"


@dataclass
class Route:
    name: str
    entries: list[tuple[str, str, str, bool]] = field(default_factory=list)
    # (file, function, from file, whether the file was already on the stack: a callback)

    def files(self) -> list[str]:
        return list(dict.fromkeys(file for file, _, _, _ in self.entries))

    def breaks(self) -> list[str]:
        """A callback into a file on the stack, or a file entered from a second file."""
        out, entered_from = [], {}
        for file, function, caller, on_stack in self.entries:
            if self.name == "step" and (
                file.startswith(ALLOWED_REPEATS) or (caller == LIBRARY and function == "backward")
            ):  # the model's own loss, and autograd calling a Function's backward: the loss's gradient
                continue
            if on_stack:
                out.append(f"{caller} -> {file}:{function} calls back into a file on the stack")
            elif entered_from.setdefault(file, caller) != caller:
                out.append(f"{caller} -> {file}:{function} (entered before, from {entered_from[file]})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files()),
            "stops": len(self.entries),
            "entries": [list(e) for e in self.entries],
            "breaks": self.breaks(),
        }


def _project_file(path: str) -> str | None:
    try:
        relative = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] in (".venv", "tests", "scripts") or relative.suffix != ".py":
        return None
    return relative.as_posix()


class Tracer:
    """``sys.setprofile`` hook recording the entries into project files while ``route`` is set."""

    def __init__(self) -> None:
        self.route: Route | None = None
        self._files: dict[str, str | None] = {}
        self._seen: set[tuple[str, str, str, bool]] = set()

    def _file(self, frame: FrameType) -> str | None:
        path = frame.f_code.co_filename
        if path not in self._files:
            self._files[path] = _project_file(path)
        return self._files[path]

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or self.route is None:
            return
        callee = self._file(frame)
        if callee is None:
            return
        caller, back = None, frame.f_back
        while back is not None and caller is None:
            caller = self._file(back)
            back = back.f_back
        if caller == callee:
            return
        on_stack = False
        while back is not None and not on_stack:
            on_stack = self._file(back) == callee
            back = back.f_back
        entry = (callee, frame.f_code.co_name, caller or LIBRARY, on_stack)
        if entry not in self._seen:  # a loop calling the same function is one stop
            self._seen.add(entry)
            self.route.entries.append(entry)

    def start(self, name: str) -> Route:
        self.route, self._seen = Route(name), set()
        sys.setprofile(self)
        return self.route

    def stop(self) -> None:
        sys.setprofile(None)
        self.route = None


def trace(model: str) -> dict[str, Route]:
    import lightning.pytorch as pl
    from omegaconf import OmegaConf
    from train_runner import tiny_encoder_dir

    from configs.compose import compose
    from configs.validation import check_config
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import build_module
    from training.run_dir import resolve_run_dir
    from training.schedule import schedule_of
    from training.trainer import build_callbacks, build_trainer

    tracer = Tracer()
    routes: dict[str, Route] = {}
    with tempfile.TemporaryDirectory() as tmp:
        encoder = tiny_encoder_dir(Path(tmp) / "tiny")
        cfg = compose(
            [
                f"model={model}", f"encoder.name={encoder}", f"run_dir={tmp}/run",
                f"data.cache_dir={tmp}/cache", "data.corpora=[BC5CDR]", "data.num_workers=0",
                "data.samples_per_epoch=48", "trainer.max_steps=2",
                "data.val_subsample=8", "logger=none", "callbacks.rich_progress=false",
                "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0",
                "trainer.limit_val_batches=0",
            ]
        )  # fmt: skip
        specs = check_config(cfg)
        pl.seed_everything(cfg.seed)
        datamodule = MultiCorpusDataModule.from_config(cfg, specs=specs)
        routes["setup"] = tracer.start("setup")
        datamodule.setup("validate")  # one split (dev) of one corpus, the cache empty
        tracer.stop()

        run_dir = resolve_run_dir(cfg)
        plain = {
            **OmegaConf.to_container(cfg, resolve=True),
            "run_name": run_dir.name,
            "run_dir": str(run_dir.path),
        }
        callbacks = build_callbacks(cfg.callbacks, cfg.trainer, run_dir, with_logger=False)
        trainer = build_trainer(cfg.trainer, run_dir, callbacks, False, trust=False)
        schedule = schedule_of(datamodule, trainer, cfg.optim.total_steps)
        module = build_module(plain, datamodule.label_space, schedule=schedule)
        datamodule.batch_transform = module.target_encoder()

        class Start(pl.Callback):
            def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                if batch_idx == 1:  # the second step: the first one builds what steps reuse
                    routes["step"] = tracer.start("step")

        class Stop(pl.Callback):
            def on_train_batch_end(self, *args: Any) -> None:
                tracer.stop()

        trainer.callbacks.insert(0, Start())
        trainer.callbacks.append(Stop())
        trainer.fit(module, datamodule=datamodule)
    return routes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sru_ner")
    parser.add_argument("--json", type=Path, help="write the routes here")
    args = parser.parse_args(argv)
    routes = trace(args.model)
    for route in routes.values():
        summary = route.to_dict()
        breaks = len(summary["breaks"])
        print(f"{route.name}: {summary['files']} files, {summary['stops']} stops, {breaks} breaks")
        for file, function, caller, on_stack in route.entries:
            print(f"  {caller} -> {file}:{function}" + (" (on the stack)" if on_stack else ""))
        for problem in summary["breaks"]:
            print(f"  BREAK {problem}")
    if args.json:
        args.json.write_text(json.dumps({r.name: r.to_dict() for r in routes.values()}, indent=1))
    return 1 if any(r.breaks() for r in routes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
