"""Exported models on the Hugging Face Hub: push an export directory, and load one by its repo id.

    python -m inference.hub push EXPORT_DIR ORG/NAME [--revision REV] [--private] [--commit-message MSG]

A model argument that is no existing local path and reads ``org/name`` or ``org/name@revision`` is a Hub
model: ``resolve_model`` downloads only the files an export holds (``EXPORT_FILES``) with
``huggingface_hub.snapshot_download`` (which honours ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and ``HF_TOKEN``)
and returns the snapshot directory and the commit it pinned; the directory is then checked and loaded as any
local export (``inference.tagger.checked_export``: no code, no pickle). Every Hub failure is one
``BionerError`` naming the id and the fix.

``push`` checks the export first (``checked_export``, a ``README.md`` model card, no pickle file anywhere in
the directory) and uploads the allow-listed files only, in one commit.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errors import BionerError, report_user_error

CARD = "README.md"
# what export.py writes (weights, metadata, the fast tokenizer and its config, the card), plus the tokenizer
# files transformers may add beside them; nothing else is uploaded or downloaded
EXPORT_FILES = (
    "bioner_model.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    CARD,
)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".npy")
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^(?P<repo>{_PART}/{_PART})(?:@(?P<revision>[A-Za-z0-9._/-]+))?$")
HUB_FIX = "set HF_TOKEN (or run `hf auth login`) for a private model, and check the name"


@dataclass(frozen=True)
class HubModel:
    """A model loaded by Hub id: its repo, the revision asked for (None: main), the commit it resolved to."""

    repo_id: str
    requested: str | None
    commit: str

    @property
    def pinned(self) -> str:
        return f"{self.repo_id}@{self.commit}"


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` when ``text`` reads ``org/name`` or ``org/name@revision``, else None; a
    name ending like a checkpoint (``.ckpt``) is taken for a missing file, not a repo."""
    found = _HUB_ID.match(str(text))
    if not found or "--" in found["repo"] or ".." in found["repo"] or found["repo"].endswith(PICKLE_SUFFIXES):
        return None
    return found["repo"], found["revision"]


def is_hub_id(model: str | Path) -> bool:
    """Whether ``model`` is a Hub id to resolve: no existing local path, and ``parse_hub_id`` reads it."""
    return not isinstance(model, Path) and not Path(model).exists() and parse_hub_id(model) is not None


def resolve_model(model: str | Path) -> tuple[Path, HubModel | None]:
    """The local path of ``model``: itself, or for a Hub id the snapshot of its export files (module doc)."""
    if not is_hub_id(model):
        return Path(model), None
    repo_id, revision = parse_hub_id(str(model))  # type: ignore[misc]
    directory = Path(_download(str(model), repo_id, revision))
    return directory, HubModel(repo_id, revision, directory.name)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _download(name: str, repo_id: str, revision: str | None) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{name}: not a local path; as a Hub model"
    try:
        return snapshot_download(repo_id, revision=revision, allow_patterns=list(EXPORT_FILES))
    except RevisionNotFoundError:
        raise BionerError(
            f"{where}, {repo_id} has no revision {revision!r}: check the branch, tag or commit"
        ) from None
    except RepositoryNotFoundError:
        raise BionerError(
            f"{where}, no repository {repo_id} can be read (missing, private or gated): {HUB_FIX}"
        ) from None
    except LocalEntryNotFoundError:
        if _offline():
            fix = "run once online, or unset HF_HUB_OFFLINE"
            raise BionerError(
                f"{where}, it is not in the Hub cache and HF_HUB_OFFLINE is set: {fix}"
            ) from None
        fix = "check the network, or run once online to fill the cache"
        raise BionerError(f"{where}, the Hub cannot be reached and it is not in the cache: {fix}") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "?")
        raise BionerError(f"{where}, the Hub answered HTTP {status}: {HUB_FIX}") from None
    except (OSError, ValueError) as err:
        raise BionerError(f"{where}: {type(err).__name__}: {' '.join(str(err).split())[:200]}") from None


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
    checked_export(export_dir)
    if not (export_dir / CARD).is_file():
        raise BionerError(
            f"{export_dir}: no {CARD} model card; export a run's checkpoint (RUN/checkpoints/best.ckpt: "
            "the run's card is copied) or write one"
        )
    _check_card(export_dir / CARD)
    names = sorted(p.name for p in export_dir.iterdir())
    return [n for n in names if n in EXPORT_FILES], [n for n in names if n not in EXPORT_FILES]


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
) -> tuple[str, list[str], list[str]]:
    """Upload the export's allow-listed files to ``repo_id`` (created when missing) in one commit on
    ``revision`` (a branch, created from main when missing); the commit URL, the files sent and those left
    out. ``api``: an ``HfApi`` (tests pass a stand-in)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    export_dir = Path(export_dir)
    if parse_hub_id(repo_id) is None or "@" in repo_id:
        raise BionerError(f"{repo_id}: not a Hub repo id (ORG/NAME; the revision goes in --revision)")
    sent, left_out = files_to_push(export_dir)
    api = api or HfApi()
    message = commit_message or f"Upload {export_dir.name} with bioner-mtl"
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
    args = parser.parse_args(argv)
    try:
        url, sent, left_out = push(
            args.export_dir,
            args.repo_id,
            revision=args.revision,
            private=args.private,
            commit_message=args.commit_message,
        )
    except BionerError as err:
        return report_user_error(err)
    print(f"pushed {len(sent)} files to {args.repo_id} ({args.revision or 'main'}): {', '.join(sent)}")
    if left_out:
        print(f"left out (not an export's file): {', '.join(left_out)}")
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
