"""Small helpers shared by the third-party client compat scripts.

Every script is run as `python SCRIPT BOOTSTRAP SCENARIO` against a fresh kbroker. A scenario is a
function that raises on any mismatch; `main` turns that into a non-zero exit status with a message
that says what was expected and what came back.
"""

import sys
import time
import traceback
import uuid


class Mismatch(AssertionError):
    """The broker (through the client) answered something other than what Kafka would."""


def check(cond, what):
    """Fails the scenario with `what` unless `cond` holds."""
    if not cond:
        raise Mismatch(what)


def check_eq(got, want, what):
    """Fails the scenario unless `got == want`, showing both."""
    if got != want:
        raise Mismatch(f"{what}: expected {want!r}, got {got!r}")


def unique(prefix):
    """A topic or group name no other scenario uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Deadline:
    """A time budget: `left()` seconds remain until `expired()`."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def wait_for(what, probe, done, seconds=10.0):
    """Calls `probe()` until `done(result)` holds and returns that result; fails naming `what`.

    For what a cluster makes visible a moment after acknowledging it. Apache Kafka answers
    CreateTopics once the controller has committed the topic, and each broker's metadata cache
    takes it up a few milliseconds later, so a Metadata request sent right after the answer can
    still miss the topic. The probe runs at least once; the failure shows its last result.
    """
    deadline = Deadline(seconds)
    while True:
        got = probe()
        if done(got):
            return got
        if deadline.expired():
            raise Mismatch(f"{what} after {seconds:g} s; last seen: {got!r}")
        time.sleep(0.05)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(scenarios):
    """Runs the scenarios named on the command line (all if none) against argv[1]."""
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} BOOTSTRAP [{'|'.join(scenarios)}]...", file=sys.stderr)
        sys.exit(2)
    bootstrap = sys.argv[1]
    names = sys.argv[2:] or list(scenarios)
    for name in names:
        if name not in scenarios:
            print(f"unknown scenario {name!r}; known: {', '.join(scenarios)}", file=sys.stderr)
            sys.exit(2)
    failed = []
    for name in names:
        log(f"=== {name} against {bootstrap}")
        started = time.monotonic()
        try:
            scenarios[name](bootstrap)
        except Exception:  # noqa: BLE001 - report every failure the same way
            traceback.print_exc()
            log(f"FAIL {name} ({time.monotonic() - started:.1f}s)")
            failed.append(name)
        else:
            log(f"ok {name} ({time.monotonic() - started:.1f}s)")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
