#!/usr/bin/env python3
"""Every default a manual page states, held to the code's: the settings of
dealimport.env(5) (and the commented defaults of the example settings file)
against what dip_config_to_env writes from an empty environment, the
dealimportctl defaults of dealimportctl(1), and the defaults the pages derive
from settings (the lease's renewal, the stop's kill grace). A numeric
setting whose page states no default fails too.
Usage: defaults.py PRINT_DEFAULTS MAN_DIR SOURCE_DIR"""
import re
import subprocess
import sys

LEVELS = {"3": "error", "4": "warning", "5": "notice", "6": "info", "7": "debug"}
# Settings whose default is a description, not a value (a path found at run
# time, "the ipc socket in the runtime directory", "beside the supervisor").
DESCRIBED = {"DEALIMPORT_RUNTIME_DIR", "DEALIMPORT_WORKER_PATH",
             "DEALIMPORT_CONTROL_CONNECT"}


def code_defaults(program):
    out = subprocess.run([program], env={}, check=True, capture_output=True,
                         text=True).stdout
    d = dict(line.split("=", 1) for line in out.splitlines())
    d["DEALIMPORT_LOG_LEVEL"] = LEVELS[d["DEALIMPORT_LOG_LEVEL"]]
    # log_format unset is kv: dip_log_setup is given json only for "json".
    d.setdefault("DEALIMPORT_LOG_FORMAT", "kv")
    return d


def roff_text(lines):
    """The words of roff source lines, macros and escapes undone."""
    words = []
    for line in lines:
        line = line.replace("\\-", "-").replace("\\(aq", "'")
        line = line.replace("\\(dq", '"').replace("\\e", "\\")
        line = re.sub(r"\\f[BIRP]", "", line)
        if line.startswith("."):
            parts = line.split(None, 1)
            if parts[0] in (".B", ".I", ".BR", ".IR", ".RI", ".BI", ".IB",
                            ".RB") and len(parts) > 1:
                args = re.findall(r'"([^"]*)"|(\S+)', parts[1])
                words.append("".join(a or b for a, b in args))
            continue
        words.append(line)
    return " ".join(words)


def blocks(path):
    """(first line, text) of each .TP paragraph of a page."""
    src = open(path, encoding="utf-8").read().split("\n")
    out, cur = [], None
    for line in src:
        if line.startswith(".TP") or line.startswith(".SH") or \
                line.startswith(".PP"):
            if cur:
                out.append((cur[0], roff_text(cur)))
            cur = [] if line.startswith(".TP") else None
            continue
        if cur is not None:
            cur.append(line)
    if cur:
        out.append((cur[0], roff_text(cur)))
    return out


def stated(text):
    """The default a paragraph states, or None: "default N", "Default 8 MB",
    "X (default)"."""
    m = re.search(r"\b(\S+) \(default", text)
    if m:
        return m.group(1).strip(",")
    m = re.search(r"\b[Dd]efault:? (\S+)( MB)?", text)
    if not m:
        return None
    v = m.group(1).rstrip(".;,:")
    if m.group(2) and re.fullmatch(r"[0-9]+", v):
        return str(int(v) * 1024 * 1024)
    return v


def main():
    program, man, src = sys.argv[1:4]
    code = code_defaults(program)
    fails, checked = [], 0

    documented = set()
    for head, text in blocks(man + "/dealimport.env.5"):
        names = re.findall(r"\b((?:DEALIMPORT|APP)_[A-Z0-9_]+)", roff_text([head]))
        value = stated(text)
        for name in names:
            documented.add(name) if value is not None else None
            if value is None or name in DESCRIBED or name not in code:
                continue
            checked += 1
            if value != code[name]:
                fails.append("dealimport.env.5: %s: the page says default "
                             "'%s', the code has '%s'" % (name, value, code[name]))
    for name, v in code.items():
        if re.fullmatch(r"[0-9]+", v) and name.startswith("DEALIMPORT_") and \
                name not in documented:
            fails.append("dealimport.env.5: %s states no default (the code "
                         "has %s)" % (name, v))

    example = src + "/scripts/systemd/dealimport.env.example"
    for line in open(example, encoding="utf-8"):
        m = re.match(r"#((?:DEALIMPORT|APP)_[A-Z0-9_]+)=(.*)$", line.strip())
        if not m or m.group(1) in DESCRIBED or m.group(1) not in code:
            continue
        checked += 1
        if m.group(2) != code[m.group(1)]:
            fails.append("dealimport.env.example: %s=%s, the code's default "
                         "is '%s'" % (m.group(1), m.group(2), code[m.group(1)]))

    ctl = {"--timeout": "CTL_TIMEOUT_S", "list": "CTL_LIST_LIMIT"}
    for head, text in blocks(man + "/dealimportctl.1"):
        first = roff_text([head]).split()
        key = first[0] if first else ""
        if key in ctl:
            checked += 1
            if stated(text) != code[ctl[key]]:
                fails.append("dealimportctl.1: %s: default '%s', the code "
                             "has '%s'" % (key, stated(text), code[ctl[key]]))

    derived = [
        ("dealimport.env.5", r"every sixth of it \((\d+) seconds by default\)",
         int(code["DEALIMPORT_LEASE_S"]) // 6, "the lease's renewal"),
        ("dealimport-supervisor.8", r"\((\d+) seconds by default, never more",
         int(code["DEALIMPORT_STOP_TIMEOUT_S"]) // 4, "the stop's kill grace"),
    ]
    for page, pattern, want, what in derived:
        text = roff_text(open(man + "/" + page, encoding="utf-8").read().split("\n"))
        m = re.search(pattern, text)
        checked += 1
        if not m or int(m.group(1)) != want:
            fails.append("%s: %s: the page says %s, the code gives %d" %
                         (page, what, m.group(1) if m else "nothing", want))

    if fails:
        print("\n".join(fails), file=sys.stderr)
        return 1
    print("%d stated defaults agree with the code" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
