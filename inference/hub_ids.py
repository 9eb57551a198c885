"""Models on the Hugging Face Hub by id: ``resolve_model("org/name[@revision]")`` is the local snapshot of the
export's files (``EXPORT_FILES``), fetched with ``huggingface_hub.snapshot_download`` (which honours
``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and ``HF_TOKEN``), and the commit it pinned. A model argument is a Hub id
when it is no existing local path and reads ``org/name`` or ``org/name@revision``; the snapshot is then
checked and loaded as any local export (``inference.tagger.checked_export``: no code, no pickle). Every Hub
failure is one ``BionerError`` naming the id and the fix. Pushing: ``inference.hub``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from errors import BionerError

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
