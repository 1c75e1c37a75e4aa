#!/usr/bin/python3
"""test_completion.py - contrib/herald.bash, the bash completion, in a real
bash: commands, a command's verbs, a verb's options (read from --help),
list names after --list and issue ids where a verb takes an ID (read from
the database of --config).  Skips without bash.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SKIP, SOURCE_DIR, World, check, run_tests  # noqa: E402

BASH = shutil.which("bash")
if not BASH:
    print("SKIP: no bash")
    sys.exit(SKIP)
SCRIPT = os.path.join(SOURCE_DIR, "contrib", "herald.bash")


def complete(words, env_dir):
    """COMPREPLY for the command line `words` (the last one being completed)."""
    line = " ".join(words)
    prog = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _herald; '
            'printf "%%s\\n" "${COMPREPLY[@]}"' % (
                SCRIPT, " ".join("'%s'" % w for w in words), len(words) - 1))
    env = dict(os.environ, PATH=env_dir + ":" + os.environ.get("PATH", ""))
    p = subprocess.run([BASH, "-c", prog], capture_output=True, text=True, env=env)
    check(p.returncode == 0, "bash: %s for %r", p.stderr, line)
    return sorted(x for x in p.stdout.split("\n") if x)


def test_commands_verbs_options_names_ids():
    with World() as w:
        w.init()
        w.ok("list", "create", "newsletter")
        w.ok("list", "create", "research")
        iid = w.new_issue("Hello", "newsletter", "Hi.\n")
        # `herald` on PATH is the binary under test
        bindir = os.path.join(w.root, "bin")
        os.makedirs(bindir)
        os.symlink(os.path.abspath(HERALD), os.path.join(bindir, "herald"))
        got = complete(["herald", "s"], bindir)
        check(set(got) >= {"sub", "send", "stats", "serve", "suppress", "segment"} and
              "list" not in got, "commands: %s", got)
        got = complete(["herald", "--config", w.config, "issue", "sch"], bindir)
        check(got == ["schedule"], "verbs: %s", got)
        got = complete(["herald", "sub", "import", "--"], bindir)
        check({"--list", "--dry-run", "--welcome", "--email-column"} <= set(got) and
              "--json" not in got, "options of sub import: %s", got)
        got = complete(["herald", "--config", w.config, "sub", "add", "a@b.org", "--list", ""],
                       bindir)
        check(got == ["newsletter", "research"], "list names: %s", got)
        got = complete(["herald", "--config", w.config, "issue", "show", ""], bindir)
        check(got == [str(iid)], "issue ids: %s", got)
        # the db verbs and doctor's options come from their --help too
        got = complete(["herald", "db", ""], bindir)
        check(got == ["backup", "check", "migrate", "stats", "vacuum"], "db verbs: %s", got)
        got = complete(["herald", "doctor", "--"], bindir)
        check(set(got) == {"--json", "--resolver", "--only"}, "doctor options: %s", got)
        got = complete(["herald", "--log-format", ""], bindir)
        check(got == ["json", "text"] or got == ["text", "json"], "--log-format: %s", got)
        got = complete(["herald", "--log-format", "json", "d"], bindir)
        check(got == ["db", "dkim", "doctor"], "a command after --log-format: %s", got)


if __name__ == "__main__":
    run_tests([("commands_verbs_options_names_ids", test_commands_verbs_options_names_ids)])
