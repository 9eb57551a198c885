"""BioC XML and JSON read once, safely, into the ``bioc`` library's objects (which its writers dump back).

The ``bioc`` library's own readers parse XML with entity expansion on (an external entity is fetched, an
internal one can expand a few bytes into gigabytes) and trust every element to be there and of the right
type, so a malformed file is a traceback. Here the bytes are parsed once: XML by lxml with entities, the
DTD and the network off (an entity reference that is left in the tree is refused; the predefined ones,
``&amp;`` and the like, and character references are text), JSON by ``json`` on strict UTF-8. The
collection is then built by walking that tree, the same fields as ``bioc``'s readers, each checked: a
missing or mistyped one is an ``InputFormatError`` naming the file (the line, for XML), the document and
the element.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bioc import (
    BioCAnnotation,
    BioCCollection,
    BioCDocument,
    BioCLocation,
    BioCNode,
    BioCPassage,
    BioCRelation,
    BioCSentence,
)

from inference.input_errors import InputFormatError, cut

_INTEGER = re.compile(r"-?\d+")


def read_bioc(name: str, raw: bytes) -> tuple[BioCCollection, str]:
    """The collection of the BioC file ``name`` (bytes ``raw``) and its kind, ``"json"`` or ``"xml"``."""
    if raw.lstrip()[:1] == b"{":
        return _JSONReader(name).collection(raw), "json"
    return _XMLReader(name).collection(raw), "xml"


def _doc_id_before(text: str, line: int, pattern: str) -> str | None:
    ids = re.findall(pattern, "\n".join(text.split("\n")[:line]))
    return ids[-1] if ids else None


# --- XML ------------------------------------------------------------------------------------------
class _XMLReader:
    def __init__(self, name: str):
        self.name = name
        self.doc_id: str | None = None

    def fail(self, element: Any, problem: str) -> InputFormatError:
        return InputFormatError(self.name, getattr(element, "sourceline", None), self.doc_id, problem)

    def collection(self, raw: bytes) -> BioCCollection:
        from lxml import etree

        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(raw, parser)
        except etree.XMLSyntaxError as err:
            text = raw.decode("utf-8", errors="replace")
            doc = _doc_id_before(text, err.lineno, r"<document>\s*<id>([^<]*)</id>")
            raise InputFormatError(
                self.name, err.lineno, doc, f"not well-formed BioC XML ({cut(err.msg)})"
            ) from None
        for entity in root.iter(etree.Entity):
            self.doc_id = _enclosing_document_id(entity)
            raise self.fail(
                entity, f"an entity reference {cut(entity.text)} (entities are not expanded: write the text)"
            )
        if root.tag != "collection":
            raise self.fail(root, f"not a BioC collection (the root element is <{cut(root.tag)}>)")
        tree = root.getroottree()
        collection = BioCCollection()
        collection.source, collection.date = root.findtext("source"), root.findtext("date")
        collection.key, collection.infons = root.findtext("key"), self.infons(root)
        collection.encoding, collection.standalone = tree.docinfo.encoding, tree.docinfo.standalone
        collection.version = "1.0"
        for element in root.findall("document"):
            collection.add_document(self.document(element))
        return collection

    def document(self, element: Any) -> BioCDocument:
        self.doc_id = None
        document = BioCDocument()
        document.id = element.findtext("id")
        if not document.id:
            raise self.fail(element, "a <document> without an <id>")
        self.doc_id = document.id
        document.infons = self.infons(element)
        for p, child in enumerate(element.findall("passage")):
            document.add_passage(self.passage(child, f"passage {p}"))
        self.annotations_and_relations(element, document, "")
        return document

    def passage(self, element: Any, where: str) -> BioCPassage:
        passage = BioCPassage()
        passage.offset = self.offset(element, where)
        passage.infons = self.infons(element, where)
        if element.find("text") is not None:
            passage.text = element.findtext("text")
        for s, child in enumerate(element.findall("sentence")):
            passage.add_sentence(self.sentence(child, f"{where}: sentence {s}"))
        self.annotations_and_relations(element, passage, f"{where}: ")
        return passage

    def sentence(self, element: Any, where: str) -> BioCSentence:
        sentence = BioCSentence()
        sentence.offset = self.offset(element, where)
        sentence.text = element.findtext("text")
        sentence.infons = self.infons(element, where)
        self.annotations_and_relations(element, sentence, f"{where}: ")
        return sentence

    def annotations_and_relations(self, element: Any, container: Any, where: str) -> None:
        for a, child in enumerate(element.findall("annotation")):
            container.add_annotation(self.annotation(child, f"{where}annotation {a}"))
        for r, child in enumerate(element.findall("relation")):
            container.add_relation(self.relation(child, f"{where}relation {r}"))

    def annotation(self, element: Any, where: str) -> BioCAnnotation:
        annotation = BioCAnnotation()
        annotation.id = self.attribute(element, "id", where)
        annotation.infons = self.infons(element, where)
        annotation.text = element.findtext("text")
        for child in element.findall("location"):
            offset, length = (
                self.attribute(child, key, f"{where}: <location>") for key in ("offset", "length")
            )
            for key, value in (("offset", offset), ("length", length)):
                if not _INTEGER.fullmatch(value.strip()):
                    raise self.fail(child, f"{where}: location {key} {cut(value)!r} is not an integer")
            annotation.add_location(BioCLocation(int(offset), int(length)))
        return annotation

    def relation(self, element: Any, where: str) -> BioCRelation:
        relation = BioCRelation()
        if "id" in element.attrib:
            relation.id = element.attrib["id"]
        relation.infons = self.infons(element, where)
        for child in element.findall("node"):
            refid, role = (self.attribute(child, key, f"{where}: <node>") for key in ("refid", "role"))
            relation.add_node(BioCNode(refid, role))
        return relation

    def offset(self, element: Any, where: str) -> int:
        offset = (element.findtext("offset") or "").strip()
        if not _INTEGER.fullmatch(offset):
            raise self.fail(element, f"{where}: offset {cut(offset)!r} is not an integer")
        return int(offset)

    def attribute(self, element: Any, key: str, where: str) -> str:
        value = element.get(key)
        if value is None:
            raise self.fail(element, f"{where}: a <{element.tag}> without the attribute {key!r}")
        return value

    def infons(self, element: Any, where: str = "") -> dict[str, str | None]:
        prefix = f"{where}: " if where else ""
        return {
            self.attribute(child, "key", f"{prefix}<infon>"): child.text for child in element.findall("infon")
        }


def _enclosing_document_id(element: Any) -> str | None:
    for ancestor in element.iterancestors("document"):
        return ancestor.findtext("id") or None
    return None


# --- JSON -----------------------------------------------------------------------------------------
_SCALARS = (str, int, float, bool, type(None))


class _JSONReader:
    def __init__(self, name: str):
        self.name = name
        self.doc_id: str | None = None

    def fail(self, problem: str) -> InputFormatError:
        return InputFormatError(self.name, None, self.doc_id, problem)

    def collection(self, raw: bytes) -> BioCCollection:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise InputFormatError(self.name, line, None, f"not UTF-8 (byte {err.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            doc = _doc_id_before(text, err.lineno, r'"id"\s*:\s*"([^"]*)"')
            raise InputFormatError(
                self.name, err.lineno, doc, f"not well-formed BioC JSON ({err.msg})"
            ) from None
        except RecursionError:
            raise InputFormatError(self.name, None, None, "not BioC JSON (nested too deeply)") from None
        if not isinstance(data, dict):
            raise self.fail(f"not a BioC collection (a JSON {type(data).__name__}, not an object)")
        collection = BioCCollection()
        collection.source = self.value(data, "source", str, "", "the collection")
        collection.date = self.value(data, "date", str, "", "the collection")
        collection.key = self.value(data, "key", str, "", "the collection")
        if "version" in data:
            collection.version = self.value(data, "version", str, "", "the collection")
        collection.infons = self.infons(data, "the collection")
        for k, document in enumerate(self.value(data, "documents", list, [], "the collection")):
            collection.add_document(self.document(document, k))
        return collection

    def document(self, data: Any, k: int) -> BioCDocument:
        self.doc_id = f"#{k + 1}"
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise self.fail("a BioC document needs a string 'id'")
        document = BioCDocument()
        document.id = self.doc_id = data["id"]
        document.infons = self.infons(data, "the document")
        for p, passage in enumerate(self.value(data, "passages", list, [], "the document")):
            document.add_passage(self.passage(passage, f"passage {p}"))
        self.annotations_and_relations(data, document, "the document", "")
        return document

    def passage(self, data: Any, where: str) -> BioCPassage:
        self.mapping(data, where)
        passage = BioCPassage()
        passage.offset = self.integer(data, "offset", where)
        passage.infons = self.infons(data, where)
        if "text" in data:
            passage.text = self.value(data, "text", str, "", where)
        for s, sentence in enumerate(self.value(data, "sentences", list, [], where)):
            passage.add_sentence(self.sentence(sentence, f"{where}: sentence {s}"))
        self.annotations_and_relations(data, passage, where, f"{where}: ")
        return passage

    def sentence(self, data: Any, where: str) -> BioCSentence:
        self.mapping(data, where)
        sentence = BioCSentence()
        sentence.offset = self.integer(data, "offset", where)
        sentence.text = self.value(data, "text", str, "", where)
        sentence.infons = self.infons(data, where)
        self.annotations_and_relations(data, sentence, where, f"{where}: ")
        return sentence

    def annotations_and_relations(self, data: dict, container: Any, owner: str, where: str) -> None:
        for a, annotation in enumerate(self.value(data, "annotations", list, [], owner)):
            container.add_annotation(self.annotation(annotation, f"{where}annotation {a}"))
        for r, relation in enumerate(self.value(data, "relations", list, [], owner)):
            container.add_relation(self.relation(relation, f"{where}relation {r}"))

    def annotation(self, data: Any, where: str) -> BioCAnnotation:
        self.mapping(data, where)
        if not isinstance(data.get("id"), str):
            raise self.fail(f"{where}: 'id' is missing or not a string")
        annotation = BioCAnnotation()
        annotation.id = data["id"]
        annotation.infons = self.infons(data, where)
        annotation.text = self.value(data, "text", str, "", where)
        for n, location in enumerate(self.value(data, "locations", list, [], where)):
            at = f"{where}: location {n}"
            self.mapping(location, at)
            annotation.add_location(
                BioCLocation(self.integer(location, "offset", at), self.integer(location, "length", at))
            )
        return annotation

    def relation(self, data: Any, where: str) -> BioCRelation:
        self.mapping(data, where)
        relation = BioCRelation()
        relation.id = self.value(data, "id", str, "", where)
        relation.infons = self.infons(data, where)
        for n, node in enumerate(self.value(data, "nodes", list, [], where)):
            at = f"{where}: node {n}"
            self.mapping(node, at)
            relation.add_node(
                BioCNode(self.value(node, "refid", str, "", at), self.value(node, "role", str, "", at))
            )
        return relation

    def mapping(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise self.fail(f"{where}: a JSON {type(data).__name__}, not an object")

    def integer(self, data: dict, key: str, where: str) -> int:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(f"{where}: {key!r} is not an integer")
        return value

    def value(self, data: dict, key: str, kind: type, default: Any, where: str) -> Any:
        value = data.get(key, default)
        if value is None and kind is str:
            return default
        if not isinstance(value, kind):
            raise self.fail(f"{where}: {key!r} is a JSON {type(value).__name__}, not a {kind.__name__}")
        return value

    def infons(self, data: dict, where: str) -> dict[str, Any]:
        infons = self.value(data, "infons", dict, {}, where)
        for key, value in infons.items():
            if not isinstance(value, _SCALARS):
                raise self.fail(f"{where}: infon {cut(key)!r} is a JSON {type(value).__name__}, not a value")
        return dict(infons)
