"""One way for the tests to wait: poll a condition on the monotonic clock.

A test waits for evidence (a document, a counter, a log line), never for
time alone; this is the one loop that does the polling.
"""
import time


def wait_for(pred, what=None, *, timeout=30, interval=0.2):
    """Call ``pred`` until it returns something true and return that.

    With ``what``, a timeout raises AssertionError naming what was awaited
    and the last value seen. Without, a timeout returns ``pred()``'s last
    (false) value, for callers that assert with their own message.
    Monotonic: a test that steps the wall clock does not stretch the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if not last and what is not None:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; last={last!r}")
    return last
