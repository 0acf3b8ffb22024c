"""The reliability figures a test run prints at its end (registered from tests/conftest.py).

Tests add to the counters below; `summary` writes them under the heading
"fastbp reliability figures". Counts cover only the tests that ran in this session.
"""
from collections import defaultdict
from contextlib import contextmanager

# backend -> {"inputs": fuzzed calls, "rejected": ValueError/TypeError, "accepted": equal to the reference}
fuzz = defaultdict(lambda: {"inputs": 0, "rejected": 0, "accepted": 0})
# fuzzed calls run in child processes (the no-crash proof): backend -> calls; and crashes seen
subprocess_fuzz = defaultdict(int)
crashes = []              # descriptions of child processes that died by a signal or a non-Value/TypeError
kill_trials = {"trials": 0, "survived": 0, "mid_save": 0, "leftover_temp_files": 0}
memory = {}               # backend -> text
threads = {}              # backend -> text
# hostile files and inputs, per family: {"cases": tried, "held": handled as the contract says}; notes: text
hostile = defaultdict(lambda: {"cases": 0, "held": 0})
hostile_notes = defaultdict(list)
HOSTILE_FAMILIES = {      # family -> what a case that held did
    "checkpoint load": "a ValueError naming the file, before any network was built, memory bounded by the file",
    "resume sections": "a ValueError naming the file; network, optimizer and checkpoint unchanged",
    "overflowing updates": "FloatingPointError naming epoch and batch; no checkpoint from non-finite values",
    "writing files": "refused naming the path, or written atomically; nothing else touched",
    "data loaders": "a ValueError naming the file (no hang, memory bounded), or the right arrays",
    "MPI and limits": "an error naming the size or the differing field, on every rank, before allocating",
}


@contextmanager
def hostile_case(family):
    """with hostile_case("checkpoint load"): ... -- one case, counted as held if the block passes."""
    assert family in HOSTILE_FAMILIES, family
    hostile[family]["cases"] += 1
    yield
    hostile[family]["held"] += 1


def record_hostile(family, cases, held):
    """Cases run elsewhere (a child process, an MPI run): `held` of `cases` held."""
    assert family in HOSTILE_FAMILIES, family
    hostile[family]["cases"] += cases
    hostile[family]["held"] += held


def record_fuzz(backend, outcome):
    """outcome: "rejected" or "accepted"."""
    counts = fuzz[backend]
    counts["inputs"] += 1
    counts[outcome] += 1


def snapshot():
    """Everything counted so far, as plain data: a pytest-xdist worker sends it to the
    controller (tests/conftest.py), which `merge`s it before printing the summary."""
    return dict(fuzz=dict(fuzz), subprocess_fuzz=dict(subprocess_fuzz), crashes=list(crashes),
                kill_trials=dict(kill_trials), memory=dict(memory), threads=dict(threads),
                hostile=dict(hostile), hostile_notes=dict(hostile_notes))


def merge(figures):
    """Add a worker's `snapshot()` to this process's figures."""
    for backend, c in figures["fuzz"].items():
        for key, n in c.items():
            fuzz[backend][key] += n
    for backend, n in figures["subprocess_fuzz"].items():
        subprocess_fuzz[backend] += n
    crashes.extend(figures["crashes"])
    for key, n in figures["kill_trials"].items():
        kill_trials[key] += n
    memory.update(figures["memory"])
    threads.update(figures["threads"])
    for family, c in figures["hostile"].items():
        hostile[family]["cases"] += c["cases"]
        hostile[family]["held"] += c["held"]
    for family, notes in figures["hostile_notes"].items():
        hostile_notes[family].extend(notes)


def summary(terminalreporter):
    if not (fuzz or subprocess_fuzz or crashes or kill_trials["trials"] or memory or threads or hostile):
        return
    write = terminalreporter.write_line
    terminalreporter.section("fastbp reliability figures")
    for backend, c in sorted(fuzz.items()):
        write(f"fuzz  {backend:8s} {c['inputs']:6d} fuzzed calls: {c['rejected']:6d} rejected "
              f"(ValueError/TypeError), {c['accepted']:6d} equal to the reference")
    for backend, n in sorted(subprocess_fuzz.items()):
        write(f"fuzz  {backend:8s} {n:6d} fuzzed calls in child processes (exit status checked)")
    write(f"crashes: {len(crashes)}" + "".join(f"\n  {c}" for c in crashes))
    if kill_trials["trials"]:
        k = kill_trials
        write(f"kill-during-save: {k['survived']}/{k['trials']} SIGKILL trials left a loadable checkpoint "
              f"holding the old or the new state ({k['mid_save']} killed while a save was in flight; "
              f"{k['leftover_temp_files']} temporary files of killed saves left in the folder)")
    for backend, text in sorted(threads.items()):
        write(f"threads {backend:8s} {text}")
    for backend, text in sorted(memory.items()):
        write(f"memory  {backend:8s} {text}")
    for family in HOSTILE_FAMILIES:
        if family in hostile:
            c = hostile[family]
            write(f"hostile {family:20s} {c['held']:4d}/{c['cases']:<4d} cases held: {HOSTILE_FAMILIES[family]}")
            for note in hostile_notes.get(family, ()):
                write(f"        {'':20s} {note}")
