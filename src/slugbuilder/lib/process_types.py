#!/usr/bin/python3
"""Merges the Procfile over the buildpacks' default process types.

usage: process_types.py --build-dir DIR --out-json FILE --out-release FILE
                        [--release YAML]...

Each --release is the output of one buildpack's bin/release, in the order the
buildpacks ran: their default_process_types are merged, a later buildpack
winning for a type both declare. The Procfile (DIR/Procfile) wins over all of
them. Writes the JSON object name -> command to --out-json and a normalised
release YAML (config_vars, default_process_types, every value double-quoted)
to --out-release. Prints the Heroku-style "Procfile declares types -> ..."
lines; exits 1 with a ' !     ' message on a bad Procfile or when there is no
process type at all.
"""
import argparse
import json
import os
import re
import sys

INDENT = "       "
NAME = re.compile(r"^[A-Za-z0-9_-]+$")
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):[ \t]*(.*?)[ \t]*$")


def die(*lines):
    for l in lines:
        print(" !     " + l, flush=True)
    sys.exit(1)


def parse_procfile(path):
    types = {}
    first = {}
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", errors="replace")
    for n, line in enumerate(data.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = PROCFILE_LINE.match(line)
        if not m or not m.group(2):
            die("Procfile line %d is malformed: %r" % (n, line),
                "Each line must be 'name: command' with a name of letters, digits, '_' or '-'"
                " (e.g. 'web: python3 app.py')")
        name, cmd = m.group(1), m.group(2)
        if name in types:
            die("Procfile line %d declares the process type '%s' again (first on line %d)"
                % (n, name, first[name]))
        types[name] = cmd
        first[name] = n
    return types


def unquote(v):
    v = v.strip()
    if v.startswith('"'):
        try:
            return json.loads(v)
        except ValueError:
            return v.strip('"')
    if v.startswith("'") and v.endswith("'") and len(v) >= 2:
        return v[1:-1].replace("''", "'")
    # a plain scalar: drop a trailing comment
    m = re.search(r"\s#", v)
    if m:
        v = v[:m.start()].rstrip()
    return v


def parse_flow_map(v):
    """{web: "cmd", worker: cmd} (the simple one-line form)."""
    v = v.strip()[1:-1].strip()
    out = {}
    if not v:
        return out
    try:
        return {str(k): str(x) for k, x in json.loads("{" + v + "}").items()}
    except ValueError:
        pass
    for part in re.split(r",\s*(?=[A-Za-z0-9_-]+\s*:)", v):
        if ":" in part:
            k, x = part.split(":", 1)
            out[unquote(k)] = unquote(x)
    return out


def parse_release(text):
    """The subset of YAML buildpacks print: top-level keys holding maps."""
    res = {}
    section = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#") or line.strip() in ("---", "..."):
            continue
        if not line[0].isspace():
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$", line)
            if not m:
                section = None
                continue
            section = m.group(1)
            rest = m.group(2).strip()
            if rest.startswith("{") and rest.endswith("}"):
                res[section] = parse_flow_map(rest)
                section = None
            elif rest and not rest.startswith("#"):
                res[section] = unquote(rest)
                section = None
            else:
                res.setdefault(section, {})
            continue
        if section is None or not isinstance(res.get(section), dict):
            continue
        m = re.match(r"^\s+(\"[^\"]*\"|'[^']*'|[^:#\s][^:]*?)\s*:(?:\s+(.*))?$", line)
        if m:
            res[section][unquote(m.group(1))] = unquote(m.group(2) or "")
    return res


def yaml_str(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out-json", required=True)
    ap.add_argument("--out-release", required=True)
    ap.add_argument("--release", action="append", default=[])
    a = ap.parse_args()

    defaults = {}
    config_vars = {}
    for path in a.release:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                rel = parse_release(f.read())
        except OSError:
            continue
        dpt = rel.get("default_process_types")
        if isinstance(dpt, dict):
            for k, v in dpt.items():
                if NAME.match(k) and v:
                    defaults[k] = v
        cv = rel.get("config_vars")
        if isinstance(cv, dict):
            config_vars.update(cv)

    procfile = os.path.join(a.build_dir, "Procfile")
    declared = {}
    if os.path.isfile(procfile):
        declared = parse_procfile(procfile)
        print(INDENT + "Procfile declares types -> " + (", ".join(declared) or "(none)"), flush=True)
    else:
        print(INDENT + "Procfile declares types -> (none)", flush=True)
    used_defaults = [k for k in defaults if k not in declared]
    if used_defaults:
        print(INDENT + "Default types for buildpack -> " + ", ".join(used_defaults), flush=True)

    types = dict(declared)
    for k in used_defaults:
        types[k] = defaults[k]
    if not types:
        die("No process types: the app has no Procfile and the buildpack declares no default ones.",
            "Add a Procfile with a line per process type, e.g. 'web: ./server --port $PORT'")

    lines = ["---"]
    if config_vars:
        lines.append("config_vars:")
        lines += ["  %s: %s" % (k if NAME.match(k) else yaml_str(k), yaml_str(v))
                  for k, v in config_vars.items()]
    else:
        lines.append("config_vars: {}")
    if defaults:
        lines.append("default_process_types:")
        lines += ["  %s: %s" % (k, yaml_str(v)) for k, v in defaults.items()]
    else:
        lines.append("default_process_types: {}")
    tmp = a.out_release + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, a.out_release)

    tmp = a.out_json + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(types, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, a.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
