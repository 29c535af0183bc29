"""An offline English corpus: the docstrings of a fixed list of pure-Python stdlib modules.

Read from the modules' source files with ``ast`` (nothing is imported): the module docstring,
then every class and function docstring in source order, each cleaned as ``inspect.getdoc``
cleans it (``inspect.cleandoc``). The text is that of the running Python's stdlib (3.11 here), so
it is the same on every machine with that Python.

``corpus(split)``: language-model text, split by module (a hash of its name), so test text comes
from modules the model never saw. ``sentences(n, seed)``: clean prose sentences of 5-40 words for
sentence-embedding models, a seeded hash selection from a fixed, deduplicated pool.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from functools import cache
from pathlib import Path

from qasic.errors import ConfigError

# Pure-Python modules with prose docstrings; sorted, fixed: the corpus is a function of this list
STDLIB_MODULES = (
    "argparse", "ast", "asyncio.base_events", "asyncio.events", "asyncio.locks", "asyncio.queues",
    "asyncio.streams", "asyncio.tasks", "base64", "bdb", "bisect", "calendar", "cgi", "cmd",
    "code", "codecs", "codeop", "collections", "colorsys", "concurrent.futures._base",
    "configparser", "contextlib", "copy", "copyreg", "csv", "dataclasses", "datetime", "difflib",
    "dis", "doctest", "email.charset", "email.feedparser", "email.header", "email.message",
    "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "getpass", "gettext", "glob", "gzip", "heapq", "hmac", "html.parser", "http.client",
    "http.cookiejar", "http.cookies", "http.server", "imaplib", "importlib._bootstrap",
    "importlib.abc", "importlib.metadata", "importlib.resources._common", "inspect", "ipaddress",
    "json.decoder", "json.encoder", "linecache", "locale", "logging", "logging.handlers", "lzma",
    "mailbox", "mimetypes", "modulefinder", "multiprocessing.connection", "multiprocessing.pool",
    "netrc", "ntpath", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle",
    "pickletools", "pkgutil", "platform", "plistlib", "poplib", "posixpath", "pprint", "profile",
    "pstats", "pydoc", "queue", "quopri", "random", "re._compiler", "re._parser", "reprlib",
    "rlcompleter", "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "site", "smtplib",
    "socket", "socketserver", "sqlite3.dbapi2", "ssl", "statistics", "string", "subprocess",
    "symtable", "sysconfig", "tabnanny", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "trace", "traceback", "tracemalloc", "types", "typing", "unittest.case",
    "unittest.loader", "unittest.mock", "unittest.result", "unittest.runner", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "webbrowser", "xml.dom.minidom",
    "xml.etree.ElementTree", "xml.sax.handler", "zipapp", "zipfile", "zipimport",
)
SPLITS = ("train", "validation", "test")
MIN_WORDS, MAX_WORDS = 5, 40
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s+(?=[A-Z])")
_PROSE = re.compile(r"[A-Z][A-Za-z0-9 ,;:'()\-]*[a-z0-9)][.!?]")


def split_of(module: str) -> str:
    """The split a module's text belongs to: 80 % train, 10 % validation, 10 % test, by the
    SHA-256 of its name (stable when the module list changes)."""
    bucket = hashlib.sha256(module.encode()).digest()[0] % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def corpus(split: str) -> str:
    """The ``documents`` of ``split`` separated by blank lines: language-model text."""
    return "\n\n".join(documents(split))


def documents(split: str) -> tuple[str, ...]:
    """The docstrings of the modules in ``split`` ("train", "validation" or "test"), in module
    order; a docstring already in an earlier split is left out."""
    if split not in SPLITS:
        raise ConfigError(f"corpus split {split!r} does not exist; use one of {', '.join(SPLITS)}")
    return _documents()[split]


@cache
def _documents() -> dict[str, tuple[str, ...]]:
    seen: set[str] = set()
    out = {}
    for split in SPLITS:
        docs = []
        for module in STDLIB_MODULES:
            if split_of(module) == split:
                docs += [d for d in docstrings(module) if d not in seen and not seen.add(d)]
        out[split] = tuple(docs)
    return out


@cache
def docstrings(module: str) -> tuple[str, ...]:
    """The cleaned docstrings of one stdlib module's source: the module's first, then its classes'
    and functions' in source order."""
    tree = ast.parse(source_file(module).read_text(encoding="utf-8"))
    nodes = [tree, *_in_source_order(tree)]
    docs = (ast.get_docstring(n, clean=True) for n in nodes)
    return tuple(d.strip() for d in docs if d and d.strip())


def _in_source_order(node: ast.AST) -> list[ast.AST]:
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(child)
        out += _in_source_order(child)
    return out


def source_file(module: str) -> Path:
    """The .py file of a stdlib module (a package: its __init__.py), without importing it."""
    base = Path(sysconfig.get_paths()["stdlib"]) / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise ConfigError(f"stdlib module {module!r} has no source file under {base.parent}; the "
                      "text corpus needs a Python installed with its .py sources")


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct prose sentences of 5-40 words from the stdlib docstrings: the pool ordered
    by SHA-256 of (seed, sentence), first ``n``."""
    pool = sentence_pool()
    if not 0 < n <= len(pool):
        raise ConfigError(f"asked for {n} sentences; the stdlib corpus has 1 to {len(pool)}")
    return sorted(pool, key=lambda s: hashlib.sha256(f"{seed}\0{s}".encode()).digest())[:n]


@cache
def sentence_pool() -> tuple[str, ...]:
    """Every clean sentence of every module's docstrings, deduplicated, sorted."""
    found = set()
    for module in STDLIB_MODULES:
        for doc in docstrings(module):
            found.update(s for s in _doc_sentences(doc) if is_clean(s))
    return tuple(sorted(found))


def _doc_sentences(doc: str) -> list[str]:
    """The sentences of a docstring's prose paragraphs (code, lists and tables skipped)."""
    out = []
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        if any(line.startswith((" ", "\t", ">>>", "-", "*", "=", ":", "|")) for line in lines):
            continue  # an indented block, doctest, list, table or field list
        out += _SENTENCE_END.split(" ".join(line.strip() for line in lines))
    return out


def is_clean(sentence: str) -> bool:
    """A sentence starting with a capital, ending with . ! or ?, 5-40 words, made of letters,
    digits, spaces and light punctuation only (no code, no markup)."""
    words = sentence.split()
    return (MIN_WORDS <= len(words) <= MAX_WORDS and _PROSE.fullmatch(sentence) is not None
            and "  " not in sentence)
