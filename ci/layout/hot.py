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
import re
import subprocess
import sys


def executed(path):
    """Names of the functions callgrind saw run inside tcpconns.so."""
    objects, names, seen = {}, {}, set()
    obj = callee_obj = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    objects[ident] = name
                if kind == "ob":
                    obj, callee_obj = objects[ident], None
                else:
                    callee_obj = objects[ident]
                continue
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                where = obj if kind == "fn" else (callee_obj or obj)
                if where and "tcpconns" in where:
                    seen.add(re.sub(r"'\d+$", "", names[ident]))
                if kind == "fn":
                    callee_obj = None
    return seen


def key(demangled):
    """A demangled name without its hashes, as callgrind prints it."""
    return re.sub(r"::h[0-9a-f]{16}$", "", re.sub(r"\[[0-9a-f]+\]", "", demangled))


def pattern(mangled):
    if mangled.startswith("_ZN"):
        return re.sub(r"17h[0-9a-f]{16}E$", "17h*", mangled)
    if mangled.startswith("_R"):
        p = re.sub(r"Cs[0-9A-Za-z]*_", "C*", mangled)
        p = re.sub(r"B[0-9A-Za-z]*_", "B*_", p)
        p = re.sub(r"(?<=[MXY])s[0-9A-Za-z]*_", "*", p)
        p = re.sub(r"(?<=N[a-zA-Z])s[0-9A-Za-z]*_", "*", p)
        return re.sub(r"\*+", "*", p)
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
        pats, size = [], 0
        for k in sorted(run):
            for mangled, n in by_key.get(k, []):
                p = pattern(mangled)
                if not fnmatch.fnmatchcase(mangled, p):
                    sys.exit(f"hot.py: pattern {p} does not match {mangled}")
                if p not in done:
                    done.add(p)
                    pats.append(p)
                    size += n
        print(f"# tier {name}: {len(pats)} patterns, {size} bytes in this build")
        print("\n".join(pats))
        missing = sorted(k for k in run if k not in by_key and "::" in k)
        print(f"hot.py: {name}: {len(pats)} patterns, {size} bytes; not in the symbol table: {missing}",
              file=sys.stderr)


main()
