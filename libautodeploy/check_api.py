#!/usr/bin/env python3
"""check_api.py - keep the public API's lists honest (called from lib.mk).

  check_api.py domains   every error domain passed to ad__err(...) (or
                         written into an ad_error_t's domain) under
                         libautodeploy/src is in AD_DOMAIN_MAP
                         (include/autodeploy/common.h), and every domain
                         there is used and documented in docs/errors.md.
  check_api.py docs FILE every symbol in FILE (one a line: the exported
                         symbols) appears in docs/api.md as `name`, and
                         every ad_* function docs/api.md names is in FILE.
  check_api.py layers    the folders of libautodeploy/src include only
                         folders before them in LAYERS (the order of
                         docs/architecture.md's folder table): no circles.

Run from the repository root. Exit 1 with one line per problem.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(".")
LIB = ROOT / "libautodeploy"
COMMON_H = LIB / "include/autodeploy/common.h"


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group()), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def domain_map():
    text = COMMON_H.read_text()
    block = re.search(r"#define AD_DOMAIN_MAP\(XX\)(.*?)\n\n", text, re.S)
    if not block:
        sys.exit(f"{COMMON_H}: no AD_DOMAIN_MAP(XX) block")
    return re.findall(r'XX\(\s*\w+\s*,\s*"([^"]*)"', block.group(1))


def call_args(text, start):
    """Split the arguments of the call whose '(' is at text[start]."""
    depth, args, cur, i, quote = 0, [], [], start, None
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\":
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur.append(c)
        elif c in "([{":
            depth += 1
            if depth > 1:
                cur.append(c)
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args
            cur.append(c)
        elif c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    return args


def used_domains():
    """(file, line, domain or None, text) for every domain argument."""
    for path in sorted((LIB / "src").rglob("*.[ch]")):
        text = strip_comments(path.read_text())
        macros = dict(re.findall(r'#define\s+(\w+)\s+"([^"]*)"', text))
        for m in re.finditer(r"\bad__err\s*\(", text):
            if re.match(r"\s*\(ad_error_t", text[m.end() - 1 :]):
                continue  # the definition itself
            args = call_args(text, m.end() - 1)
            if len(args) < 3 or args[0].startswith("ad_error_t"):
                continue  # a declaration or the definition
            arg = args[2]
            lit = re.fullmatch(r'"([^"]*)"', arg)
            dom = lit.group(1) if lit else macros.get(arg)
            yield path, text.count("\n", 0, m.start()) + 1, dom, arg
        for m in re.finditer(r'(?:->|\.)domain\s*,[^,;]*,\s*"([^"%]*)"', text):
            yield path, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(1)


def check_domains():
    known = domain_map()
    problems = []
    dups = {d for d in known if known.count(d) > 1}
    problems += [f"{COMMON_H}: domain \"{d}\" listed twice" for d in sorted(dups)]
    problems += [f"{COMMON_H}: domain \"{d}\" longer than 15 bytes (ad_error_t.domain)"
                 for d in known if len(d) > 15]
    seen = {"errno"}  # set inside ad__err_errno
    for path, line, dom, arg in used_domains():
        if dom is None:
            problems.append(f"{path}:{line}: domain {arg} is not a string literal "
                            "(or a #define of one in the same file)")
        elif dom not in known:
            problems.append(f"{path}:{line}: domain \"{dom}\" is not in AD_DOMAIN_MAP "
                            "(include/autodeploy/common.h): use a listed one or add it")
        else:
            seen.add(dom)
    problems += [f"{COMMON_H}: domain \"{d}\" is listed but never used" for d in known
                 if d not in seen]
    errors_md = (ROOT / "docs/errors.md").read_text()
    problems += [f"docs/errors.md: domain \"{d}\" is not documented (as `{d}`)"
                 for d in known if f"`{d}`" not in errors_md]
    return problems, f"domains: OK ({len(known)} listed, every ad__err domain among them)"


def check_docs(exports_file):
    exported = set(pathlib.Path(exports_file).read_text().split())
    api_md = (ROOT / "docs/api.md").read_text()
    documented = set(re.findall(r"`(ad_[a-z0-9][a-z0-9_]*)", api_md))  # not ad__ internals
    named = {n for n in documented if not n.endswith("_t") and not n.endswith("_fn")}
    problems = [f"docs/api.md: exported `{s}` is not documented" for s in sorted(exported - named)]
    problems += [f"docs/api.md: documents `{s}`, which the library does not export"
                 for s in sorted(named - exported)]
    return problems, f"docs: OK ({len(exported)} exported symbols, each in docs/api.md)"


# The data path's order; a folder may include only folders before it.
LAYERS = ["core", "wire", "bus", "store", "decide", "metrics", "notify", "tasks", "registry",
          "fleet", "feeds", "purchase", "serve", "engine"]


def check_layers():
    src = LIB / "src"
    problems = []
    folders = sorted(p.name for p in src.iterdir() if p.is_dir())
    for f in folders:
        if f not in LAYERS:
            problems.append(f"libautodeploy/src/{f}/: not in check_api.py LAYERS (and the "
                            "folder table of docs/architecture.md)")
    for f in folders:
        if f not in LAYERS:
            continue
        allowed = set(LAYERS[:LAYERS.index(f) + 1])
        for c in sorted((src / f).glob("*.[ch]")):
            for m in re.finditer(r'#include "([a-z_]+)/', strip_comments(c.read_text())):
                if m.group(1) not in allowed and m.group(1) != "autodeploy":
                    line = c.read_text().count("\n", 0, m.start()) + 1
                    problems.append(f"{c}:{line}: {f}/ includes {m.group(1)}/, which comes "
                                    "after it in the data path (pass a callback instead)")
    arch = (ROOT / "docs/architecture.md").read_text()
    table = arch[arch.find("## Folders"):]
    table = table[:table.find("\n## ", 1)]
    order = re.findall(r"^\| `([a-z]+)/` \|", table, re.M)
    if order != LAYERS:
        problems.append(f"docs/architecture.md: folder table order {order} is not LAYERS {LAYERS}")
    return problems, f"layers: OK ({len(LAYERS)} folders, each includes only earlier ones)"


def main(argv):
    if argv[1:2] == ["domains"]:
        problems, ok = check_domains()
    elif argv[1:2] == ["layers"]:
        problems, ok = check_layers()
    elif argv[1:2] == ["docs"] and len(argv) == 3:
        problems, ok = check_docs(argv[2])
    else:
        sys.exit(__doc__)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
