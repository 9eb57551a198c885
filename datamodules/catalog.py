"""The corpora this project knows (``CORPORA``): their files, where to fetch them, how to verify them,
and the :class:`CorpusSpec` record that describes any corpus, registered or a user's own.

Layout under a data root: ``<root>/<Corpus>/<file>``, with the corpus directory names used in
``../shared/data`` (they are also the registry names). The IOB corpora use ``{train,dev,test}.tsv``;
the SpERT corpora keep their published JSON file names.

This module is data only. ``datamodules/corpora.py`` resolves a ``data.corpora`` entry (a name here, or
the path of a user corpus) to its spec and finds its split files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from errors import MissingCorpusError

CRICHTON = "https://raw.githubusercontent.com/cambridgeltl/MTL-Bioinformatics-2016/master/data"
SPERT = "http://lavis.cs.hs-rm.de/storage/spert/public/datasets"
CONLL2003 = "https://raw.githubusercontent.com/ZhixiuYe/HSCRF-pytorch/master/data"

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class CorpusFile:
    name: str  # file name under <root>/<Corpus>/
    url: str
    sha256: str
    convert: str | None = None  # how the downloaded file becomes `name` (see datamodules.prepare)


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    format: str  # "iob" (token<TAB>tag) or "spert" (SpERT JSON)
    splits: dict[str, CorpusFile]
    types: tuple[str, ...]  # as written in the files
    rename: dict[str, str] = field(default_factory=dict)
    licence: str = ""
    redistributable: bool = False
    extra_files: tuple[CorpusFile, ...] = ()  # fetched by `prepare` but not a default split
    relation_types: tuple[str, ...] = ()  # as written in the files (SpERT corpora)
    # cross-validation folds: fold -> its splits (``data.fold=K``); ``splits`` is fold 0
    folds: dict[int, dict[str, CorpusFile]] = field(default_factory=dict)
    directory: Path | None = None  # a user corpus: its directory (its files are not under a data root)
    scheme: str = "auto"  # tagging scheme of its IOB files (datamodules.readers.SCHEMES)

    def unified_type(self, raw_type: str) -> str:
        """The documented per-corpus rename (e.g. JNLPBA ``protein`` -> ``Gene_or_protein``)."""
        return self.rename.get(raw_type, raw_type)

    @property
    def unified_types(self) -> tuple[str, ...]:
        return tuple(sorted({self.unified_type(t) for t in self.types}))

    def all_files(self) -> tuple[CorpusFile, ...]:
        fold_files = tuple(f for k in sorted(self.folds) for f in self.folds[k].values())
        return tuple(dict.fromkeys(tuple(self.splits.values()) + fold_files + self.extra_files))

    def fold_splits(self, fold: int | None) -> dict[str, CorpusFile]:
        """The splits of cross-validation fold ``fold`` (None: the default splits)."""
        if fold is None:
            return self.splits
        if not self.folds:
            raise MissingCorpusError(
                f"corpus {self.name} has no cross-validation folds (data.fold must be null)"
            )
        if fold not in self.folds:
            raise MissingCorpusError(
                f"corpus {self.name} has folds {min(self.folds)}..{max(self.folds)}, not {fold}"
            )
        return self.folds[fold]


def _crichton(name: str, remote_dir: str, sha: dict[str, str]) -> dict[str, CorpusFile]:
    remote = {"train": "train", "dev": "devel", "test": "test"}
    return {s: CorpusFile(f"{s}.tsv", f"{CRICHTON}/{remote_dir}/{remote[s]}.tsv", sha[s]) for s in SPLITS}


# ADE: 10 cross-validation folds (train/test, no dev), sha256 of each file
_ADE_SHA = [
    ("6624ac4d015c75f551aa15a43bd05e268082d98297d18269662737f7df358365",
     "6d6a3584d3876a35854ef703f7a7059363599ad7ed3ab9c3e6e449ae8a252e9a"),
    ("811befd6d23d2aeb7cff3469d4b22d0c58fa61557b03257986ea1559042d42fe",
     "532fa740c11466c54d06dfe4e2989bd800c046cb31c409f074b7b3d49cf99b23"),
    ("c13ff04545537879e1d2fa41ed25c4e5831bbd75d2c07a4d7c0e60d2691b5b25",
     "69c4844907809f4e76516d7e9b7f8f2fa5eab2bdf27ee0dc02bdb367e673f994"),
    ("1d65b2aab0da37d3125cb0a90f6c66ad05af4ebb6f4685c4ede242cfb587cb1e",
     "07e188e39118bd9644d4bb74ad841099853a5dfbecb035e5af2dc83a7d927495"),
    ("de8cdb999563697d330d97b9ac95a5ae1c83106eb812f25b12d807c6628f28a4",
     "937eff5f8982fff83655872fcf150876145e75a381dcedfc45e2411f47146edc"),
    ("474668717b0fbcb4cf6fda984b8897b2e66f2550c9a052187c6ece012960a6cf",
     "d01d706574d4921304d3b53a0b013fbe41d2f97439245cf768c503df1e70a9f3"),
    ("c3e41dea7c11c34da7f32be45ced3a162fff30abeb0939698937fe7a83446dca",
     "3e35e7278060f16103665a47db1480e305346f255872ced202617c6d8025bb01"),
    ("3839c5f7cfd5c9e260a3a60a9c79f6ed54d21d66288413c8a2c2d8e985e9081c",
     "6c4f25fffd1ce4fb1bf67bc54713b44f6e1abb9ca744d06a38ed88731a8d1371"),
    ("9c5c698bb7d5a72e11685a63de4a6b525e073eede445eaae0d44ce42166fffcc",
     "69fb620cc4f9fe4d35533dba74b7234ebb2c2e69a988a8945219563ad12feb3c"),
    ("e863f0b8a717364fd553e55e041ea89e2a52d116e5b047cbaa1882410ab0813f",
     "a02776d17963ada8aad5e1d4370e96d2478a8e44fd0944274ac0c44f4499b0ed"),
]  # fmt: skip
_ADE_FOLDS = {
    k: {
        split: CorpusFile(f"ade_split_{k}_{split}.json", f"{SPERT}/ade/ade_split_{k}_{split}.json", sha)
        for split, sha in zip(("train", "test"), shas)
    }
    for k, shas in enumerate(_ADE_SHA)
}
_GENE = {"GENE": "Gene_or_protein"}
_JNLPBA = {"protein": "Gene_or_protein", "cell_line": "Cell_Line", "cell_type": "Cell_Type"}
_CC_BY = "CC BY 4.0 (Crichton et al. 2017 redistribution)"

CORPORA: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in [
        CorpusSpec(
            "BC2GM",
            "iob",
            _crichton(
                "BC2GM",
                "BC2GM-IOB",
                {
                    "train": "46e17f4e1509483b82c03f27d6f0214020f738fb71704356fb3445eb824ab38d",
                    "dev": "33a94577aa22f1e70ec9e02781a05baa4e1390e866d28bf2b344888e4e3d4103",
                    "test": "30d7a4f571ca8ed22a044528063ba5d0388d666d8b8b329733d6927e5fb30764",
                },
            ),
            ("GENE",),
            _GENE,
            _CC_BY,
            True,
        ),
        CorpusSpec(
            "BC4CHEMD",
            "iob",
            _crichton(
                "BC4CHEMD",
                "BC4CHEMD",
                {
                    "train": "cba8214548592ce132882485b4927c7ac91c5a49f139a11a1be44955625262d2",
                    "dev": "634570c93ab2f035f129b041212b8ca2bf7f9b54a84479e63fc954c430af6a1a",
                    "test": "328e8deac8b69d42fa7a593f1c53c7c553b103b0d439aa211b9466b9785d6aa1",
                },
            ),
            ("Chemical",),
            {},
            "unclear redistribution status (CHEMDNER); research use only",
            False,
        ),
        CorpusSpec(
            "BC5CDR",
            "iob",
            _crichton(
                "BC5CDR",
                "BC5CDR-IOB",
                {
                    "train": "b731361c0ed73afd04cc5fdad39afcdfd8f325d6e46c282339185a91d1af4c14",
                    "dev": "b909de65c4f7e3c23bb09ad52d654cdc92e96db941abe1a5dcf6f6010c03cff5",
                    "test": "e41a2843a5fff0cd8d1a88cb147968d61ae29336ca70cddc3d7fb8ff21dfa1e8",
                },
            ),
            ("Chemical", "Disease"),
            {},
            _CC_BY,
            True,
        ),
        CorpusSpec(
            "JNLPBA",
            "iob",
            _crichton(
                "JNLPBA",
                "JNLPBA",
                {
                    "train": "eb39b9e83089e2a7a05505012247b442a89f577b1b19fe55cf12ca6f0e00db84",
                    "dev": "462b09bc79a4dd69cec2e70b6041f54383b4b94892d2ee971a587fdc74caae80",
                    "test": "87c9b8f1f7fcf94add38c16088203d4ddf35c2f61eb2c7e61240c738d8dd9d35",
                },
            ),
            ("DNA", "RNA", "cell_line", "cell_type", "protein"),
            _JNLPBA,
            "GENIA Project License for Annotated Corpora; " + _CC_BY,
            True,
        ),
        CorpusSpec(
            "Linnaeus",
            "iob",
            _crichton(
                "Linnaeus",
                "linnaeus-IOB",
                {
                    "train": "74c8612944a4de87665680989a3d589c843562d3ec175e3b512295691b221d9a",
                    "dev": "042b5676d4f541995d617f43e2926afdf6653ed60ad9010c2f45b78ae869f2b6",
                    "test": "1792b82f7cf9159fd71de38b139a457dbc5ca126c13ac9e355a5fad3e65930ad",
                },
            ),
            ("Species",),
            {},
            _CC_BY,
            True,
        ),
        CorpusSpec(
            "NCBI-disease",
            "iob",
            _crichton(
                "NCBI-disease",
                "NCBI-disease-IOB",
                {
                    "train": "58379baf4614b8d757d93dd7a21b202849ca99f9b9d71b49185523ff5443300c",
                    "dev": "b4e1e7efcc2a35047bf2f3d281648357470e674f555d4a26a0049ac37d59cc61",
                    "test": "8f088ce45dc4746592188f9e69de3d89d87f3bb8f0ed8c4a287d018123fa148d",
                },
            ),
            ("Disease",),
            {},
            _CC_BY,
            True,
        ),
        CorpusSpec(
            "CoNLL04",
            "spert",
            {
                s: CorpusFile(f"conll04_{s}.json", f"{SPERT}/conll04/conll04_{s}.json", h)
                for s, h in {
                    "train": "65c52d5b6134c72c44277c74c5ecb354bf33aa352fc7b856edf6bda0bb436eea",
                    "dev": "3965a5110a79671fb74a78c0fd0113c4da6583c3833bd418c1ca414bb491e010",
                    "test": "347f45cf181b5641d2373248a1af0592954415234f72536835dde1df1b504556",
                }.items()
            },
            ("Loc", "Org", "Other", "Peop"),
            {},
            "no licence stated (Roth & Yih 2004)",
            False,
            (
                CorpusFile(
                    "conll04_types.json",
                    f"{SPERT}/conll04/conll04_types.json",
                    "9244d21d2640430f03eda97f59ce3e0a28a766964b1c04683c80656b5e505ad8",
                ),
            ),
            relation_types=("Kill", "Live_In", "Located_In", "OrgBased_In", "Work_For"),
        ),
        CorpusSpec(
            "ADE",
            "spert",
            _ADE_FOLDS[0],
            ("Adverse-Effect", "Drug"),
            {},
            "no licence stated (Gurulingappa et al. 2012)",
            False,
            (
                CorpusFile(
                    "ade_types.json",
                    f"{SPERT}/ade/ade_types.json",
                    "3675aea50f600cb61d4e55ffa2e376ac64385a3d8a6e8f54c27e07ab44f46919",
                ),
            ),
            relation_types=("Adverse-Effect",),
            folds=_ADE_FOLDS,
        ),
        CorpusSpec(
            "CoNLL2003",
            "iob",
            {
                s: CorpusFile(f"{s}.tsv", f"{CONLL2003}/eng.{remote}", h, convert="conll2003")
                for s, remote, h in [
                    ("train", "train", "fcbf6fb1ff226d17111e25d79fd1dfc9f768177fed278f14d4e77b27a7b0fd18"),
                    ("dev", "testa", "c2a285c3ab24e58d05b43a1afb050c29acbf09b4d175e3197a517544abd1ff92"),
                    ("test", "testb", "3cac49eb9986ead18a2310761315b1e65f0ec18ebf3be1fe1cdd650ed80852c5"),
                ]
            },
            ("LOC", "MISC", "ORG", "PER"),
            {},
            "research use only (Reuters RCV1 via NIST)",
            False,
        ),
    ]
}

BIOMEDICAL = ("BC2GM", "BC4CHEMD", "BC5CDR", "JNLPBA", "Linnaeus", "NCBI-disease")
