"""Crafted, hostile or careless inputs for every loader and entry point (issue 29, item 6).

Each ``Case`` builds its input inside a temporary directory and returns the command line of its entry point
(``predict``, ``evaluate``, ``export``, ``train``) or, for ``load`` (``inference.load``), the path to load.
Every case must be refused before any model is trained or any encoder is fetched: exit 2 (``load``: a
``BionerError``), one ``error:`` line, no traceback, and no ``MARKER`` file in the temporary directory (the
payloads of the hostile cases create it when they run).

``Models`` are the good artifacts the cases start from, built once: a tiny encoder directory, the bundled
fixture checkpoint pointed at it, and its export.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_CHECKPOINT = ROOT / "tests" / "fixtures" / "checkpoint_0b39895_baseline.ckpt"
MARKER = "MARKER"  # created in the case's directory by any payload that runs
KERNEL = "kernels-community/flash-attn"
EVIL_MODULE = "from pathlib import Path\n\nPath({marker!r}).touch()\n\n\nclass EvilTokenizer:\n    pass\n"
ENTRY_POINTS = ("predict", "evaluate", "export", "train", "load")


@dataclass(frozen=True)
class Models:
    encoder: Path  # a tiny BERT directory with its tokenizer
    checkpoint: Path  # the fixture checkpoint, its encoder.name this encoder
    export: Path  # export.py's directory of that checkpoint
    contents: dict  # the checkpoint's contents


@dataclass(frozen=True)
class Case:
    name: str
    entry: str  # one of ENTRY_POINTS
    build: Callable[[Path, Models], Any]  # (tmp dir, models) -> argv, or the path for ``load``
    fifo: str | None = None  # a FIFO the case creates (relative to tmp): the test feeds it a writer

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.name}"


def make_models(root: Path) -> Models:
    """The good artifacts under ``root``: a tiny encoder of the fixture checkpoint's shape, the checkpoint
    pointed at it, and its export (``export.py``)."""
    from train_runner import tiny_encoder_dir

    import export

    encoder = tiny_encoder_dir(root / "tiny", hidden=16, layers=1)  # the fixture checkpoint's encoder
    contents = torch.load(FIXTURE_CHECKPOINT, map_location="cpu", weights_only=True)
    contents["hyper_parameters"]["cfg"]["encoder"]["name"] = str(encoder)
    checkpoint = root / "good.ckpt"
    torch.save(contents, checkpoint)
    assert export.main([str(checkpoint), str(root / "export")]) == 0
    return Models(encoder=encoder, checkpoint=checkpoint, export=root / "export", contents=contents)


def set_key(contents: dict, keys: tuple[str, ...], value: Any = None, *, drop: bool = False) -> None:
    """Set (or with ``drop`` delete) the nested key ``keys`` of ``contents`` in place."""
    section = contents
    for key in keys[:-1]:
        section = section[key]
    if drop:
        del section[keys[-1]]
    else:
        section[keys[-1]] = value


class _System:
    """Pickled as ``os.system(command)``: unpickling it runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def add_json(path: Path, **keys) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **keys}))


def plant(directory: Path, marker: Path, *, config: bool) -> Path:
    """``evil.py`` (creates ``marker`` when imported) in ``directory``, and ``auto_map`` entries naming it."""
    (directory / "evil.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    add_json(
        directory / "tokenizer_config.json",
        tokenizer_class="EvilTokenizer",
        auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]},
    )
    if config:
        add_json(directory / "config.json", auto_map={"AutoConfig": "evil.C", "AutoModel": "evil.M"})
    return directory


# --- checkpoint files ----------------------------------------------------------------------------------
def _bytes(content: bytes) -> Callable[[Path, Models], Path]:
    def build(tmp: Path, models: Models) -> Path:
        path = tmp / "model.ckpt"
        path.write_bytes(content)
        return path

    return build


def _truncated(tmp: Path, models: Models) -> Path:
    path = tmp / "model.ckpt"
    path.write_bytes(models.checkpoint.read_bytes()[: models.checkpoint.stat().st_size // 2])
    return path


def _zip_without_data_pkl(tmp: Path, models: Models) -> Path:
    path = tmp / "model.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/data/0", b"\x00" * 16)
    return path


def _torch_saved(value_of: Callable[[Path, Models], Any]) -> Callable[[Path, Models], Path]:
    def build(tmp: Path, models: Models) -> Path:
        path = tmp / "model.ckpt"
        torch.save(value_of(tmp, models), path)
        return path

    return build


def _raw_pickle(tmp: Path, models: Models) -> Path:
    path = tmp / "model.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": _System(f"touch {tmp / MARKER}")}))
    return path


def _changed(change: Callable[[dict, Path, Models], None]) -> Callable[[Path, Models], Path]:
    """The good checkpoint with ``change(contents, tmp, models)`` applied."""

    def value_of(tmp: Path, models: Models) -> dict:
        contents = copy.deepcopy(models.contents)
        change(contents, tmp, models)
        return contents

    return _torch_saved(value_of)


def _set(*keys: str, value: Any = None, drop: bool = False) -> Callable[[dict, Path, Models], None]:
    def change(contents: dict, tmp: Path, models: Models) -> None:
        set_key(contents, keys, value, drop=drop)

    return change


def _encoder_config(**keys: Any) -> Callable[[dict, Path, Models], None]:
    def change(contents: dict, tmp: Path, models: Models) -> None:
        from tiny_models import tiny_bert_config

        contents["hyper_parameters"]["encoder_config"] = {
            **tiny_bert_config(hidden=16, layers=1).to_dict(),
            **keys,
        }

    return change


def _evil_encoder_name(contents: dict, tmp: Path, models: Models) -> None:
    evil = shutil.copytree(models.encoder, tmp / "evil_encoder")
    plant(evil, tmp / MARKER, config=True)
    contents["hyper_parameters"]["cfg"]["encoder"]["name"] = str(evil)


def _fifo_checkpoint(tmp: Path, models: Models) -> Path:
    path = tmp / "model.ckpt"
    os.mkfifo(path)
    return path


HP = "hyper_parameters"
CHECKPOINTS: dict[str, tuple[Callable[[Path, Models], Path], str | None]] = {  # name: (build, FIFO)
    "an empty checkpoint": (_bytes(b""), None),
    "a checkpoint that is not a zip": (_bytes(b"not a zip at all\n" * 8), None),
    "a zip end record only": (_bytes(b"PK\x05\x06" + b"\x00" * 18 + b"x" * 100), None),
    "a truncated checkpoint": (_truncated, None),
    "a zip without data.pkl": (_zip_without_data_pkl, None),
    "a torch.save of os.system": (
        _torch_saved(lambda tmp, m: {"state_dict": _System(f"touch {tmp / MARKER}")}),
        None,
    ),
    "a raw pickle of os.system": (_raw_pickle, None),
    "a checkpoint that is a list": (_torch_saved(lambda tmp, m: [1, 2, 3]), None),
    "no hyper_parameters": (_changed(_set(HP, drop=True)), None),
    "hyper_parameters a list": (_changed(_set(HP, value=[1])), None),
    "hyper_parameters a string": (_changed(_set(HP, value="x")), None),
    "hyper_parameters None": (_changed(_set(HP, value=None)), None),
    "state_dict a list": (_changed(_set("state_dict", value=[1])), None),
    "no state_dict": (_changed(_set("state_dict", drop=True)), None),
    "cfg without model": (_changed(_set(HP, "cfg", "model", drop=True)), None),
    "cfg without encoder": (_changed(_set(HP, "cfg", "encoder", drop=True)), None),
    "cfg a string": (_changed(_set(HP, "cfg", value="model: baseline")), None),
    "model lr=-1": (_changed(_set(HP, "cfg", "model", "lr", value=-1)), None),
    "an unknown model name": (_changed(_set(HP, "cfg", "model", "name", value="nope")), None),
    "an extra model key": (_changed(_set(HP, "cfg", "model", "bogus", value=1)), None),
    "a model integer over the limit": (_changed(_set(HP, "cfg", "model", "dropout", value=10**9)), None),
    "a trainer section that is a list": (_changed(_set(HP, "cfg", "trainer", value=[])), None),
    "10^6 types": (_changed(_set(HP, "label_space", value={"C": [f"T{i}" for i in range(10**6)]})), None),
    "label_space a list": (_changed(_set(HP, "label_space", value=["x"])), None),
    "a 100,000-wide encoder": (_changed(_encoder_config(hidden_size=100_000)), None),
    "a million encoder layers": (_changed(_encoder_config(num_hidden_layers=10**6)), None),
    "no attention heads": (_changed(_encoder_config(num_attention_heads=0)), None),
    "BERT-large sizes on tiny weights": (
        _changed(
            _encoder_config(
                hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16
            )
        ),
        None,
    ),
    "encoder_config with auto_map": (_changed(_encoder_config(auto_map={"AutoModel": "evil.M"})), None),
    "encoder_config with a hub attention kernel": (
        _changed(_encoder_config(attn_implementation=KERNEL)),
        None,
    ),
    "encoder.name a directory with auto_map and evil.py": (_changed(_evil_encoder_name), None),
    "encoder.name /etc": (_changed(_set(HP, "cfg", "encoder", "name", value="/etc")), None),
    "encoder.name ../..": (_changed(_set(HP, "cfg", "encoder", "name", value="../..")), None),
    "a FIFO as the checkpoint": (_fifo_checkpoint, "model.ckpt"),
    "no such checkpoint": (lambda tmp, m: tmp / "missing.ckpt", None),
}
# what cannot be refused before the model is needed: the encoder is loaded from its name by predict/load
# only; train.py resume= reads hyper_parameters only (the model is built from the run's config)
CONTENT_ONLY = {
    "cfg without model",
    "cfg without encoder",
    "cfg a string",
    "model lr=-1",
    "an unknown model name",
    "an extra model key",
    "a model integer over the limit",
    "a trainer section that is a list",
    "10^6 types",
    "label_space a list",
    "a 100,000-wide encoder",
    "a million encoder layers",
    "no attention heads",
    "BERT-large sizes on tiny weights",
    "encoder_config with auto_map",
    "encoder_config with a hub attention kernel",
    "encoder.name a directory with auto_map and evil.py",
    "encoder.name /etc",
    "encoder.name ../..",
    "no state_dict",
    "state_dict a list",
}


# --- export directories --------------------------------------------------------------------------------
def _export(change: Callable[[Path, Models], None]) -> Callable[[Path, Models], Path]:
    def build(tmp: Path, models: Models) -> Path:
        directory = shutil.copytree(models.export, tmp / "export")
        change(directory, models)
        return directory

    return build


def _meta(change: Callable[[dict], None]) -> Callable[[Path, Models], None]:
    def edit(directory: Path, models: Models) -> None:
        meta = json.loads((directory / "bioner_model.json").read_text())
        change(meta)
        (directory / "bioner_model.json").write_text(json.dumps(meta))

    return edit


def _write(name: str, content: bytes | str) -> Callable[[Path, Models], None]:
    def edit(directory: Path, models: Models) -> None:
        path = directory / name
        path.unlink(missing_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return edit


def _remove(name: str) -> Callable[[Path, Models], None]:
    return lambda directory, models: (directory / name).unlink()


def _replace_with_fifo(name: str) -> Callable[[Path, Models], None]:
    def edit(directory: Path, models: Models) -> None:
        (directory / name).unlink()
        os.mkfifo(directory / name)

    return edit


def _cut_weights(directory: Path, models: Models) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])


def _lying_header(directory: Path, models: Models) -> None:
    """A safetensors header whose every tensor claims 10^9 elements over the few bytes that follow."""
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    for key, entry in header.items():
        if key != "__metadata__":
            entry["shape"] = [10**9]
            entry["data_offsets"] = [0, 4 * 10**9]
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


def _tokenizer_auto_map(directory: Path, models: Models) -> None:
    plant(directory, directory.parent / MARKER, config=False)


def _weights_a_directory(directory: Path, models: Models) -> None:
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors").mkdir()


def _meta_symlink_to_dev_zero(directory: Path, models: Models) -> None:
    (directory / "bioner_model.json").unlink()
    (directory / "bioner_model.json").symlink_to("/dev/zero")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


EXPORTS: dict[str, tuple[Callable[[Path, Models], None], str | None]] = {  # name: (change, FIFO)
    "no bioner_model.json": (_remove("bioner_model.json"), None),
    "bioner_model.json not JSON": (_write("bioner_model.json", "{not json"), None),
    "bioner_model.json a list": (_write("bioner_model.json", "[1, 2]"), None),
    "bioner_model.json not UTF-8": (_write("bioner_model.json", b'{"cfg": "\xff"}'), None),
    "bioner_model.json over 16 MB": (_write("bioner_model.json", '{"x": "' + "x" * (17 << 20) + '"}'), None),
    "bioner_model.json nested 100,000 deep": (_write("bioner_model.json", _deep(100_000)), None),
    "bioner_model.json a link to /dev/zero": (_meta_symlink_to_dev_zero, None),
    "bioner_model.json a FIFO": (_replace_with_fifo("bioner_model.json"), "export/bioner_model.json"),
    "10^6 types": (
        _meta(lambda m: m.__setitem__("label_space", {"C": [f"T{i}" for i in range(10**6)]})),
        None,
    ),
    "label_space a list": (_meta(lambda m: m.__setitem__("label_space", ["C"])), None),
    "a 100,000-wide encoder": (_meta(lambda m: m["encoder_config"].update(hidden_size=100_000)), None),
    "no attention heads": (_meta(lambda m: m["encoder_config"].update(num_attention_heads=0)), None),
    "a vocabulary size that is a string": (_meta(lambda m: m["encoder_config"].update(vocab_size="x")), None),
    "no encoder_config": (_meta(lambda m: m.__setitem__("encoder_config", None)), None),
    "encoder_config with auto_map": (
        _meta(lambda m: m["encoder_config"].update(auto_map={"AutoModel": "evil.M"})),
        None,
    ),
    "encoder_config with a hub attention kernel": (
        _meta(lambda m: m["encoder_config"].update(attn_implementation=KERNEL)),
        None,
    ),
    "an unknown model key": (_meta(lambda m: m["cfg"]["model"].update(extra=1)), None),
    "no encoder section": (_meta(lambda m: m["cfg"].pop("encoder")), None),
    "no model.safetensors": (_remove("model.safetensors"), None),
    "model.safetensors truncated": (_cut_weights, None),
    "model.safetensors garbage": (_write("model.safetensors", b"\x07garbage" * 64), None),
    "model.safetensors empty": (_write("model.safetensors", b""), None),
    "a 1 TB safetensors header": (_write("model.safetensors", (2**40).to_bytes(8, "little") + b"{}"), None),
    "a safetensors header lying about shapes": (_lying_header, None),
    "model.safetensors a directory": (_weights_a_directory, None),
    "model.safetensors a FIFO": (_replace_with_fifo("model.safetensors"), "export/model.safetensors"),
    "tokenizer_config.json with auto_map and evil.py": (_tokenizer_auto_map, None),
    "tokenizer.json malformed": (_write("tokenizer.json", "{not json"), None),
    "tokenizer.json JSON but no tokenizer": (_write("tokenizer.json", '{"model": {"type": "Nope"}}'), None),
    "tokenizer.json nested 100,000 deep": (_write("tokenizer.json", _deep(100_000)), None),
    "tokenizer.json removed": (_remove("tokenizer.json"), None),
    "tokenizer_config.json a list": (_write("tokenizer_config.json", "[1, 2]"), None),
}


# --- documents for predict -----------------------------------------------------------------------------
def _bioc_xml(body: str, doctype: str = "") -> str:
    document = f"<document><id>7</id><passage><offset>0</offset>{body}</passage></document>"
    return f"{doctype}<collection>{document}</collection>"


def _pubmed_article(pmid: str, title: str = "Aspirin.") -> str:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}</ArticleTitle>"
        "<Abstract><AbstractText>Aspirin helps.</AbstractText></Abstract></Article></MedlineCitation>"
        "</PubmedArticle>\n"
    )


def _pubmed_xml(articles: str, doctype: str = "") -> str:
    return f"{doctype}<PubmedArticleSet>\n{articles}</PubmedArticleSet>\n"


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


DOCUMENTS: dict[str, tuple[str, bytes | str, list[str]]] = {  # name: (file name, content, extra args)
    "text not UTF-8": ("in.txt", b"aspirin \xff\xfe induced\n", []),
    "JSONL malformed": ("in.jsonl", '{"id": "a", "text": \n', []),
    "JSONL nested 100,000 deep": ("in.jsonl", _deep(100_000), []),
    "JSONL a list per line": ("in.jsonl", "[1, 2]\n", []),
    "JSONL text a number": ("in.jsonl", '{"id": "a", "text": 5}\n', []),
    "JSONL id an object": ("in.jsonl", '{"id": {"x": 1}, "text": "a"}\n', []),
    "JSONL id a list": ("in.jsonl", '{"id": [1], "text": "a"}\n', []),
    "JSONL id true": ("in.jsonl", '{"id": true, "text": "a"}\n', []),
    "JSONL not UTF-8": ("in.jsonl", b'{"id": "a", "text": "\xff"}\n', []),
    "PubTator malformed": ("in.pubtator", "just a line\n", []),
    "PubTator title without abstract": ("in.pubtator", "1|t|Title\n\n", []),
    "PubTator bad mention offsets": (
        "in.pubtator",
        "1|t|Title\n1|a|Abstract\n1\tx\t5\tTitle\tChemical\tD1\n",
        [],
    ),
    "PubTator a 5 MB line": ("in.pubtator", "x" * 5_000_000 + "\n", []),
    "PubTator not UTF-8": ("in.pubtator", b"1|t|\xff\n1|a|b\n\n", []),
    "BioC XML external entity": (
        "in.xml",
        _bioc_xml("<text>&x;</text>", '<!DOCTYPE collection [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        [],
    ),
    "BioC XML billion laughs": (
        "in.xml",
        _bioc_xml(
            "<text>&l3;</text>",
            '<!DOCTYPE collection [<!ENTITY l0 "ha"><!ENTITY l1 "&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;">'
            '<!ENTITY l2 "&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;"><!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;">]>',
        ),
        [],
    ),
    "BioC XML entity in offset": (
        "in.xml",
        '<!DOCTYPE collection [<!ENTITY o "0">]><collection><document><id>7</id><passage>'
        "<offset>&o;</offset><text>a</text></passage></document></collection>",
        [],
    ),
    "BioC XML annotation without id": (
        "in.xml",
        _bioc_xml("<text>a</text><annotation><text>a</text></annotation>"),
        [],
    ),
    "BioC XML document without id": (
        "in.xml",
        "<collection><document><passage><offset>0</offset><text>a</text></passage></document></collection>",
        [],
    ),
    "BioC XML infon without key": ("in.xml", _bioc_xml("<infon>title</infon><text>a</text>"), []),
    "BioC XML non-numeric location": (
        "in.xml",
        _bioc_xml('<text>a</text><annotation id="1"><location offset="x" length="1"/></annotation>'),
        [],
    ),
    "BioC XML non-numeric passage offset": (
        "in.xml",
        "<collection><document><id>7</id><passage><offset>x</offset><text>a</text></passage></document>"
        "</collection>",
        [],
    ),
    "BioC XML nested 100,000 deep": ("in.xml", "<collection>" + "<a>" * 100_000, []),
    "BioC XML not well-formed": ("in.xml", "<collection><document>", []),
    "BioC JSON documents an integer": ("in.json", '{"documents": 5}', []),
    "BioC JSON passages an integer": ("in.json", '{"documents": [{"id": "9", "passages": 5}]}', []),
    "BioC JSON locations an integer": (
        "in.json",
        '{"documents": [{"id": "9", "passages": [{"offset": 0, "annotations": [{"id": "a", "locations": 3}]'
        "}]}]}",
        [],
    ),
    "BioC JSON offset a string": (
        "in.json",
        '{"documents": [{"id": "9", "passages": [{"offset": "0", "text": "a"}]}]}',
        [],
    ),
    "BioC JSON a list": ("in.json", "[1, 2, 3]", []),
    "BioC JSON nested 100,000 deep": ("in.json", '{"documents": ' + _deep(100_000) + "}", []),
    "BioC JSON not UTF-8": ("in.json", b'{"documents": [{"id": "\xff"}]}', []),
    "inputs in several formats": ("in.txt", "aspirin .", ["in.jsonl"]),
    "PubMed truncated gzip": ("pubmed_in.xml.gz", _gz(_pubmed_xml(_pubmed_article("7") * 300))[:-10], []),
    "PubMed gzip garbage": ("pubmed_in.xml.gz", b"\x1f\x8b" + bytes(range(200)), []),
    "PubMed not XML": ("pubmed_in.xml.gz", _gz("just some text\n"), []),
    "PubMed internal entity": (
        "pubmed_in.xml.gz",
        _gz(_pubmed_xml(_pubmed_article("7", "a &x; b"), '<!DOCTYPE PubmedArticleSet [<!ENTITY x "boom">]>')),
        [],
    ),
    "PubMed external entity": (
        "pubmed_in.xml.gz",
        _gz(
            _pubmed_xml(
                _pubmed_article("7", "&x;"),
                '<!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
            )
        ),
        [],
    ),
    "PubMed no PMID": ("pubmed_in.xml.gz", _gz(_pubmed_xml(_pubmed_article(""))), []),
    "PubMed BioC inside": ("pubmed_in.xml.gz", _gz(_bioc_xml("<text>a</text>")), []),
}


def _document_case(name: str) -> Callable[[Path, Models], list[str]]:
    file_name, content, extra = DOCUMENTS[name]

    def build(tmp: Path, models: Models) -> list[str]:
        path = tmp / file_name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        for other in extra:
            (tmp / other).write_text('{"id": "a", "text": "aspirin ."}\n')
        fmt = {".xml": ["--in-format", "bioc"], ".json": ["--in-format", "bioc"]}.get(path.suffix, [])
        return [str(models.export), str(path), *[str(tmp / e) for e in extra], *fmt, "--device", "cpu"]

    return build


def _fifo_document(tmp: Path, models: Models) -> list[str]:
    os.mkfifo(tmp / "doc.txt")
    return [str(models.export), str(tmp / "doc.txt"), "--device", "cpu"]


def _output_a_directory(tmp: Path, models: Models) -> list[str]:
    (tmp / "doc.txt").write_text("aspirin .")
    (tmp / "out").mkdir()
    return [str(models.export), str(tmp / "doc.txt"), "-o", str(tmp / "out"), "--device", "cpu"]


def _doc(tmp: Path) -> Path:
    (tmp / "doc.txt").write_text("aspirin induced cancer .")
    return tmp / "doc.txt"


# --- train.py: configs and run directories -------------------------------------------------------------
def _train(*args: str, needs_encoder: bool = False) -> Callable[[Path, Models], list[str]]:
    """train.py ARGS, quiet, its data cache in tmp (``{tmp}`` in an argument is the case's directory)."""

    def build(tmp: Path, models: Models) -> list[str]:
        base = [f"data.cache_dir={tmp / 'cache'}", "logger=none", "callbacks.rich_progress=false"]
        if needs_encoder:
            base += [f"encoder.name={models.encoder}", "data.corpora=[BC5CDR]", "data.val_subsample=8"]
        return [*base, *(a.format(tmp=tmp) for a in args)]

    return build


def _run_dir(files: dict[str, str | bytes], *args: str, fifo: str | None = None, **kw: bool):
    """A run directory ``{tmp}/run`` holding ``files`` (``{marker}`` in a text: the marker's path)."""

    def build(tmp: Path, models: Models) -> list[str]:
        run = tmp / "run"
        (run / "checkpoints").mkdir(parents=True)
        for name, content in files.items():
            path = run / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content.format(marker=tmp / MARKER))
        if fifo:
            os.mkfifo(run / fifo)
        return _train(f"run_dir={run}", *args, **kw)(tmp, models)

    return build


def _live_lock(tmp: Path, models: Models) -> list[str]:
    import socket

    from training.run_lock import LOCK_FILE

    run = tmp / "run"
    run.mkdir()
    lock = {"host": socket.gethostname(), "pid": os.getpid(), "job": None}
    (run / LOCK_FILE).write_text(json.dumps(lock))
    return _train(f"run_dir={run}", "model=baseline", needs_encoder=True)(tmp, models)


def _checkpoints_without_resume(tmp: Path, models: Models) -> list[str]:
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(models.checkpoint, run / "checkpoints" / "last.ckpt")
    return _train(f"run_dir={run}", "model=baseline", needs_encoder=True)(tmp, models)


def _deep_interpolation(tmp: Path, models: Models) -> list[str]:
    chain = [f"+x{i}=${{{{x{i + 1}}}}}" for i in range(300)]  # "+x0=${{x1}}": _train formats each argument
    return _train(*chain, "+x300=1", "seed=${{x0}}")(tmp, models)


TRAIN_CONFIGS: dict[str, Callable[[Path, Models], list[str]]] = {
    "an unknown key": _train("bogus_key=1"),
    "an unknown nested key": _train("trainer.bogus=1"),
    "a bad type": _train("seed=abc"),
    "max_steps a list": _train("trainer.max_steps=[1,2]"),
    "experiment an absolute path": _train("experiment={tmp}/evil"),
    "experiment ../x": _train("experiment=../../configs/train"),
    "trainer ../x": _train("trainer=../trainer/../../x"),
    "model nonexistent": _train("model=nonexistent"),
    "an interpolation loop": _train("+a=${{b}}", "+b=${{a}}", "seed=${{a}}"),
    "an interpolation 300 deep": _deep_interpolation,
    "trainer.precision bogus": _train("trainer.precision=bogus"),
    "trainer.accelerator bogus": _train("trainer.accelerator=tpux", needs_encoder=True),
    "an argument without =": _train("notakeyvalue"),
    "init_map bogus": _train("init_map=bogus", "init_from={tmp}/missing"),
    "init_from nonexistent": _train("init_from={tmp}/missing.ckpt"),
    "resume a missing file": _train("resume={tmp}/missing.ckpt"),
    "resume=last without run_dir": _train("resume=last"),
    "resume and start_over": _train("run_dir={tmp}/run", "resume=auto", "start_over=true"),
    "a corpus that does not exist": _train("data.corpora=[NOPE]"),
    "data.root nonexistent": _train("data.root={tmp}/nope", "data.corpora=[NCBI-disease]"),
}
RUN_DIRS: dict[str, tuple[Callable[[Path, Models], list[str]], str | None]] = {  # name: (build, FIFO)
    "config.yaml with a python tag": (
        _run_dir(
            {"config.yaml": "model: !!python/object/apply:os.system ['touch {marker}']\n"}, "resume=auto"
        ),
        None,
    ),
    "config.yaml malformed": (_run_dir({"config.yaml": "model: [name: {{unclosed\n"}, "resume=auto"), None),
    "config.yaml model.name not a name": (
        _run_dir({"config.yaml": "model:\n  name: 7\n"}, "resume=auto"),
        None,
    ),
    "config.yaml nested 10,000 deep": (_run_dir({"config.yaml": "[" * 10_000 + "\n"}, "resume=auto"), None),
    "config.yaml over 1 MB": (_run_dir({"config.yaml": "# " + "x" * (2 << 20) + "\n"}, "resume=auto"), None),
    "config.yaml a FIFO": (_run_dir({}, "resume=auto", fifo="config.yaml"), "run/config.yaml"),
    "resume=last on a garbage last.ckpt": (
        _run_dir({"checkpoints/last.ckpt": b"garbage"}, "resume=last", "model=baseline"),
        None,
    ),
    "resume=last on an os.system pickle": (
        lambda tmp, models: _run_dir(
            {"checkpoints/last.ckpt": pickle.dumps(_System(f"touch {tmp / MARKER}"))},
            "resume=last",
            "model=baseline",
        )(tmp, models),
        None,
    ),
    "checkpoints without resume=": (_checkpoints_without_resume, None),
    "a live lock": (_live_lock, None),
}


# --- all cases -----------------------------------------------------------------------------------------
def _checkpoint_argv(entry: str, name: str) -> Callable[[Path, Models], Any]:
    build_file = CHECKPOINTS[name][0]

    def build(tmp: Path, models: Models) -> Any:
        path = build_file(tmp, models)
        if entry == "predict":
            return [str(path), str(_doc(tmp)), "--device", "cpu"]
        if entry == "evaluate":
            return [str(path), "--no-wandb", "--device", "cpu", "-o", str(tmp / "eval")]
        if entry == "export":
            return [str(path), str(tmp / "exported")]
        if entry == "load":
            return path
        if entry == "train/init_from":
            return _train(f"init_from={path}")(tmp, models)
        return _train(f"resume={path}")(tmp, models)  # train/resume

    return build


def _export_argv(entry: str, name: str) -> Callable[[Path, Models], Any]:
    build_dir = _export(EXPORTS[name][0])

    def build(tmp: Path, models: Models) -> Any:
        directory = build_dir(tmp, models)
        if entry == "predict":
            return [str(directory), str(_doc(tmp)), "--device", "cpu"]
        if entry == "load":
            return directory
        return _train(f"init_from={directory}")(tmp, models)  # train

    return build


def all_cases() -> list[Case]:
    cases = []
    for name, (_, fifo) in CHECKPOINTS.items():
        for entry in ("predict", "evaluate", "export", "load", "train/init_from", "train/resume"):
            if entry == "train/resume" and name in CONTENT_ONLY:
                continue
            kind = "train" if entry.startswith("train") else entry
            label = f"{entry.removeprefix('train/')}: {name}" if kind == "train" else name
            cases.append(Case(f"checkpoint, {label}", kind, _checkpoint_argv(entry, name), fifo))
    for name, (_, fifo) in EXPORTS.items():
        for entry in ("predict", "load", "train"):
            label = f"init_from: {name}" if entry == "train" else name
            cases.append(Case(f"export, {label}", entry, _export_argv(entry, name), fifo))
    cases.append(
        Case(
            "export, evaluate on an export directory",
            "evaluate",
            lambda tmp, m: [str(m.export), "--no-wandb", "-o", str(tmp / "eval")],
        )
    )
    cases.append(
        Case(
            "export, export.py on an export directory",
            "export",
            lambda tmp, m: [str(m.export), str(tmp / "x")],
        )
    )
    for name in DOCUMENTS:
        cases.append(Case(f"document, {name}", "predict", _document_case(name)))
    cases.append(Case("document, a FIFO as the input", "predict", _fifo_document, "doc.txt"))
    cases.append(Case("document, -o a directory", "predict", _output_a_directory))
    cases.append(
        Case(
            "document, --batch-size 0",
            "predict",
            lambda tmp, m: [str(m.export), str(_doc(tmp)), "--batch-size", "0"],
        )
    )
    for name, build in TRAIN_CONFIGS.items():
        cases.append(Case(f"config, {name}", "train", build))
    for name, (build, fifo) in RUN_DIRS.items():
        cases.append(Case(f"run dir, {name}", "train", build, fifo))
    return cases
