#!/usr/bin/env python3
"""Fails when a crate's top-level modules import each other in a circle.

Layers that point one way (STYLE.md; issue 13): in kbroker `server -> connection -> handlers ->
{group, txn, topics, replication} -> partition -> log`, in kbench `cli -> run -> {workload,
verify, report} -> measure ...`. A circle between top-level modules is where that breaks first,
so this walks every `crate::<module>` path in a crate's sources (doc comments, comments and
inline `mod tests` blocks excluded), builds the graph between top-level modules and prints each
strongly connected component of more than one module, naming the edges inside it.

    .ci/module-cycles.py src broker/src     # exit 1 and the circles, or exit 0
    .ci/module-cycles.py --self-test        # shows the check finds a circle it must find
"""
import os
import re
import sys
import tempfile


def edges_of(root):
    """Top-level module -> set of top-level modules its non-test code names."""
    edges = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]) or "tests" in parts[-1]:
                continue
            top = parts[0]
            src = open(path, encoding="utf-8").read()
            src = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", src)[0]
            src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
            names = set(re.findall(r"crate::([a-z_0-9]+)", src))
            for group in re.findall(r"use crate::\{([^;]*)\};", src, re.S):
                names |= set(re.findall(r"(?:^|[,{\s])([a-z_0-9]+)(?:::|\s*[,}]|$)", group))
            edges.setdefault(top, set()).update(n for n in names if n != top)
    return edges


def cycles(edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def check(root):
    edges = edges_of(root)
    found = cycles(edges)
    for comp in found:
        inside = [f"{a} -> {b}" for a in comp for b in sorted(edges.get(a, ())) if b in comp]
        print(f"{root}: modules in an import circle: {', '.join(comp)} ({'; '.join(inside)})")
    return not found


def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "b"))
        files = {
            "lib.rs": "mod a; mod b; mod c;",
            "a.rs": "use crate::b::X;\n/// [`crate::c`] in a doc comment is not an import\n",
            "b/mod.rs": "pub struct X;\nfn f() { crate::c::g() }\n#[cfg(test)]\nmod tests {\n use crate::a::*;\n}\n",
            "c.rs": "pub fn g() {}\n",
        }
        for name, text in files.items():
            open(os.path.join(d, name), "w").write(text)
        assert check(d), "a -> b -> c is not a circle"
        open(os.path.join(d, "c.rs"), "w").write("use crate::{a::Y};\npub fn g() {}\n")
        assert not check(d), "a -> b -> c -> a was not found"
    print("module-cycles: self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    ok = all([check(root) for root in sys.argv[1:]])
    sys.exit(0 if ok else 1)
