#!/usr/bin/python3
"""check_deps.py - every package the build asks for is in scripts/deps.sh.

The "guard" test (ctest -L guard).  A fresh Debian 12 machine gets only
what scripts/deps.sh installs, so what CMake, the demo and the tests use
must come from its lists or from packages those depend on.  A developer's
machine has everything installed already, so nothing else notices when a
list falls behind; this does, without a fresh machine:

  build  configures the project in a fresh temporary build directory the
         way README's Install (and docs/install.md) does (the defaults, which must leave
         HERALD_TESTS OFF: that is checked too) with PKG_CONFIG_EXECUTABLE
         set to a wrapper that logs every pkg-config call, then collects
         what the configuration used: the pkg-config modules asked for (and the modules those
         Require), the files find_path/find_library/find_program found
         (FILEPATH entries of the CMakeCache, find_path directories joined
         with the file name looked for, read from a --trace of the
         project's own CMake files) and the tools (cmake, the C compiler,
         make, pkg-config, binutils).  Each is mapped to the Debian package
         owning it (dpkg-query -S, following symlinks and the /lib ->
         /usr/lib usrmerge aliases), and each package must be in
         `deps.sh --list build` or in its dependency closure.
  test   the same with -DHERALD_TESTS=ON: what it adds (cmocka, valgrind,
         ...) must be in `deps.sh --list test` or its closure; so must the
         Python modules the integration tests and their tools import.
  demo   the Python modules tests/tools/smtpd.py (the demo's SMTP server,
         run by /usr/bin/python3) imports must come from `deps.sh --list
         demo` or its closure.

The dependency closure is read from `apt-cache depends --recurse` (Depends
and Pre-Depends only, as apt-get --no-install-recommends installs): of an
"a | b" alternative only the first is followed (what apt installs on a
fresh machine), a virtual package counts as any of its providers.

Usage: check_deps.py [--source DIR] [--deps-sh FILE] [--check build|test|demo]...
                     [--cmake CMAKE] [--cmake-arg ARG]... [--keep]
  --source     the herald source tree (default: two directories up)
  --deps-sh    the deps.sh to read the lists from (default: $DEPS_SH, else
               SOURCE/scripts/deps.sh); the self-test passes a broken copy
  --check      what to check, repeatable (default: all three)
  --cmake      the cmake to configure with (default: cmake on PATH)
  --cmake-arg  an extra argument for the "build" configuration, repeatable
               (the self-test passes -DHERALD_TESTS=ON: a default gone wrong)
  --keep       keep the temporary build directories (their path is printed)

Prints one line per thing checked and, for each package that is missing
from the lists, which module/file needs it and which list it must be added
to.  Exits 0 when everything is covered, 1 when something is missing (or
the configuration fails), 77 (skip) when dpkg-query or apt-cache is absent
(not Debian).  Python standard library only.
"""
import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

PROG = "check_deps"
PYTHON = "/usr/bin/python3"
SKIP = 77
FIND_KEYWORDS = {
    "NAMES", "HINTS", "PATHS", "PATH_SUFFIXES", "DOC", "REQUIRED", "NAMES_PER_DIR",
    "ENV", "REGISTRY_VIEW", "VALIDATOR", "NO_CACHE", "NO_DEFAULT_PATH",
    "NO_PACKAGE_ROOT_PATH", "NO_CMAKE_PATH", "NO_CMAKE_ENVIRONMENT_PATH",
    "NO_SYSTEM_ENVIRONMENT_PATH", "NO_CMAKE_SYSTEM_PATH", "NO_CMAKE_INSTALL_PREFIX",
    "CMAKE_FIND_ROOT_PATH_BOTH", "ONLY_CMAKE_FIND_ROOT_PATH", "NO_CMAKE_FIND_ROOT_PATH",
}
PKG_KEYWORDS = {"REQUIRED", "QUIET", "NO_CMAKE_PATH", "NO_CMAKE_ENVIRONMENT_PATH",
                "IMPORTED_TARGET", "GLOBAL"}


def say(msg=""):
    print(msg, flush=True)


def fail(msg):
    say("%s: ERROR: %s" % (PROG, msg))
    sys.exit(1)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def rel(path, top):
    return os.path.relpath(path, top) if path.startswith(top + os.sep) else path


# --- deps.sh lists and their closure -----------------------------------------

def deps_list(deps_sh, which):
    r = run(["sh", deps_sh, "--list", which])
    if r.returncode != 0:
        fail("`sh %s --list %s` failed (exit %d): %s"
             % (deps_sh, which, r.returncode, r.stderr.strip()))
    pkgs = r.stdout.split()
    if not pkgs:
        fail("`sh %s --list %s` printed no packages" % (deps_sh, which))
    return pkgs


def strip_arch(name):
    return name.split(":", 1)[0]


def parse_apt_depends(text):
    """apt-cache depends --recurse output -> {package: [[alternative, ...], ...]}
    where an alternative is (name, [providers]); virtual names keep their <>."""
    graph = {}
    cur = None
    group = []
    last = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            cur = line.strip()
            graph.setdefault(cur, [])
            group, last = [], None
            continue
        if cur is None:
            continue
        m = re.match(r"^ (\||\s)(Depends|PreDepends): (.*)$", line)
        if m:
            last = (m.group(3).strip(), [])
            group.append(last)
            if m.group(1) != "|":
                graph[cur].append(group)
                group = []
        elif line.startswith("    ") and last is not None:
            last[1].append(line.strip())  # a package providing the last one named
    return graph


def closure(roots):
    """The packages apt-get --no-install-recommends installs for roots."""
    cmd = ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
           "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
    r = run(cmd + list(roots))
    if r.returncode != 0:
        fail("`%s` failed: %s" % (" ".join(cmd + list(roots)), r.stderr.strip()))
    graph = parse_apt_depends(r.stdout)
    unknown = [p for p in roots if p not in graph]
    seen = set()
    todo = [p for p in roots if p in graph]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for group in graph.get(p, []):
            names = {strip_arch(n.strip("<>")) for n, _ in group}
            if names & set(roots):
                continue  # satisfied by a listed package
            name, providers = group[0]
            nexts = []
            if name.startswith("<"):
                nexts = providers  # virtual: any provider will do
            else:
                nexts = [name]
            for n in nexts:
                if n not in seen:
                    todo.append(n)
    return {strip_arch(p) for p in seen if not p.startswith("<")}, unknown


# --- files to packages ------------------------------------------------------

MERGED = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def aliases(path):
    """path and its usrmerge twin (/lib/x <-> /usr/lib/x)."""
    out = [path]
    for d in MERGED:
        if path.startswith(d + "/"):
            out.append("/usr" + path)
        elif path.startswith("/usr" + d + "/"):
            out.append(path[4:])
    return out


def candidates(path):
    """Paths to ask dpkg about for path, best first: itself, each step of its
    symlink chain (/usr/bin/cc -> /etc/alternatives/cc -> /usr/bin/gcc ...),
    the real file, and the usrmerge twins of each."""
    chain = [path]
    p = path
    for _ in range(20):
        if not os.path.islink(p):
            break
        t = os.readlink(p)
        p = os.path.normpath(os.path.join(os.path.dirname(p), t))
        chain.append(p)
    chain.append(os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)))
    chain.append(os.path.realpath(path))
    out = []
    for c in chain:
        for a in aliases(c):
            if a not in out:
                out.append(a)
    return out


def owners(paths):
    """{path: [package, ...]} for the paths dpkg knows (one dpkg-query call)."""
    paths = sorted({p for p in paths if p.startswith("/")
                    and not any(ch in p for ch in "*?[]\\")})
    found = {}
    if not paths:
        return found
    r = run(["dpkg-query", "-S"] + paths)
    for line in r.stdout.splitlines():
        if line.startswith(("diversion by", "local diversion")):
            continue
        if ": " not in line:
            continue
        pkgs, p = line.split(": ", 1)
        if p in paths:
            found.setdefault(p, [])
            for pkg in pkgs.split(","):
                pkg = strip_arch(pkg.strip())
                if pkg and pkg not in found[p]:
                    found[p].append(pkg)
    return found


def resolve(items):
    """Sets item["pkgs"] and item["owned"] (the path dpkg knows) per item."""
    cands = {id(it): candidates(it["path"]) for it in items}
    known = owners([c for cs in cands.values() for c in cs])
    for it in items:
        it["pkgs"], it["owned"] = [], None
        for c in cands[id(it)]:
            if c in known:
                it["pkgs"], it["owned"] = known[c], c
                break


# --- what a CMake configuration uses ----------------------------------------

def configure(cmake, src, work, tag, args, real_pc, keep_note):
    """Configure src in work/build-TAG with args; returns the items used and
    the cache."""
    bdir = os.path.join(work, "build-" + tag)
    log = os.path.join(work, "pkg-config-" + tag + ".log")
    trace = os.path.join(work, "trace-" + tag + ".json")
    wrapper = os.path.join(work, "pkg-config-" + tag)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n# logs its arguments (unit-separated, one call a line)\n"
                "printf '%%s\\037' \"$@\" >> %s\nprintf '\\n' >> %s\nexec %s \"$@\"\n"
                % (shlex.quote(log), shlex.quote(log), shlex.quote(real_pc)))
    os.chmod(wrapper, 0o755)
    open(log, "w").close()
    cmd = [cmake, "-S", src, "-B", bdir] + args + [
           "-DPKG_CONFIG_EXECUTABLE=" + wrapper,
           "--trace-format=json-v1", "--trace-redirect=" + trace]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        lines = r.stdout.splitlines()
        say("%s: ERROR: configuring failed (exit %d): %s"
            % (PROG, r.returncode, " ".join(shlex.quote(c) for c in cmd)))
        for line in lines[-40:]:
            say("  | " + line)
        say(keep_note)
        sys.exit(1)

    # Where the project's own CMake files ask for things (file:line).
    sites = {}           # module or variable -> "CMakeLists.txt:22"
    find_names = {}      # find_path/find_file variable -> [names]
    with open(trace) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            fn = ev.get("file", "")
            if not fn.startswith(src + os.sep):
                continue
            c = ev.get("cmd", "").lower()
            args = ev.get("args", [])
            site = "%s:%s" % (rel(fn, src), ev.get("line"))
            if c in ("pkg_check_modules", "pkg_search_module") and args:
                for a in args[1:]:
                    if a not in PKG_KEYWORDS:
                        sites.setdefault(re.split(r"[\s<>=!]", a)[0], site)
            elif c.startswith("find_") and c != "find_package" and args:
                var = args[0]
                sites.setdefault(var, site)
                if c in ("find_path", "find_file"):
                    rest = args[1:]
                    if "NAMES" in rest:
                        rest = rest[rest.index("NAMES") + 1:]
                        names = []
                        for a in rest:
                            if a in FIND_KEYWORDS:
                                break
                            names.append(a)
                    else:
                        names = rest[:1]
                    find_names[var] = names

    items = []
    # pkg-config modules, as the wrapper saw them, and what they Require.
    modules = []
    with open(log) as f:
        for line in f:
            for a in line.rstrip("\n").split("\037"):
                if a and not a.startswith("-"):
                    m = re.split(r"[\s<>=!]", a.strip())[0]
                    if m and m not in modules:
                        modules.append(m)
    why = {m: "asked for at %s" % sites[m] if m in sites else "asked for" for m in modules}
    todo = list(modules)
    while todo:
        m = todo.pop(0)
        r = run([real_pc, "--print-requires", m])
        for req in r.stdout.split("\n"):
            req = re.split(r"[\s<>=!]", req.strip())[0]
            if req and req not in why:
                why[req] = "required by module %s" % m
                modules.append(req)
                todo.append(req)
    for m in modules:
        r = run([real_pc, "--path", m])
        pc = r.stdout.strip()
        if r.returncode != 0 or not pc:
            r = run([real_pc, "--variable=pcfiledir", m])
            pc = os.path.join(r.stdout.strip(), m + ".pc") if r.stdout.strip() else ""
        if not pc:
            items.append({"key": ("pc", m), "what": "pkg-config module %s (%s)" % (m, why[m]),
                          "path": "/nonexistent/%s.pc" % m})
            continue
        items.append({"key": ("pc", m), "what": "pkg-config module %s (%s)" % (m, why[m]),
                      "path": pc})

    # The cache: whatever find_library/find_program/find_path found, and tools.
    cache = {}
    with open(os.path.join(bdir, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"^([^#/][^:=]*):([A-Z]+)=(.*)$", line.rstrip("\n"))
            if m:
                cache[m.group(1)] = (m.group(2), m.group(3))
    outside = (src + os.sep, work + os.sep)
    for var, (typ, val) in sorted(cache.items()):
        if var == "PKG_CONFIG_EXECUTABLE":
            continue  # our wrapper; the real one is below
        where = " (found for %s)" % sites[var] if var in sites else ""
        if typ == "FILEPATH" and val.startswith("/") and not val.startswith(outside):
            if os.path.exists(val):
                items.append({"key": ("cache", var, val),
                              "what": "CMake cache %s%s" % (var, where), "path": val})
        elif typ == "PATH" and var in find_names and os.path.isdir(val):
            for name in find_names[var]:
                p = os.path.join(val, name)
                if os.path.exists(p):
                    items.append({"key": ("cache", var, p),
                                  "what": "CMake cache %s (find_path of %s%s)"
                                  % (var, name, ", " + sites[var] if var in sites else ""),
                                  "path": p})
                    break
    for var in ("CMAKE_COMMAND", "CMAKE_CTEST_COMMAND"):
        if var in cache and os.path.exists(cache[var][1]):
            items.append({"key": ("tool", cache[var][1]), "what": "tool %s" % var,
                          "path": cache[var][1]})
    items.append({"key": ("tool", real_pc), "what": "tool pkg-config", "path": real_pc})
    return items, cache


# --- Python modules ---------------------------------------------------------

def imported_modules(files):
    """{top-level module: first "file:line"} imported by files (import, from,
    need_module("x") and __import__("x") with a literal)."""
    mods = {}
    local = set()  # the tests' own modules (harness, postfix, ...)
    for d in {os.path.dirname(f) for f in files}:
        local |= {n[:-3] for n in os.listdir(d) if n.endswith(".py")}
    for f in files:
        with open(f) as fh:
            tree = ast.parse(fh.read(), f)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and getattr(node.func, "id", getattr(node.func, "attr", None))
                  in ("need_module", "__import__", "import_module")):
                names = [node.args[0].value]
            for n in names:
                top = n.split(".")[0]
                if top and top not in local:
                    mods.setdefault(top, "%s:%d" % (f, node.lineno))
    return mods


FIND_SPEC = r"""
import importlib.util, json, os, sys
out = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    path = None
    if spec is not None:
        if spec.origin in ("built-in", "frozen"):
            path = sys.executable
        elif spec.origin:
            path = spec.origin
        elif spec.submodule_search_locations:
            for d in spec.submodule_search_locations:
                for root, dirs, files in os.walk(d):
                    if files:
                        path = os.path.join(root, sorted(files)[0])
                        break
                if path:
                    break
    out[name] = path
print(json.dumps(out))
"""


def python_items(src, files, label):
    mods = imported_modules(files)
    if not os.path.exists(PYTHON):
        return [{"key": ("py", "python3"), "what": "%s (%s runs them)" % (PYTHON, label),
                 "path": PYTHON}]
    # -I: no PYTHONPATH, no user site-packages: what a fresh machine has
    r = run([PYTHON, "-I", "-c", FIND_SPEC] + sorted(mods))
    if r.returncode != 0:
        fail("%s could not look up modules: %s" % (PYTHON, r.stderr.strip()))
    found = json.loads(r.stdout)
    items = [{"key": ("py", "python3"), "what": "%s (%s)" % (PYTHON, label),
              "path": PYTHON}]
    for m in sorted(mods):
        items.append({"key": ("py", m),
                      "what": "Python module %s (imported at %s)" % (m, rel(mods[m], src)),
                      "path": found.get(m) or "/nonexistent/python-module/" + m})
    return items


# --- checking ---------------------------------------------------------------

def check(items, allowed, listname, deps_sh, label, reported):
    """Prints a line per item; returns the problems: packages missing from
    allowed (each once: packages in reported were named by an earlier
    check, whose list is the one to fix), and items no package owns."""
    resolve(items)
    missing, unowned = {}, []
    for it in items:
        pkgs = it["pkgs"]
        shown = it["owned"] or it["path"]
        if any(p in allowed for p in pkgs):
            say("  ok       %-26s %s: %s" % (next(p for p in pkgs if p in allowed),
                                             it["what"], shown))
        elif pkgs:
            say("  MISSING  %-26s %s: %s" % (",".join(pkgs), it["what"], shown))
            if not set(pkgs) & reported:
                missing.setdefault(pkgs[0], []).append(it)
        else:
            say("  NO-PKG   %-26s %s: %s" % ("-", it["what"], shown))
            unowned.append(it)
    problems = []
    for pkg, its in sorted(missing.items()):
        reported.add(pkg)
        problems.append(
            "MISSING %s: %s needs it (for %s), but it is neither in `%s --list %s` "
            "nor a dependency of a package there: add %s to the %s list in %s"
            % (pkg, label, "; ".join(it["what"] for it in its), deps_sh, listname,
               pkg, listname, deps_sh))
    for it in unowned:
        if it["path"].startswith("/nonexistent/"):
            problems.append("NOT FOUND: %s needs %s, which is not installed here: install "
                            "its Debian package and add that to the %s list in %s"
                            % (label, it["what"], listname, deps_sh))
        else:
            problems.append("NO PACKAGE: %s needs %s, and %s belongs to no Debian "
                            "package (installed by hand?): a fresh machine will not have it"
                            % (label, it["what"], it["path"]))
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="check scripts/deps.sh against the build")
    ap.add_argument("--source", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--deps-sh", default=os.environ.get("DEPS_SH"))
    ap.add_argument("--check", action="append", choices=("build", "test", "demo"))
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--cmake-arg", action="append", default=[])
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    src = os.path.realpath(a.source)
    deps_sh = os.path.abspath(a.deps_sh or os.path.join(src, "scripts", "deps.sh"))
    if not os.path.isfile(deps_sh):
        fail("no deps.sh at %s" % deps_sh)
    checks = a.check or ["build", "test", "demo"]

    for tool in ("dpkg-query", "apt-cache"):
        if not shutil.which(tool):
            say("%s: SKIP: %s not found; this check needs Debian (dpkg, apt)" % (PROG, tool))
            return SKIP
    deps_sh = rel(os.path.realpath(deps_sh), src)  # for messages; sh runs it from src
    os.chdir(src)
    real_pc = os.environ.get("PKG_CONFIG") or shutil.which("pkg-config")
    if not real_pc or not os.path.isabs(real_pc) and not shutil.which(real_pc):
        fail("pkg-config is not installed (it is in the build list: scripts/deps.sh build)")
    real_pc = shutil.which(real_pc) or real_pc
    say("%s: checking %s against %s" % (PROG, ", ".join(checks), deps_sh))

    work = tempfile.mkdtemp(prefix="herald-guard-")
    keep_note = ("%s: the temporary build directories are in %s" % (PROG, work) if a.keep
                 else "%s: (run with --keep to keep the temporary build directories)" % PROG)
    problems, reported = [], set()

    def lists(which):
        pkgs = deps_list(deps_sh, which)
        allowed, unknown = closure(pkgs)
        for p in unknown:
            if ("unknown", p) not in reported:
                reported.add(("unknown", p))
                problems.append("UNKNOWN package %s in `%s --list %s`: apt knows no such "
                                "package (a typo?)" % (p, deps_sh, which))
        return pkgs, allowed

    try:
        if "build" in checks:
            # As README's Install and scripts/demo.sh configure: the defaults
            # (so a default that needs the test packages is caught too).
            off, cache = configure(a.cmake, src, work, "default", a.cmake_arg,
                                   real_pc, keep_note)
            dflt = cache.get("HERALD_TESTS", ("", "?"))[1]
            lst, allowed = lists("build")
            label = "configuring with the defaults%s (HERALD_TESTS=%s)" % (
                " and " + " ".join(a.cmake_arg) if a.cmake_arg else "", dflt)
            say("%s: %s uses %d modules, files and tools; "
                "`--list build` is %d packages, %d with what they depend on:"
                % (PROG, label, len(off), len(lst), len(allowed)))
            problems += check(off, allowed, "build", deps_sh, label, reported)
            if dflt.upper() not in ("OFF", "0", "NO", "FALSE", "N", ""):
                problems.append("HERALD_TESTS is %s %s: a plain configure (README's "
                                "Install, scripts/demo.sh) must not need the test packages"
                                % (dflt, "with " + " ".join(a.cmake_arg) if a.cmake_arg
                                   else "by default"))
        if "demo" in checks:
            smtpd = os.path.join(src, "tests", "tools", "smtpd.py")
            py = python_items(src, [smtpd], "scripts/demo.sh runs tests/tools/smtpd.py")
            lst, allowed = lists("demo")
            say("%s: tests/tools/smtpd.py imports %d modules; `--list demo` is %d "
                "packages, %d with what they depend on:"
                % (PROG, len(py) - 1, len(lst), len(allowed)))
            problems += check(py, allowed, "demo", deps_sh, "the demo's SMTP server",
                              reported)
        if "test" in checks:
            on, _ = configure(a.cmake, src, work, "tests-on", ["-DHERALD_TESTS=ON"],
                              real_pc, keep_note)
            if "build" in checks:  # what the build check saw is checked already
                before = {it["key"] for it in off}
                on = [it for it in on if it["key"] not in before]
            tools = sorted(os.path.join(src, "tests", d, f)
                           for d in ("integration", "tools")
                           if os.path.isdir(os.path.join(src, "tests", d))
                           for f in os.listdir(os.path.join(src, "tests", d))
                           if f.endswith(".py"))
            py = python_items(src, tools, "run by the integration tests")
            lst, allowed = lists("test")
            say("%s: -DHERALD_TESTS=ON uses %d more modules, files and tools, the "
                "integration tests %d Python modules; `--list test` is %d packages, "
                "%d with what they depend on:"
                % (PROG, len(on), len(py) - 1, len(lst), len(allowed)))
            problems += check(on, allowed, "test", deps_sh,
                              "configuring with -DHERALD_TESTS=ON", reported)
            problems += check(py, allowed, "test", deps_sh, "the integration tests",
                              reported)
    finally:
        if a.keep:
            say("%s: kept %s" % (PROG, work))
        else:
            shutil.rmtree(work, ignore_errors=True)
    say()
    if problems:
        for p in problems:
            say("%s: %s" % (PROG, p))
        say("%s: FAILED: %d problem(s)" % (PROG, len(problems)))
        return 1
    say("%s: OK: every package needed is in scripts/deps.sh's lists "
        "or a dependency of one there" % PROG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
