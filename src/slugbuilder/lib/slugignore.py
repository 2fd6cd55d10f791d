#!/usr/bin/python3
"""Deletes the files of a build tree that its .slugignore names, before compile.

usage: slugignore.py BUILD_DIR

One pattern per line; blank lines and lines starting with '#' are skipped
(Heroku's semantics: like .gitignore, but without '!' negation):
  - a pattern with no '/' matches a file or directory name at any depth
    (`*.psd`, `tmp`);
  - a pattern with a '/' (other than a trailing one) is anchored to the top of
    the tree (`/docs`, `spec/fixtures`); a leading '/' only anchors;
  - a trailing '/' matches directories only;
  - '*' and '?' do not cross '/', '**' does, '[...]' is a character class.
A matching directory is removed with everything in it. Nothing outside the
tree is ever touched (symlinks are removed, never followed).
"""
import os
import re
import shutil
import sys

INDENT = "       "


def to_regex(pat):
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pat.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pat[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def parse(path):
    rules = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("!"):
                print(INDENT + "ignoring line %d of .slugignore: negation ('!') is not supported" % n)
                continue
            dir_only = line.endswith("/")
            p = line.rstrip("/")
            anchored = "/" in p
            p = p.lstrip("/")
            if not p or p in (".", "..") or p.startswith("../") or "/../" in p:
                print(INDENT + "ignoring line %d of .slugignore: %r" % (n, line))
                continue
            rules.append((to_regex(p), anchored, dir_only))
    return rules


def matches(rules, rel, is_dir):
    base = rel.rsplit("/", 1)[-1]
    for rx, anchored, dir_only in rules:
        if dir_only and not is_dir:
            continue
        if rx.match(rel if anchored else base):
            return True
    return False


def main():
    root = os.path.abspath(sys.argv[1])
    print("-----> Deleting files matching .slugignore patterns", flush=True)
    rules = parse(os.path.join(root, ".slugignore"))
    if not rules:
        print(INDENT + "no patterns", flush=True)
        return 0
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        reldir = os.path.relpath(dirpath, root)
        reldir = "" if reldir == "." else reldir + "/"
        keep = []
        for d in dirnames:
            full = os.path.join(dirpath, d)
            rel = reldir + d
            if os.path.islink(full):
                filenames.append(d)  # treat as a file: never descend
                continue
            if matches(rules, rel, True):
                n = sum(len(fs) for _, _, fs in os.walk(full)) or 1
                shutil.rmtree(full)
                removed += n
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = reldir + f
            if rel == ".slugignore":
                continue
            if matches(rules, rel, False):
                os.unlink(os.path.join(dirpath, f))
                removed += 1
    print(INDENT + "%d file%s removed" % (removed, "" if removed == 1 else "s"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
