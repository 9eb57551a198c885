"""Test hook, active only when ``BIONER_TEST_GRADS_DIR=<dir>`` is set (put this directory on PYTHONPATH):
``training.trainer.build_callbacks`` gets one more callback that, in every process,

- puts the model in eval mode at each training batch start (dropout off; the training forward is the
  same: teacher forcing, targets and loss do not depend on the mode) and records the batch's sentences;
- on rank 0, right before each optimiser step (after backward, the accumulation and DDP's gradient
  average, before clipping), saves every parameter's gradient for the first ``BIONER_TEST_GRAD_STEPS``
  (default 1) steps, and the learning rate of every parameter group at every step;
- on rank 0, after each training (micro-)batch, records the ``train/loss`` value it logged.

Files in ``<dir>``: ``grads_step<S>.pt`` ({name: grad}), ``lrs.pt`` ([[lr per group] per step]),
``losses.pt`` ([train/loss per batch]), ``batches_rank<R>.pt`` ([{"step", "sentences": [(corpus_id,
sentence_index, chunk)], "tagged_words"}] for the batches of the first steps).

The patch is applied when ``training.trainer`` is first imported (not here: at interpreter start the
script's directory is not on ``sys.path`` yet, and a git worktree's modules would be shadowed by the
editable install's)."""

import os

if os.environ.get("BIONER_TEST_GRADS_DIR"):
    import importlib.abc
    import importlib.util
    import sys

    _TARGET = "training.trainer"

    def _patch(module):
        from pathlib import Path

        import torch
        from lightning.pytorch.callbacks import Callback

        out = Path(os.environ["BIONER_TEST_GRADS_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        steps = int(os.environ.get("BIONER_TEST_GRAD_STEPS", "1"))

        class GradCapture(Callback):
            def __init__(self):
                self.batches, self.lrs, self.losses = [], [], []

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                pl_module.eval()
                tags = batch.get("tags")
                self.batches.append(
                    {
                        "step": trainer.global_step,
                        "sentences": list(
                            zip(
                                batch["corpus_id"].tolist(),
                                batch["sentence_index"].tolist(),
                                batch["chunk"].tolist(),
                            )
                        ),
                        "tagged_words": None if tags is None else int((tags != -100).sum()),
                    }
                )
                if trainer.global_step < steps:
                    torch.save(self.batches, out / f"batches_rank{trainer.global_rank}.pt")

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_rank == 0:
                    self.losses.append(float(trainer.callback_metrics["train/loss"]))
                    torch.save(self.losses, out / "losses.pt")

            def on_before_optimizer_step(self, trainer, pl_module, optimizer):
                if trainer.global_rank != 0:
                    return
                step = trainer.global_step
                self.lrs.append([float(g["lr"]) for g in optimizer.param_groups])
                torch.save(self.lrs, out / "lrs.pt")
                if step < steps:
                    grads = {
                        n: p.grad.detach().clone()
                        for n, p in pl_module.named_parameters()
                        if p.grad is not None
                    }
                    torch.save(grads, out / f"grads_step{step}.pt")

        build_callbacks = module.build_callbacks

        def build_callbacks_with_capture(*args, **kwargs):
            return [*build_callbacks(*args, **kwargs), GradCapture()]

        module.build_callbacks = build_callbacks_with_capture

    class _PatchOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != _TARGET:
                return None
            sys.meta_path.remove(self)  # once; and find_spec below must not come back here
            spec = importlib.util.find_spec(name)
            exec_module = spec.loader.exec_module

            def exec_then_patch(module):
                exec_module(module)
                _patch(module)

            spec.loader.exec_module = exec_then_patch
            return spec

    sys.meta_path.insert(0, _PatchOnImport())
