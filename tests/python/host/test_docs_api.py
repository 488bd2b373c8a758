"""API reference completeness (issue 14): every public name of carbon.h,
scheduler.h, the `scheduler` module and the `carbon` package has an entry
in docs/. A name counts as documented where docs/*.md show it in backquotes
(`name`, `name(...)`, `obj.name`, or inside a backquoted signature)."""
import importlib
import inspect
import os
import re
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DOCS = os.path.join(ROOT, "docs")
INCLUDE = os.path.join(ROOT, "include", "carbon")


def docs_code_words():
    """Every identifier that appears inside backquotes or fenced code in docs/."""
    words = set()
    for name in sorted(os.listdir(DOCS)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(DOCS, name), encoding="utf-8") as f:
            text = f.read()
        chunks = re.findall(r"```.*?```", text, re.S)
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        chunks += re.findall(r"`([^`]+)`", text)
        for chunk in chunks:
            words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", chunk))
    return words


def c_header_names(path):
    """Functions, macros, types, struct fields and enum constants of a public header."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r"^#\s*pragma[^\n]*", "", src, flags=re.M)
    names = set()
    for m in re.finditer(r"^#define\s+([A-Z][A-Z0-9_]*)", src, re.M):
        if not m.group(1).endswith("_H"):
            names.add(m.group(1))
    # function declarations and function-pointer fields
    names.update(re.findall(r"\b([a-z][a-z0-9_]*)\s*\(", src))
    names.update(re.findall(r"\(\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", src))
    names.update(re.findall(r"typedef\s+[^;{]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*;", src))
    names.update(re.findall(r"}\s*([A-Za-z_][A-Za-z0-9_]*)\s*;", src))
    # struct fields: `type name;` inside braces
    for body in re.findall(r"struct\s+\w*\s*\{(.*?)\}", src, re.S):
        names.update(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\[[^\]]*\])?\s*;", body))
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", src, re.S):
        names.update(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", body))
    keywords = {"if", "sizeof", "defined", "return", "void", "int", "char", "const",
                "struct", "typedef", "extern", "while", "for", "unsigned", "long", "double",
                "size_t", "int64_t", "uint64_t", "PyObject", "PyTypeObject"}
    return {n for n in names if n not in keywords and not n.startswith("_")}


def python_names(mod, prefix):
    """Public names of a module, and public attributes of its classes."""
    out = set()
    for name in dir(mod):
        if name.startswith("_"):
            continue
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            if getattr(obj, "__name__", "").startswith(prefix + "."):
                out |= python_names(obj, obj.__name__)
                out.add(name)
            continue
        if getattr(obj, "__module__", prefix).split(".")[0] not in (prefix.split(".")[0], "_scheduler", "_carbon"):
            continue  # re-exported from elsewhere (typing, threading, ...)
        out.add(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr in vars(obj):
                if not attr.startswith("_"):
                    out.add(attr)
    return out


class DocsCompleteness(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.words = docs_code_words()

    def missing(self, names):
        return sorted(n for n in names if n not in self.words)

    def test_carbon_h(self):
        names = c_header_names(os.path.join(INCLUDE, "carbon.h"))
        self.assertIn("carbon_init", names)
        self.assertEqual(self.missing(names), [], "carbon.h names without an entry in docs/")

    def test_scheduler_h(self):
        names = c_header_names(os.path.join(INCLUDE, "scheduler.h"))
        self.assertIn("PyTasklet_New", names)
        self.assertEqual(self.missing(names), [], "scheduler.h names without an entry in docs/")

    def test_scheduler_module(self):
        import scheduler
        names = python_names(scheduler, "scheduler")
        self.assertIn("tasklet", names)
        self.assertEqual(self.missing(names), [], "scheduler names without an entry in docs/")

    def test_carbon_package(self):
        import carbon
        names = python_names(carbon, "carbon")
        for sub in ("net", "patch", "sync"):
            try:
                mod = importlib.import_module("carbon." + sub)
            except ImportError:
                continue
            names |= python_names(mod, mod.__name__)
        self.assertIn("sleep", names)
        self.assertEqual(self.missing(names), [], "carbon names without an entry in docs/")


if __name__ == "__main__":
    unittest.main()
