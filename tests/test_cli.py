import sys

from fpgacnn.cli import main


def test_unknown_command_is_one_line_and_status_2(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice" in err[0]


class _ClosedPipe:
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass

    def close(self):
        pass


def test_output_piped_into_a_closed_reader_ends_quietly(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    monkeypatch.setattr(sys, "stderr", _ClosedPipe())
    assert main(["inspect", "zoo:digits"]) == 0
