"""The progress bar: silent for short runs and when stderr is not a terminal."""

import io

from simulator.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_draws_after_the_delay_and_clears():
    out = Terminal()
    bar = ProgressBar("simulating", delay=0.0, stream=out)
    bar(5, 10)
    assert "simulating [###############" in out.getvalue() and " 50.0%" in out.getvalue()
    bar.close()
    assert out.getvalue().endswith("\r")


def test_silent_when_not_a_terminal_or_short():
    pipe = io.StringIO()
    bar = ProgressBar("x", delay=0.0, stream=pipe)
    bar(1, 2)
    bar.close()
    assert pipe.getvalue() == ""
    term = Terminal()
    bar = ProgressBar("x", delay=60.0, stream=term)
    bar(1, 2)
    bar.close()
    assert term.getvalue() == ""
