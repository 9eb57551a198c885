"""Exported models on the Hugging Face Hub: push an export directory.

    python -m inference.hub push EXPORT_DIR ORG/NAME [--revision REV] [--private] [--commit-message MSG]
                                 [--dry-run]

Loading by id (``org/name[@revision]`` wherever a model is named): ``inference.hub_ids``.

``push`` checks the export first (``checked_export``, a ``README.md`` model card, no pickle file anywhere in
the directory) and uploads the allow-listed files only, in one commit. EXPORT_DIR may also be what
``export.py --format transformers`` writes (``config.json`` and ``model.safetensors``, checked as any model
directory: no code, no pickle). ``--dry-run`` checks and prints what would be sent, and contacts nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from errors import BionerError, report_user_error
from inference.hub_ids import CARD, EXPORT_FILES, PICKLE_SUFFIXES, parse_hub_id

# what export.py --format transformers writes (a standard token-classification directory)
TRANSFORMERS_FILES = ("config.json", "vocab.txt", *(f for f in EXPORT_FILES if f != "bioner_model.json"))


# --- push -----------------------------------------------------------------------------------------------
def files_to_push(export_dir: Path) -> tuple[list[str], list[str]]:
    """The allow-listed files of a checked export directory to upload, and the other entries left out; a
    pickle-like file anywhere in it, a missing model card or a failed export check is a ``BionerError``."""
    from inference.tagger import checked_export

    if not export_dir.is_dir():
        raise BionerError(f"{export_dir}: not a directory (push takes a directory written by export.py)")
    pickles = sorted(
        str(p.relative_to(export_dir)) for p in export_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES
    )
    if pickles:
        raise BionerError(
            f"{export_dir}: refused: {', '.join(pickles)} may hold a pickle; an export holds safetensors "
            "and JSON only: remove it or export again"
        )
    allowed = EXPORT_FILES
    if (export_dir / "config.json").is_file() and not (export_dir / "bioner_model.json").is_file():
        _check_transformers_dir(export_dir)
        allowed = TRANSFORMERS_FILES
    else:
        checked_export(export_dir)
    if not (export_dir / CARD).is_file():
        raise BionerError(
            f"{export_dir}: no {CARD} model card; export a run's checkpoint (RUN/checkpoints/best.ckpt: "
            "the run's card is copied) or write one"
        )
    _check_card(export_dir / CARD)
    names = sorted(p.name for p in export_dir.iterdir())
    return [n for n in names if n in allowed], [n for n in names if n not in allowed]


def default_message(export_dir: Path) -> str:
    return f"Upload {export_dir.name} with bioner-mtl"


def _check_transformers_dir(export_dir: Path) -> None:
    """A token-classification directory: no code asked for, every JSON file within bounds, and its
    weights in safetensors (``untrusted.check_model_dir``)."""
    from untrusted import CheckpointError, check_model_dir

    try:
        check_model_dir(export_dir)
    except CheckpointError as err:
        raise BionerError(str(err)) from None
    if not (export_dir / "model.safetensors").is_file():
        raise BionerError(
            f"{export_dir}: no model.safetensors; export.py --format transformers writes one: export again"
        )


def _check_card(path: Path) -> None:
    from huggingface_hub import ModelCard

    try:
        ModelCard.load(path, ignore_metadata_errors=False)
    except (ValueError, OSError) as err:
        raise BionerError(
            f"{path}: not a model card the Hub reads ({' '.join(str(err).split())[:200]})"
        ) from None


def push(
    export_dir: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    api: Any = None,
    dry_run: bool = False,
) -> tuple[str, list[str], list[str]]:
    """Upload the export's allow-listed files to ``repo_id`` (created when missing) in one commit on
    ``revision`` (a branch, created from main when missing); the commit URL, the files sent and those left
    out. ``api``: an ``HfApi`` (tests pass a stand-in). ``dry_run``: check, then return the repo's URL
    without contacting the Hub."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    export_dir = Path(export_dir)
    if parse_hub_id(repo_id) is None or "@" in repo_id:
        raise BionerError(f"{repo_id}: not a Hub repo id (ORG/NAME; the revision goes in --revision)")
    sent, left_out = files_to_push(export_dir)
    if dry_run:
        return f"https://huggingface.co/{repo_id}", sent, left_out
    api = api or HfApi()
    message = commit_message or default_message(export_dir)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(export_dir / name)) for name in sent
        ]
        info = api.create_commit(repo_id, operations, commit_message=message, revision=revision)
    except LocalTokenNotFoundError:
        raise BionerError(f"push to {repo_id}: not logged in: set HF_TOKEN or run `hf auth login`") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "?")
        fix = "log in (HF_TOKEN or `hf auth login`) with a token that may write to it"
        raise BionerError(f"push to {repo_id}: the Hub answered HTTP {status}: {fix}") from None
    except (OSError, ValueError) as err:
        raise BionerError(
            f"push to {repo_id}: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
        ) from None
    return str(getattr(info, "commit_url", None) or url), sent, left_out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.hub", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    push_parser = commands.add_parser("push", help="upload an export directory to a Hub model repo")
    push_parser.add_argument("export_dir", help="a directory written by export.py")
    push_parser.add_argument("repo_id", metavar="ORG/NAME")
    push_parser.add_argument(
        "--revision", help="the branch to commit to (default: main; created when missing)"
    )
    push_parser.add_argument("--private", action="store_true", help="create the repo private")
    push_parser.add_argument("--commit-message", help="default: Upload <export dir name> with bioner-mtl")
    push_parser.add_argument(
        "--dry-run", action="store_true", help="check and list what would be sent; contact nothing"
    )
    args = parser.parse_args(argv)
    try:
        url, sent, left_out = push(
            args.export_dir,
            args.repo_id,
            revision=args.revision,
            private=args.private,
            commit_message=args.commit_message,
            dry_run=args.dry_run,
        )
    except BionerError as err:
        return report_user_error(err)
    if args.dry_run:
        message = args.commit_message or default_message(Path(args.export_dir))
        print(f"would push {len(sent)} files to {url} ({args.revision or 'main'}): {', '.join(sent)}")
        print(f"commit message: {message}")
        if left_out:
            print(f"left out (not an export's file): {', '.join(left_out)}")
        print("dry run: nothing was sent")
        return 0
    print(f"pushed {len(sent)} files to {args.repo_id} ({args.revision or 'main'}): {', '.join(sent)}")
    if left_out:
        print(f"left out (not an export's file): {', '.join(left_out)}")
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
