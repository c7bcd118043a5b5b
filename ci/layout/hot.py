#!/usr/bin/env python3
"""Functions of tcpconns.so that collectd runs, as link-order patterns.

    hot.py LIB TIER=CALLGRIND[,CALLGRIND...] ...

LIB is an unstripped build of the plugin; each CALLGRIND file is the output
of `valgrind --tool=callgrind` on a collectd that loaded it. Prints, per
tier, the input-section patterns of the functions run in that tier's files
and in no earlier tier's, for build.rs to place first in the text (see
ci/layout.sh). A pattern leaves out what changes between builds of the same
source: the legacy mangling's hash and, in v0 mangling (the standard
library), crate disambiguators, back-references and impl disambiguators.
"""
import fnmatch
import os
import re
import subprocess
import sys


def executed(path):
    """Names of the functions callgrind saw run inside tcpconns.so.

    Every function that ran has a `fn=` block of its own, under the `ob=` of
    its object; `cob=`/`cfn=` lines (callees) only define names. Names and
    objects are compressed: `(id) name` the first time, `(id)` after.
    """
    objects, names, seen = {}, {}, set()
    obj = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if not m:
                continue
            kind, ident, name = m.groups()
            table = objects if kind.endswith("ob") else names
            if name:
                table[ident] = name
            if kind == "ob":
                obj = objects[ident]
            elif kind == "fn" and obj and os.path.basename(obj) == "tcpconns.so":
                seen.add(key(re.sub(r"'\d+$", "", names[ident])))
    return seen


def key(demangled):
    """A demangled name without its hashes (crate hashes in brackets after a
    name, the legacy `::h...` suffix), as valgrind and c++filt both print it."""
    return re.sub(r"::h[0-9a-f]{16}$", "", re.sub(r"(?<=\w)\[[0-9a-f]+\]", "", demangled))


def v0_pattern(mangled):
    """A v0 name with its disambiguators (`s<base62>_`: crate roots, impls,
    identifiers) as `*` and back-references (`B<base62>_`) as `B*_`.
    Identifiers are skipped by their length so their text is never read as
    a tag."""
    out, i, prev = [], 2, ""
    while i < len(mangled):
        c = mangled[i]
        if c.isdigit():
            j = i
            while j < len(mangled) and mangled[j].isdigit():
                j += 1
            k = j + 1 if j < len(mangled) and mangled[j] == "_" else j
            end = k + int(mangled[i:j])
            out.append(mangled[i:end])
            i, prev = end, "0"
            continue
        num = re.match(r"[0-9a-zA-Z]*_", mangled[i + 1:]) if c in "sB" else None
        if num:
            after = i + 1 + num.end()
            if c == "B":
                out.append("B*_")
                i, prev = after, "B"
                continue
            if prev in ("M", "X", "Y", "C") or (after < len(mangled) and mangled[after].isdigit()):
                out.append("*")
                i, prev = after, "s"
                continue
        out.append(c)
        i, prev = i + 1, c
    return re.sub(r"\*+", "*", "_R" + "".join(out))


def pattern(mangled):
    if mangled.startswith("_ZN"):
        return re.sub(r"17h[0-9a-f]{16}E$", "17h*", mangled)
    if mangled.startswith("_R"):
        return v0_pattern(mangled)
    return mangled


def main():
    lib, tiers = sys.argv[1], sys.argv[2:]
    nm = subprocess.run(["nm", "-S", lib], capture_output=True, text=True, check=True).stdout
    syms = [r for r in (l.split() for l in nm.splitlines()) if len(r) == 4 and r[2] in "tT"]
    demangled = subprocess.run(["c++filt"], input="\n".join(r[3] for r in syms),
                               capture_output=True, text=True, check=True).stdout.splitlines()
    by_key = {}
    for (_, size, _, mangled), d in zip(syms, demangled):
        by_key.setdefault(key(d), []).append((mangled, int(size, 16)))
    done = set()
    for tier in tiers:
        name, files = tier.split("=", 1)
        run = set().union(*(executed(f) for f in files.split(",")))
        print(f"hot.py: {name}: {len(run)} functions ran in {files}", file=sys.stderr)
        pats = []
        for k in sorted(run):
            for mangled, _ in by_key.get(k, []):
                p = pattern(mangled)
                if not fnmatch.fnmatchcase(mangled, p):
                    sys.exit(f"hot.py: pattern {p} does not match {mangled}")
                if p not in done:
                    done.add(p)
                    pats.append(p)
        size = sum(int(r[1], 16) for r in syms if any(fnmatch.fnmatchcase(r[3], p) for p in pats))
        print(f"# tier {name}: {len(pats)} patterns, {size} bytes in this build")
        print("\n".join(pats))
        missing = sorted(k for k in run if k not in by_key and "::" in k)
        print(f"hot.py: {name}: {len(pats)} patterns, {size} bytes; not in the symbol table: {missing}",
              file=sys.stderr)


main()
