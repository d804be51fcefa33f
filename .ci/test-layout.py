#!/usr/bin/env python3
"""Fails when a crate's unit tests are not where the one convention puts them (issue 13, part 5).

The convention (README.md, "Where tests live"): unit tests sit beside the code they test. A module
that is one file keeps them inline at its end, in `#[cfg(test)] mod tests { ... }`; a module that
is a folder (`mod.rs`) keeps them in `tests.rs` beside `mod.rs`, declared `#[cfg(test)] mod tests;`.
So a reader finds a module's tests without looking: in the file, or in the folder's `tests.rs`.
Violations named:

- a `mod.rs` with an inline `mod tests { ... }` block (they belong in the folder's `tests.rs`);
- a file module that declares `mod tests;` (a `<name>/tests.rs` next to a single file: make the
  module a folder, or keep the tests inline);
- a `tests.rs` that no `mod.rs` beside it declares (compiled by nobody);
- a `mod tests` without `#[cfg(test)]` in front (built into the product).

    .ci/test-layout.py src broker/src     # exit 1 and each violation, or exit 0
    .ci/test-layout.py --self-test        # shows each kind of violation is found
"""
import os
import re
import sys
import tempfile

INLINE = re.compile(r"^\s*mod tests\s*\{", re.M)
DECLARED = re.compile(r"^\s*mod tests\s*;", re.M)
GATED = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod tests\s*[{;]")


def violations(root):
    """Every departure from the convention under `root`, as 'path: what to do' lines."""
    found = []
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            src = open(path, encoding="utf-8").read()
            inline = len(INLINE.findall(src))
            declared = len(DECLARED.findall(src))
            if inline + declared > len(GATED.findall(src)):
                found.append(f"{path}: `mod tests` without #[cfg(test)] is built into the product")
            if f == "mod.rs" and inline:
                found.append(
                    f"{path}: a folder module keeps its unit tests in {os.path.join(d, 'tests.rs')}, "
                    "declared `#[cfg(test)] mod tests;`"
                )
            if f not in ("mod.rs", "lib.rs", "main.rs") and declared:
                found.append(
                    f"{path}: a file module keeps its unit tests inline (`#[cfg(test)] mod tests {{ }}`) "
                    "or becomes a folder with mod.rs and tests.rs"
                )
            if f == "tests.rs":
                parent = os.path.join(d, "mod.rs")
                if not (os.path.exists(parent) and DECLARED.search(open(parent, encoding="utf-8").read())):
                    found.append(f"{path}: no mod.rs beside it declares `mod tests;`, so it is never compiled")
    return found


def self_test():
    """Builds one tree per violation kind and one clean tree; the check must tell them apart."""
    cases = {
        "inline in mod.rs": {"a/mod.rs": "#[cfg(test)]\nmod tests {\n}\n"},
        "declared by a file": {"b.rs": "#[cfg(test)]\nmod tests;\n", "b/tests.rs": ""},
        "orphan tests.rs": {"c/mod.rs": "pub fn f() {}\n", "c/tests.rs": "#[test]\nfn t() {}\n"},
        "ungated": {"d.rs": "mod tests {\n}\n"},
    }
    clean = {
        "e.rs": "#[cfg(test)]\nmod tests {\n}\n",
        "f/mod.rs": "#[cfg(test)]\nmod tests;\n",
        "f/tests.rs": "",
        "g.rs": "#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests {\n}\n",
    }
    ok = True
    for name, tree in list(cases.items()) + [("clean", clean)]:
        with tempfile.TemporaryDirectory() as root:
            for rel, text in tree.items():
                os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
                open(os.path.join(root, rel), "w").write(text)
            got = violations(root)
            if (name == "clean") == bool(got):
                print(f"self-test: {name}: expected {'none' if name == 'clean' else 'a violation'}, got {got}")
                ok = False
    print("self-test: " + ("every violation kind found, the clean tree passes" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if not argv:
        print(__doc__)
        return 2
    found = [v for root in argv for v in violations(root)]
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} unit-test layout violation(s); the convention is in this script's doc")
        return 1
    print(f"unit-test layout: {', '.join(argv)} follow the convention")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
