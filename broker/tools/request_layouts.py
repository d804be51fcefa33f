#!/usr/bin/env python3
"""Writes broker/src/request/layouts.rs: the wire layout of every request kbroker serves, read
off the decoders of the `kafka-protocol` crate that Cargo.lock pins.

Why from the decoders and not from Kafka's JSON schemas: the bounds check in
`broker/src/request/bounds.rs` must walk a request exactly as the crate's generated decoder
will read it afterwards (which fields exist in which version, compact or not, which tagged
fields are decoded in place), or a request could pass the check with one reading and be decoded
with another. The generated decoders are regular Rust, so this script parses them.

Usage: python3 broker/tools/request_layouts.py [--check]
  --check  exit 1 if the checked-in file differs from what would be written (CI runs this, so
           a kafka-protocol upgrade cannot leave the bounds check walking an old layout).
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "broker", "src", "request", "layouts.rs")
HANDLERS = os.path.join(ROOT, "broker", "src", "handlers", "mod.rs")
VMIN, VMAX = -32768, 32767


def crate_dir():
    """The crate's source as Cargo unpacked it (`cargo fetch` brings it), at Cargo.lock's version."""
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    m = re.search(r'name = "kafka-protocol"\nversion = "([^"]+)"', lock)
    if not m:
        sys.exit("kafka-protocol is not in Cargo.lock")
    version = m.group(1)
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    src = os.path.join(home, "registry", "src")
    for index in sorted(os.listdir(src)) if os.path.isdir(src) else []:
        d = os.path.join(src, index, "kafka-protocol-" + version)
        if os.path.isdir(d):
            return d, version
    sys.exit("kafka-protocol %s is not unpacked under %s: run `cargo fetch` first" % (version, src))


def served_apis():
    src = open(HANDLERS).read()
    # The table's body, both kinds (`staged { ... } in_turn { ... }`).
    body, _ = block(src, src.index("apis! {"))
    return re.findall(r"(\w+) => \w+, -?\d+\.\.=-?\d+;", body)


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def block(src, start):
    """The text between the brace at or after `start` and its match, and the index after it."""
    i = src.index("{", start)
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return src[i + 1:j], j + 1
    raise ValueError("unbalanced braces")


def field_types(src, struct):
    m = re.search(r"pub struct %s \{" % struct, src)
    body, _ = block(src, m.start())
    return dict(re.findall(r"pub (\w+): ([^\n]+),\n", body))


def struct_of(rust_type):
    t = rust_type
    for wrap in ("Option<", "Vec<"):
        if t.startswith(wrap):
            t = t[len(wrap):-1]
    return t.split("::")[-1]


def parse_cond(cond):
    """A version condition as an inclusive range."""
    lo, hi = VMIN, VMAX
    for part in cond.split("&&"):
        part = part.strip()
        m = re.fullmatch(r"version (>=|<=|==|>|<) (-?\d+)", part)
        if not m:
            raise ValueError("unknown condition: " + cond)
        op, n = m.group(1), int(m.group(2))
        if op == ">=": lo = max(lo, n)
        elif op == ">": lo = max(lo, n + 1)
        elif op == "<=": hi = min(hi, n)
        elif op == "<": hi = min(hi, n - 1)
        else: lo, hi = max(lo, n), min(hi, n)
    return lo, hi


DECODE = re.compile(r"types::(\w+)(?:\((types::\w+(?: \{ version \})?)\))?(?: \{ version \})?\.decode\(buf\)\?")


def wire(expr, rust_type):
    m = DECODE.fullmatch(expr.strip().rstrip(";").strip())
    if not m:
        return None
    kind, elem = m.group(1), m.group(2)
    fixed = {"Boolean": 1, "Int8": 1, "Int16": 2, "UInt16": 2, "Int32": 4, "UInt32": 4,
             "Int64": 8, "Float64": 8, "Uuid": 16}
    if kind in fixed:
        return "Wire::Fixed(%d)" % fixed[kind]
    if kind in ("String", "CompactString", "Bytes", "CompactBytes"):
        return "Wire::" + kind
    if kind == "Struct":
        return "Wire::Struct(&%s)" % const_name(struct_of(rust_type))
    if kind == "OptionStruct":
        return "Wire::OptionStruct(&%s)" % const_name(struct_of(rust_type))
    if kind in ("Array", "CompactArray"):
        e = elem.replace("types::", "")
        if e.startswith("Struct"):
            el = "Elem::Struct(&%s)" % const_name(struct_of(rust_type))
        elif e in fixed:
            el = "Elem::Fixed(%d)" % fixed[e]
        elif e in ("String", "CompactString"):
            el = "Elem::" + e
        else:
            raise ValueError("unknown element " + e)
        return "Wire::%s(%s)" % (kind, el)
    raise ValueError("unknown type " + kind)


def arms(expr, rust_type, lo=VMIN, hi=VMAX):
    """The (lo, hi, wire) arms of a field's decode expression, first match wins."""
    expr = expr.strip()
    if expr.startswith("if "):
        cond = expr[3:expr.index("{")].strip()
        then, end = block(expr, 0)
        rest = expr[end:].strip()
        clo, chi = parse_cond(cond)
        out = arms(then, rust_type, max(lo, clo), min(hi, chi)) if max(lo, clo) <= min(hi, chi) else []
        if rest.startswith("else"):
            els, _ = block(rest, 0)
            out += arms(els, rust_type, lo, hi)
        return out
    w = wire(expr, rust_type)
    return [(lo, hi, w)] if w else []


def statements(body):
    """Top-level statements of a function body."""
    out, i, depth, start = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "{": depth += 1
        elif c == "}":
            depth -= 1
            head = body[start:i + 1].strip()
            if depth == 0 and head.startswith(("if ", "for ")) and not body[i + 1:].lstrip().startswith("else"):
                out.append(body[start:i + 1].strip()); start = i + 1
        elif c == ";" and depth == 0:
            out.append(body[start:i + 1].strip()); start = i + 1
        i += 1
    return [s for s in out if s]


def parse_struct(src, name):
    m = re.search(r"impl Decodable for %s \{" % name, src)
    impl, _ = block(src, m.start())
    fn, _ = block(impl, impl.index("fn decode"))
    types = field_types(src, name)
    fields, tagged, tags = [], None, []
    if "match tag" in fn:
        mbody, _ = block(fn, fn.index("match tag"))
        for tm in re.finditer(r"(\d+) => \{", mbody):
            arm, _ = block(mbody, tm.start())
            arm = arm.strip()
            tlo, thi = VMIN, VMAX
            if arm.startswith("if "):
                tlo, thi = parse_cond(arm[3:arm.index("{")])
                arm, _ = block(arm, 0)
            am = re.match(r"(\w+) = (.*);", arm.strip(), re.S)
            w = wire(am.group(2), types[am.group(1)])
            tags.append((int(tm.group(1)), tlo, thi, w, am.group(1)))
    for st in statements(fn):
        if st.startswith("if version") and "specified version not supported" in st:
            continue
        let = re.match(r"let (?:mut )?(\w+)(?:: [\w<>]+)? = (.*);$", st, re.S)
        if let and let.group(1) != "num_tagged_fields":
            fname, expr = let.group(1), let.group(2)
            if fname in types:
                a = arms(expr, types[fname])
                if a:
                    fields.append((fname, a))
            continue
        if "num_tagged_fields" in st:
            # `if version >= N { ... }` around the section, or the section alone (a flexible-only
            # message), whose `for` loop with the `match tag` follows as its own statement.
            lo, hi = (VMIN, VMAX)
            if st.startswith("if "):
                lo, hi = parse_cond(st[3:st.index("{")])
            tagged = (lo, hi)
            continue
        if st.startswith("for _ in 0..num_tagged_fields"):
            continue
        raise ValueError("%s: unexpected statement: %s" % (name, st[:80]))
    return fields, tagged, tags


def const_name(struct):
    return snake(struct).upper()


def main():
    cdir, version = crate_dir()
    apis = served_apis()
    layouts, order, seen = {}, [], {}

    def visit(src, name):
        if name in seen:
            if seen[name] != src:
                raise ValueError("two request files define a struct %s" % name)
            return
        seen[name] = src
        fields, tagged, tags = parse_struct(src, name)
        types = field_types(src, name)
        for fname, rt in types.items():
            s = struct_of(rt)
            if re.search(r"impl Decodable for %s \{" % s, src):
                visit(src, s)
        layouts[name] = (fields, tagged, tags)
        order.append(name)

    entries = []
    for api in apis:
        fname = os.path.join(cdir, "src", "messages", snake(api) + "_request.rs")
        src = open(fname).read()
        visit(src, api + "Request")
        entries.append(api)

    out = []
    out.append("// @generated by broker/tools/request_layouts.py from the decoders of kafka-protocol %s." % version)
    out.append("// Do not edit: run `python3 broker/tools/request_layouts.py` after upgrading the crate.")
    out.append("")
    out.append("use kafka_protocol::messages::ApiKey;")
    out.append("")
    out.append("use super::bounds::{Arm, Elem, Field, Layout, Tag, Wire};")
    out.append("")
    out.append("/// The layout of the request body of `api`, if kbroker serves it.")
    out.append("pub(super) fn request(api: ApiKey) -> Option<&'static Layout> {")
    out.append("    match api {")
    for api in entries:
        out.append("        ApiKey::%s => Some(&%s)," % (api, const_name(api + "Request")))
    out.append("        _ => None,")
    out.append("    }")
    out.append("}")

    def rng(lo, hi):
        return "%s, %s" % ("i16::MIN" if lo == VMIN else lo, "i16::MAX" if hi == VMAX else hi)

    for name in order:
        fields, tagged, tags = layouts[name]
        out.append("")
        out.append("static %s: Layout = Layout {" % const_name(name))
        out.append("    name: %s," % json.dumps(name))
        out.append("    fields: &[")
        for fname, a in fields:
            out.append("        Field {")
            out.append("            name: %s," % json.dumps(fname))
            out.append("            arms: &[")
            for lo, hi, w in a:
                out.append("                Arm::new(%s, %s)," % (rng(lo, hi), w))
            out.append("            ],")
            out.append("        },")
        out.append("    ],")
        if tagged is None:
            out.append("    tagged: None,")
        else:
            out.append("    tagged: Some((%s))," % rng(*tagged))
        out.append("    tags: &[")
        for t, lo, hi, w, fname in tags:
            out.append("        Tag::new(%d, %s, %s, %s)," % (t, json.dumps(fname), rng(lo, hi), w))
        out.append("    ],")
        out.append("};")
    text = "\n".join(out) + "\n"
    if "--check" in sys.argv:
        cur = open(OUT).read() if os.path.exists(OUT) else ""
        if cur != text:
            sys.exit("broker/src/request/layouts.rs is stale: run python3 broker/tools/request_layouts.py")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    open(OUT, "w").write(text)


if __name__ == "__main__":
    main()
